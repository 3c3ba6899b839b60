"""Gift card transactions: Debits are holds that settlements post and cancellations release (before
settlement) or refund (after), partially and repeatedly; Credits add money at once.

Exactly once: a transaction is unique per card and `requestId`, a settlement or cancellation per
transaction, kind and `requestId`. A repeat finds the stored row and answers it again; two repeats
racing on two processes both try to insert, the database lets one win, and the loser's whole
database transaction (its money movements included) rolls back before it answers the winner's row.

Never overspent: every movement is a conditional UPDATE (see the repository) in the same database
transaction as its ledger entry, so totals and entries always agree.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from connector.db.engine import Database
from connector.db.tables import (
    GiftCard,
    GiftCardOperation,
    GiftCardTransaction,
    Merchant,
    utcnow,
)
from connector.errors import BadRequest, Conflict, InvalidTransition, NotFound, Refused
from connector.giftcards import views
from connector.giftcards.repository import GiftCardRepository
from connector.security import (
    BlindIndex,
    generate_public_id,
    is_masked,
    redemption_code_digest,
    same_secret,
)
from connector.settings import Settings
from protocol.giftcards import (
    CreateTransactionRequest,
    OperationRecord,
    OperationRequest,
    TransactionDetail,
    TransactionSummary,
)
from protocol.money import InvalidAmount, from_minor, to_minor

log = logging.getLogger(__name__)

T = TypeVar("T")

# Far beyond any gift card, well inside a 64-bit column: the largest amount of one operation and
# the largest balance (available and held) of a card, so that no sum of them overflows.
MAX_MINOR = 10**15
HOLD_EXPIRED = "hold-expired"


def to_card_minor(value: Decimal, card: GiftCard) -> int:
    try:
        minor = to_minor(value, card.currency)
    except InvalidAmount as error:
        raise BadRequest(str(error), code="invalid-amount") from error
    if minor <= 0 or minor > MAX_MINOR:
        raise BadRequest(f"value must be above 0 and at most {MAX_MINOR} minor units",
                         code="invalid-amount")  # fmt: skip
    return minor


def money(minor: int, card: GiftCard) -> str:
    return f"{from_minor(minor, card.currency)} {card.currency}"


def check_usable(card: GiftCard, now: datetime) -> None:
    if card.status != "active":
        raise Refused(f"gift card {card.card_id} is blocked", code="card-blocked")
    if card.expiring_date is not None and card.expiring_date <= now:
        raise Refused(f"gift card {card.card_id} expired", code="card-expired")


class GiftCardLedger:
    def __init__(self, database: Database, settings: Settings, blind_index: BlindIndex) -> None:
        self._db = database
        self._settings = settings
        self._blind_index = blind_index

    # ------------------------------------------------------------------------- lookups

    async def _card(self, repo: GiftCardRepository, merchant: Merchant, card_id: str) -> GiftCard:
        card = await repo.card(merchant.id, card_id)
        if card is None:
            raise NotFound(f"no gift card {card_id!r}", code="card-not-found")
        return card

    async def _transaction(
        self, repo: GiftCardRepository, card: GiftCard, transaction_id: str, *, lock: bool = False
    ) -> GiftCardTransaction:
        transaction = await repo.transaction(card.id, transaction_id, lock=lock)
        if transaction is None:
            raise NotFound(
                f"no transaction {transaction_id!r} on gift card {card.card_id}",
                code="transaction-not-found",
            )
        return transaction

    async def _once(
        self, attempt: Callable[[], Awaitable[T]], replay: Callable[[], Awaitable[T]]
    ) -> T:
        """Run `attempt`; if it lost a race on a unique key, answer what the winner stored."""
        try:
            return await attempt()
        except IntegrityError:
            log.info("a concurrent request with the same requestId won; answering its result")
            return await replay()

    # ------------------------------------------------------------------------- transactions

    async def create_transaction(
        self, merchant: Merchant, card_id: str, request: CreateTransactionRequest, base: str
    ) -> TransactionSummary:
        async def attempt() -> TransactionSummary:
            async with self._db.writer() as session:
                repo = GiftCardRepository(session)
                card = await self._card(repo, merchant, card_id)
                amount = to_card_minor(request.value, card)
                existing = await repo.transaction_by_request(card.id, request.request_id)
                if existing is not None:
                    return self._replay_transaction(base, card, existing, request, amount)
                self._check_redemption(card, request)
                check_usable(card, utcnow())
                if request.operation == "Debit":
                    self._check_owner(card, request)
                    transaction = await self._debit(repo, card, request, amount)
                else:
                    transaction = await self._credit(repo, card, request, amount)
                return views.transaction_summary(base, card, transaction)

        async def replay() -> TransactionSummary:
            async with self._db.reader() as session:
                repo = GiftCardRepository(session)
                card = await self._card(repo, merchant, card_id)
                existing = await repo.transaction_by_request(card.id, request.request_id)
                if existing is None:
                    raise InvalidTransition("a ledger constraint refused the transaction")
                amount = to_card_minor(request.value, card)
                return self._replay_transaction(base, card, existing, request, amount)

        return await self._once(attempt, replay)

    def _replay_transaction(
        self,
        base: str,
        card: GiftCard,
        existing: GiftCardTransaction,
        request: CreateTransactionRequest,
        amount: int,
    ) -> TransactionSummary:
        if existing.operation != request.operation or existing.amount_minor != amount:
            raise Conflict(
                f"requestId {request.request_id!r} was used for a {existing.operation} of "
                f"{money(existing.amount_minor, card)}",
                code="request-id-reused",
            )
        return views.transaction_summary(base, card, existing)

    def _check_redemption(self, card: GiftCard, request: CreateTransactionRequest) -> None:
        """A Debit must name the card by its redemption token (or its code in full); a Credit may
        name neither, but never a wrong one."""
        token, code = request.redemption_token, request.redemption_code
        token_ok = bool(token) and same_secret(token or "", card.redemption_token)
        code_given = bool(code) and not is_masked(code or "")
        code_ok = code_given and same_secret(
            redemption_code_digest(code or "").hex(), card.code_digest.hex()
        )
        if token_ok or code_ok:
            return
        if request.operation == "Credit" and not token and not code_given:
            return
        raise Refused(
            "redemptionToken (or the full redemptionCode) does not match this gift card",
            code="redemption-mismatch",
        )

    def _check_owner(self, card: GiftCard, request: CreateTransactionRequest) -> None:
        """A card restricted to its owner pays only for that owner, when the order names one."""
        profile = request.order_info.client_profile if request.order_info else None
        if not card.restricted_to_owner or card.owner_digest is None or not profile:
            return
        candidates = [
            str(profile[key])
            for key in ("email", "document", "corporateDocument", "id", "userId")
            if profile.get(key)
        ]
        if candidates and not any(
            same_secret(self._blind_index.digest(value).hex(), card.owner_digest.hex())
            for value in candidates
        ):
            raise Refused(
                f"gift card {card.card_id} is restricted to another customer",
                code="not-card-owner",
            )

    async def _debit(
        self,
        repo: GiftCardRepository,
        card: GiftCard,
        request: CreateTransactionRequest,
        amount: int,
    ) -> GiftCardTransaction:
        if not await repo.hold(card.id, amount):
            card = await repo.refresh(card)
            if card.status != "active":
                raise Refused(f"gift card {card.card_id} is blocked", code="card-blocked")
            if not card.multiple_redemptions and card.redemptions > 0:
                raise Refused(
                    f"gift card {card.card_id} can be used once and was used",
                    code="card-already-redeemed",
                )
            raise Refused(
                f"gift card {card.card_id} has {money(card.available_minor, card)}, "
                f"less than {money(amount, card)}",
                code="insufficient-balance",
            )
        now = utcnow()
        transaction = GiftCardTransaction(
            card_pk=card.id,
            transaction_id=generate_public_id(),
            request_id=request.request_id,
            operation="Debit",
            amount_minor=amount,
            description=request.description,
            order_id=request.order_info.order_id if request.order_info else None,
            hold_expires_at=now + timedelta(seconds=self._settings.giftcard_hold_seconds),
            created_at=now,
        )
        await repo.add_transaction(transaction)
        await repo.add_entry(card.id, "hold", -amount, amount, transaction.id)
        return transaction

    async def _credit(
        self,
        repo: GiftCardRepository,
        card: GiftCard,
        request: CreateTransactionRequest,
        amount: int,
        note: str | None = None,
    ) -> GiftCardTransaction:
        if not await repo.credit(card.id, amount, MAX_MINOR):
            card = await repo.refresh(card)
            if card.status != "active":
                raise Refused(f"gift card {card.card_id} is blocked", code="card-blocked")
            if not card.multiple_credits and card.credits > 0:
                raise Refused(
                    f"gift card {card.card_id} can be loaded once and was loaded",
                    code="card-already-loaded",
                )
            raise Refused(
                f"gift card {card.card_id} would hold more than {MAX_MINOR} minor units",
                code="balance-limit",
            )
        # A Credit is final when made: it is its own settlement, so the Hub's GET of settlements
        # shows it complete and never asks to settle it.
        transaction = GiftCardTransaction(
            card_pk=card.id,
            transaction_id=generate_public_id(),
            request_id=request.request_id,
            operation="Credit",
            amount_minor=amount,
            settled_minor=amount,
            description=request.description,
            order_id=request.order_info.order_id if request.order_info else None,
            created_at=utcnow(),
        )
        await repo.add_transaction(transaction)
        await repo.add_entry(card.id, "credit", amount, 0, transaction.id, note)
        await repo.add_operation(
            GiftCardOperation(
                oid=generate_public_id(),
                transaction_pk=transaction.id,
                kind="settlement",
                request_id=request.request_id,
                amount_minor=amount,
                created_at=transaction.created_at,
            )
        )
        return transaction

    async def load(
        self, repo: GiftCardRepository, card: GiftCard, amount: int, request_id: str, note: str
    ) -> GiftCardTransaction:
        """An operator's load inside the caller's database transaction: a Credit like the Hub's."""
        request = CreateTransactionRequest.model_validate(
            {"operation": "Credit", "value": from_minor(amount, card.currency),
             "requestId": request_id, "description": note[:500]}
        )  # fmt: skip
        return await self._credit(repo, card, request, amount, note)

    async def credit_as_operator(
        self, card: GiftCard, amount: int, request_id: str, note: str
    ) -> GiftCardTransaction:
        """An operator's load on its own, idempotent on `request_id`."""

        async def attempt() -> GiftCardTransaction:
            async with self._db.writer() as session:
                repo = GiftCardRepository(session)
                existing = await repo.transaction_by_request(card.id, request_id)
                if existing is not None:
                    return existing
                return await self.load(repo, card, amount, request_id, note)

        async def replay() -> GiftCardTransaction:
            async with self._db.reader() as session:
                existing = await GiftCardRepository(session).transaction_by_request(
                    card.id, request_id
                )
            if existing is None:
                raise InvalidTransition("a ledger constraint refused the credit")
            return existing

        return await self._once(attempt, replay)

    # ------------------------------------------------------------------------- reads

    async def transactions(
        self, merchant: Merchant, card_id: str, offset: int, limit: int, base: str
    ) -> tuple[list[TransactionSummary], int]:
        async with self._db.reader() as session:
            repo = GiftCardRepository(session)
            card = await self._card(repo, merchant, card_id)
            rows, total = await repo.transactions(card.id, offset, limit)
        return [views.transaction_summary(base, card, row) for row in rows], total

    async def transaction(
        self, merchant: Merchant, card_id: str, transaction_id: str, base: str
    ) -> TransactionDetail:
        async with self._db.reader() as session:
            repo = GiftCardRepository(session)
            card = await self._card(repo, merchant, card_id)
            transaction = await self._transaction(repo, card, transaction_id)
        return views.transaction_detail(base, card, transaction)

    async def authorization(
        self, merchant: Merchant, card_id: str, transaction_id: str
    ) -> OperationRecord:
        async with self._db.reader() as session:
            repo = GiftCardRepository(session)
            card = await self._card(repo, merchant, card_id)
            transaction = await self._transaction(repo, card, transaction_id)
        return views.authorization(card, transaction)

    async def operations(
        self, merchant: Merchant, card_id: str, transaction_id: str, kind: str
    ) -> list[OperationRecord]:
        async with self._db.reader() as session:
            repo = GiftCardRepository(session)
            card = await self._card(repo, merchant, card_id)
            transaction = await self._transaction(repo, card, transaction_id)
            rows = await repo.operations(transaction.id, kind)
        return [views.operation(card, row) for row in rows]

    # ------------------------------------------------------------------------- settle, cancel

    async def settle(
        self, merchant: Merchant, card_id: str, transaction_id: str, request: OperationRequest
    ) -> OperationRecord:
        return await self._operate(merchant, card_id, transaction_id, request, "settlement")

    async def cancel(
        self, merchant: Merchant, card_id: str, transaction_id: str, request: OperationRequest
    ) -> OperationRecord:
        return await self._operate(merchant, card_id, transaction_id, request, "cancellation")

    async def _operate(
        self,
        merchant: Merchant,
        card_id: str,
        transaction_id: str,
        request: OperationRequest,
        kind: str,
    ) -> OperationRecord:
        async def attempt() -> OperationRecord:
            async with self._db.writer() as session:
                repo = GiftCardRepository(session)
                card = await self._card(repo, merchant, card_id)
                # Locked: a cancellation splits its value between hold and refund from the
                # current totals, which must not change underneath it.
                transaction = await self._transaction(repo, card, transaction_id, lock=True)
                amount = to_card_minor(request.value, card)
                existing = await repo.operation_by_request(transaction.id, kind, request.request_id)
                if existing is not None:
                    return self._replay_operation(card, existing, request, amount)
                if kind == "settlement":
                    await self._settle(repo, card, transaction, amount)
                else:
                    await self._cancel(repo, card, transaction, amount)
                row = GiftCardOperation(
                    oid=generate_public_id(),
                    transaction_pk=transaction.id,
                    kind=kind,
                    request_id=request.request_id,
                    amount_minor=amount,
                    created_at=utcnow(),
                )
                await repo.add_operation(row)
                return views.operation(card, row)

        async def replay() -> OperationRecord:
            async with self._db.reader() as session:
                repo = GiftCardRepository(session)
                card = await self._card(repo, merchant, card_id)
                transaction = await self._transaction(repo, card, transaction_id)
                existing = await repo.operation_by_request(transaction.id, kind, request.request_id)
                if existing is None:
                    raise InvalidTransition(f"a ledger constraint refused the {kind}")
                return self._replay_operation(
                    card, existing, request, to_card_minor(request.value, card)
                )

        return await self._once(attempt, replay)

    def _replay_operation(
        self, card: GiftCard, existing: GiftCardOperation, request: OperationRequest, amount: int
    ) -> OperationRecord:
        if existing.amount_minor != amount:
            raise Conflict(
                f"requestId {request.request_id!r} was used for a {existing.kind} of "
                f"{money(existing.amount_minor, card)}",
                code="request-id-reused",
            )
        return views.operation(card, existing)

    async def _settle(
        self,
        repo: GiftCardRepository,
        card: GiftCard,
        transaction: GiftCardTransaction,
        amount: int,
    ) -> None:
        if transaction.operation != "Debit":
            raise Refused("a Credit is settled when it is made", code="nothing-to-settle")
        if not await repo.settle(transaction.id, amount):
            held = transaction.amount_minor - transaction.settled_minor - transaction.released_minor
            raise Refused(
                f"{money(amount, card)} exceeds the {money(held, card)} still held by "
                f"transaction {transaction.transaction_id}",
                code="exceeds-held-amount",
            )
        if not await repo.move(card.id, 0, -amount):
            raise InvalidTransition("card totals disagree with its transactions")
        await repo.add_entry(card.id, "settle", 0, -amount, transaction.id)

    async def _cancel(
        self,
        repo: GiftCardRepository,
        card: GiftCard,
        transaction: GiftCardTransaction,
        amount: int,
        *,
        kind_of_release: str = "release",
    ) -> None:
        cancellable = (
            transaction.amount_minor - transaction.released_minor - transaction.refunded_minor
        )
        if amount > cancellable:
            raise Refused(
                f"{money(amount, card)} exceeds the {money(cancellable, card)} of transaction "
                f"{transaction.transaction_id} that is not cancelled yet",
                code="exceeds-cancellable-amount",
            )
        if transaction.operation == "Credit":
            # Taking back a recharge: only while the card still has the money.
            if not await repo.move(card.id, -amount, 0):
                raise Refused(
                    f"gift card {card.card_id} no longer has {money(amount, card)} to take back",
                    code="insufficient-balance",
                )
            if not await repo.cancel(transaction.id, 0, amount, close_hold=False):
                raise InvalidTransition("transaction totals changed under a lock")
            await repo.add_entry(card.id, "reverse", -amount, 0, transaction.id)
            return
        held = transaction.amount_minor - transaction.settled_minor - transaction.released_minor
        released = min(amount, held)
        refunded = amount - released
        if not await repo.cancel(transaction.id, released, refunded, close_hold=released == held):
            raise InvalidTransition("transaction totals changed under a lock")
        # A single-use card whose only debit is wholly cancelled can be used again.
        wholly_cancelled = amount == cancellable
        if not await repo.move(card.id, amount, -released, -1 if wholly_cancelled else 0):
            raise InvalidTransition("card totals disagree with its transactions")
        if released:
            await repo.add_entry(card.id, kind_of_release, released, -released, transaction.id)
        if refunded:
            await repo.add_entry(card.id, "refund", refunded, 0, transaction.id)

    # ------------------------------------------------------------------------- hold expiry

    async def release_expired_holds(self, now: datetime | None = None, limit: int = 100) -> int:
        """Release what Debits still hold past their expiry, as a cancellation the Hub will see
        in `GET …/cancellations`. Safe on many processes: each transaction is re-read under its
        lock and a second release of it is a duplicate `requestId`."""
        now = now or utcnow()
        async with self._db.reader() as session:
            candidates = await GiftCardRepository(session).expired_holds(now, limit)
        released = 0
        for card_pk, transaction_id in candidates:
            try:
                released += await self._release_expired(card_pk, transaction_id, now)
            except IntegrityError:
                continue  # another process released it first
        return released

    async def _release_expired(self, card_pk: uuid.UUID, transaction_id: str, now: datetime) -> int:
        async with self._db.writer() as session:
            repo = GiftCardRepository(session)
            transaction = await repo.transaction(card_pk, transaction_id, lock=True)
            if transaction is None or transaction.hold_expires_at is None:
                return 0
            if transaction.hold_expires_at > now:
                return 0
            held = transaction.amount_minor - transaction.settled_minor - transaction.released_minor
            if held <= 0:
                return 0
            card = await session.get(GiftCard, card_pk)
            assert card is not None
            await self._cancel(repo, card, transaction, held, kind_of_release="expire")
            await repo.add_operation(
                GiftCardOperation(
                    oid=generate_public_id(),
                    transaction_pk=transaction.id,
                    kind="cancellation",
                    request_id=HOLD_EXPIRED,
                    amount_minor=held,
                    created_at=now,
                )
            )
            log.info(
                "released %s held by expired transaction %s of gift card %s",
                money(held, card), transaction.transaction_id, card.card_id,
            )  # fmt: skip
            return 1

    async def run(self, stop: asyncio.Event) -> None:
        """The hold-expiry loop of `serve` and `worker`."""
        while not stop.is_set():
            try:
                await self.release_expired_holds()
            except Exception:  # a bad round must not end the loop
                log.exception("releasing expired gift card holds failed")
            try:
                await asyncio.wait_for(
                    stop.wait(), timeout=self._settings.giftcard_expiry_poll_seconds
                )
            except TimeoutError:
                pass


__all__ = ["GiftCardLedger", "check_usable", "to_card_minor"]
