"""The SQL of gift cards. Every change of money is a conditional UPDATE whose WHERE clause (and the
tables' CHECK constraints behind it) refuses to take a total below zero or past its limit, so the
invariants hold whatever other processes do at the same moment."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from connector.db.tables import (
    GiftCard,
    GiftCardEntry,
    GiftCardOperation,
    GiftCardTransaction,
    utcnow,
)


def _changed(result: object) -> bool:
    return bool(getattr(result, "rowcount", 0))


class GiftCardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # ------------------------------------------------------------------------- cards

    async def add_card(self, card: GiftCard) -> None:
        self._session.add(card)
        await self._session.flush()

    async def card(self, merchant_id: uuid.UUID | None, card_id: str) -> GiftCard | None:
        """A merchant's card by its public id (any merchant's when `merchant_id` is None)."""
        query = select(GiftCard).where(GiftCard.card_id == card_id)
        if merchant_id is not None:
            query = query.where(GiftCard.merchant_id == merchant_id)
        return await self._session.scalar(query)

    async def refresh(self, card: GiftCard) -> GiftCard:
        """The card as the database has it now (`card` may come from another session)."""
        current = await self._session.get(GiftCard, card.id, populate_existing=True)
        if current is None:
            raise LookupError(f"gift card {card.card_id} is gone")
        return current

    def _usable(self, now: datetime) -> list[ColumnElement[bool]]:
        return [
            GiftCard.status == "active",
            GiftCard.available_minor > 0,
            or_(GiftCard.expiring_date.is_(None), GiftCard.expiring_date > now),
        ]

    async def search(
        self,
        merchant_id: uuid.UUID,
        owner_digests: Sequence[bytes],
        code_digest: bytes | None,
        now: datetime,
        offset: int,
        limit: int,
    ) -> tuple[list[GiftCard], int]:
        """Usable cards (active, unexpired, with money) the shopper owns, plus the card whose
        code the shopper typed, unless that card is restricted to another owner."""
        matches: list[ColumnElement[bool]] = []
        if owner_digests:
            matches.append(GiftCard.owner_digest.in_(owner_digests))
        if code_digest is not None:
            owned_or_open = or_(
                GiftCard.restricted_to_owner.is_(False),
                GiftCard.owner_digest.in_(owner_digests) if owner_digests else false(),
            )
            matches.append(and_(GiftCard.code_digest == code_digest, owned_or_open))
        if not matches:
            return [], 0
        where = and_(GiftCard.merchant_id == merchant_id, or_(*matches), *self._usable(now))
        total = await self._session.scalar(select(func.count()).select_from(GiftCard).where(where))
        rows = await self._session.scalars(
            select(GiftCard)
            .where(where)
            .order_by(GiftCard.expiring_date.is_(None), GiftCard.expiring_date, GiftCard.card_id)
            .offset(offset)
            .limit(limit)
        )
        return list(rows), int(total or 0)

    async def list_cards(
        self, merchant_id: uuid.UUID | None, status: str | None, offset: int, limit: int
    ) -> list[GiftCard]:
        query = select(GiftCard)
        if merchant_id is not None:
            query = query.where(GiftCard.merchant_id == merchant_id)
        if status is not None:
            query = query.where(GiftCard.status == status)
        query = query.order_by(GiftCard.created_at, GiftCard.card_id).offset(offset).limit(limit)
        return list(await self._session.scalars(query))

    async def set_status(self, card_pk: uuid.UUID, status: str, reason: str | None) -> None:
        await self._session.execute(
            update(GiftCard)
            .where(GiftCard.id == card_pk)
            .values(status=status, status_reason=reason, updated_at=utcnow())
        )

    async def owner_batch(self, after: uuid.UUID, limit: int) -> list[tuple[uuid.UUID, bytes]]:
        """Encrypted owners in primary-key order, for key rotation."""
        rows = await self._session.execute(
            select(GiftCard.id, GiftCard.owner)
            .where(GiftCard.id > after, GiftCard.owner.is_not(None))
            .order_by(GiftCard.id)
            .limit(limit)
        )
        return [(pk, blob) for pk, blob in rows if blob is not None]

    async def set_owner(self, card_pk: uuid.UUID, blob: bytes) -> None:
        await self._session.execute(
            update(GiftCard).where(GiftCard.id == card_pk).values(owner=blob)
        )

    # ------------------------------------------------------------------------- money

    async def hold(self, card_pk: uuid.UUID, amount: int) -> bool:
        """Move `amount` from available to held, if the card is active and has it, and is not a
        single-use card already used."""
        result = await self._session.execute(
            update(GiftCard)
            .where(
                GiftCard.id == card_pk,
                GiftCard.status == "active",
                GiftCard.available_minor >= amount,
                or_(GiftCard.multiple_redemptions.is_(True), GiftCard.redemptions == 0),
            )
            .values(
                available_minor=GiftCard.available_minor - amount,
                held_minor=GiftCard.held_minor + amount,
                redemptions=GiftCard.redemptions + 1,
                updated_at=utcnow(),
            )
        )
        return _changed(result)

    async def credit(self, card_pk: uuid.UUID, amount: int, largest_balance: int) -> bool:
        """Add `amount`, if the card is active, is not a single-load card already loaded, and
        would not hold more than `largest_balance` (available and held) afterwards."""
        result = await self._session.execute(
            update(GiftCard)
            .where(
                GiftCard.id == card_pk,
                GiftCard.status == "active",
                or_(GiftCard.multiple_credits.is_(True), GiftCard.credits == 0),
                GiftCard.available_minor + GiftCard.held_minor <= largest_balance - amount,
            )
            .values(
                available_minor=GiftCard.available_minor + amount,
                credits=GiftCard.credits + 1,
                updated_at=utcnow(),
            )
        )
        return _changed(result)

    async def move(
        self, card_pk: uuid.UUID, available_delta: int, held_delta: int, redemptions: int = 0
    ) -> bool:
        """Shift the card's totals, unless that would take one below zero."""
        result = await self._session.execute(
            update(GiftCard)
            .where(
                GiftCard.id == card_pk,
                GiftCard.available_minor + available_delta >= 0,
                GiftCard.held_minor + held_delta >= 0,
            )
            .values(
                available_minor=GiftCard.available_minor + available_delta,
                held_minor=GiftCard.held_minor + held_delta,
                redemptions=GiftCard.redemptions + redemptions,
                updated_at=utcnow(),
            )
        )
        return _changed(result)

    async def add_entry(
        self,
        card_pk: uuid.UUID,
        kind: str,
        available_delta: int,
        held_delta: int,
        transaction_pk: uuid.UUID | None = None,
        note: str | None = None,
    ) -> None:
        self._session.add(
            GiftCardEntry(
                card_pk=card_pk,
                transaction_pk=transaction_pk,
                kind=kind,
                available_delta=available_delta,
                held_delta=held_delta,
                note=note,
            )
        )
        await self._session.flush()

    async def entries(self, card_pk: uuid.UUID) -> list[GiftCardEntry]:
        return list(
            await self._session.scalars(
                select(GiftCardEntry)
                .where(GiftCardEntry.card_pk == card_pk)
                .order_by(GiftCardEntry.id)
            )
        )

    async def ledger_totals(self, card_pk: uuid.UUID) -> tuple[int, int]:
        """(available, held) as the sums of the card's entries."""
        row = (
            await self._session.execute(
                select(
                    func.coalesce(func.sum(GiftCardEntry.available_delta), 0),
                    func.coalesce(func.sum(GiftCardEntry.held_delta), 0),
                ).where(GiftCardEntry.card_pk == card_pk)
            )
        ).one()
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------------- transactions

    async def add_transaction(self, transaction: GiftCardTransaction) -> None:
        self._session.add(transaction)
        await self._session.flush()

    async def transaction_by_request(
        self, card_pk: uuid.UUID, request_id: str
    ) -> GiftCardTransaction | None:
        return await self._session.scalar(
            select(GiftCardTransaction).where(
                GiftCardTransaction.card_pk == card_pk,
                GiftCardTransaction.request_id == request_id,
            )
        )

    async def transaction(
        self, card_pk: uuid.UUID, transaction_id: str, *, lock: bool = False
    ) -> GiftCardTransaction | None:
        query = select(GiftCardTransaction).where(
            GiftCardTransaction.card_pk == card_pk,
            GiftCardTransaction.transaction_id == transaction_id,
        )
        if lock:
            # A row lock on PostgreSQL; SQLite's writer already holds the database lock.
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self._session.scalar(query)

    async def transactions(
        self, card_pk: uuid.UUID, offset: int, limit: int
    ) -> tuple[list[GiftCardTransaction], int]:
        where = GiftCardTransaction.card_pk == card_pk
        total = await self._session.scalar(
            select(func.count()).select_from(GiftCardTransaction).where(where)
        )
        rows = await self._session.scalars(
            select(GiftCardTransaction)
            .where(where)
            .order_by(GiftCardTransaction.created_at, GiftCardTransaction.transaction_id)
            .offset(offset)
            .limit(limit)
        )
        return list(rows), int(total or 0)

    async def settle(self, transaction_pk: uuid.UUID, amount: int) -> bool:
        """Post `amount` of a Debit's hold, if that much of it is still held."""
        result = await self._session.execute(
            update(GiftCardTransaction)
            .where(
                GiftCardTransaction.id == transaction_pk,
                GiftCardTransaction.operation == "Debit",
                GiftCardTransaction.settled_minor + GiftCardTransaction.released_minor + amount
                <= GiftCardTransaction.amount_minor,
            )
            .values(
                settled_minor=GiftCardTransaction.settled_minor + amount,
                # Nothing left to hold: off the expiry poll's range for good.
                hold_expires_at=case(
                    (
                        GiftCardTransaction.settled_minor
                        + GiftCardTransaction.released_minor
                        + amount
                        == GiftCardTransaction.amount_minor,
                        None,
                    ),
                    else_=GiftCardTransaction.hold_expires_at,
                ),
            )
        )
        return _changed(result)

    async def cancel(
        self, transaction_pk: uuid.UUID, released: int, refunded: int, *, close_hold: bool
    ) -> bool:
        """Record a cancellation: `released` from the hold, `refunded` from what was settled."""
        values: dict[str, object] = {
            "released_minor": GiftCardTransaction.released_minor + released,
            "refunded_minor": GiftCardTransaction.refunded_minor + refunded,
        }
        if close_hold:
            values["hold_expires_at"] = None
        result = await self._session.execute(
            update(GiftCardTransaction)
            .where(
                GiftCardTransaction.id == transaction_pk,
                GiftCardTransaction.settled_minor + GiftCardTransaction.released_minor + released
                <= GiftCardTransaction.amount_minor,
                GiftCardTransaction.refunded_minor + refunded <= GiftCardTransaction.settled_minor,
            )
            .values(**values)
        )
        return _changed(result)

    async def expired_holds(self, now: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
        """(card pk, transaction id) of Debits whose hold expired with money still held."""
        rows = await self._session.execute(
            select(GiftCardTransaction.card_pk, GiftCardTransaction.transaction_id)
            .where(
                GiftCardTransaction.hold_expires_at <= now,
                GiftCardTransaction.settled_minor + GiftCardTransaction.released_minor
                < GiftCardTransaction.amount_minor,
            )
            .order_by(GiftCardTransaction.hold_expires_at)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in rows]

    # ------------------------------------------------------------------------- operations

    async def add_operation(self, operation: GiftCardOperation) -> None:
        self._session.add(operation)
        await self._session.flush()

    async def operation_by_request(
        self, transaction_pk: uuid.UUID, kind: str, request_id: str
    ) -> GiftCardOperation | None:
        return await self._session.scalar(
            select(GiftCardOperation).where(
                GiftCardOperation.transaction_pk == transaction_pk,
                GiftCardOperation.kind == kind,
                GiftCardOperation.request_id == request_id,
            )
        )

    async def operations(self, transaction_pk: uuid.UUID, kind: str) -> list[GiftCardOperation]:
        return list(
            await self._session.scalars(
                select(GiftCardOperation)
                .where(
                    GiftCardOperation.transaction_pk == transaction_pk,
                    GiftCardOperation.kind == kind,
                )
                .order_by(GiftCardOperation.created_at, GiftCardOperation.oid)
            )
        )


__all__ = ["GiftCardRepository"]
