"""Every query on payments and their operations. Limits are enforced by conditional updates, so
they hold when requests race on several processes; the service only reads the outcome."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, and_, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from connector.db.tables import Payment, PaymentOperation, utcnow
from connector.payments.states import UNDECIDED, PaymentState, sources_of

S = PaymentState


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _changed(result: Any) -> bool:
    assert isinstance(result, CursorResult)
    return bool(result.rowcount)


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # ------------------------------------------------------------------ payments

    async def insert_if_absent(self, values: dict[str, Any]) -> tuple[Payment, bool]:
        """Insert unless (merchant, paymentId) exists; the unique constraint decides the race."""
        statement = (
            _insert(self._session, Payment)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["merchant_id", "payment_id"])
        )
        if _changed(await self._session.execute(statement)):
            return Payment(**values), True  # what was inserted, without reading it back
        payment = await self.get(values["merchant_id"], values["payment_id"])
        assert payment is not None
        return payment, False

    async def get(self, merchant_id: uuid.UUID, payment_id: str) -> Payment | None:
        return await self._session.scalar(
            select(Payment)
            .where(Payment.merchant_id == merchant_id, Payment.payment_id == payment_id)
            .execution_options(populate_existing=True)
        )

    async def take_over_authorization(
        self, pk: uuid.UUID, stale_before: datetime, now: datetime
    ) -> bool:
        """Claim an undecided authorization whose last attempt is older than `stale_before`."""
        return _changed(
            await self._session.execute(
                update(Payment)
                .where(
                    Payment.id == pk,
                    Payment.status.in_(UNDECIDED),
                    (Payment.authorizing_since.is_(None))
                    | (Payment.authorizing_since < stale_before),
                )
                .values(authorizing_since=now)
            )
        )

    async def decide(
        self,
        pk: uuid.UUID,
        sources: Iterable[PaymentState],
        target: PaymentState,
        **values: Any,
    ) -> Payment | None:
        """Move an undecided payment to `target` unless someone else decided it first; the
        updated payment, or None when it was not in one of `sources`."""
        result = await self._session.execute(
            update(Payment)
            .where(Payment.id == pk, Payment.status.in_(list(sources)))
            .values(status=target, updated_at=utcnow(), **values)
            .returning(Payment)
            .execution_options(populate_existing=True)
        )
        return result.scalars().first()

    async def personal_data_batch(
        self, after: uuid.UUID, limit: int
    ) -> list[tuple[uuid.UUID, bytes]]:
        """Encrypted personal data in primary-key order, for key rotation."""
        rows = await self._session.execute(
            select(Payment.id, Payment.personal_data)
            .where(Payment.id > after, Payment.personal_data.is_not(None))
            .order_by(Payment.id)
            .limit(limit)
        )
        return [(pk, blob) for pk, blob in rows if blob is not None]

    async def set_personal_data(self, pk: uuid.UUID, blob: bytes) -> None:
        await self._session.execute(
            update(Payment).where(Payment.id == pk).values(personal_data=blob)
        )

    # ------------------------------------------------------------------ cumulative limits

    async def reserve_settlement(self, pk: uuid.UUID, amount: int) -> bool:
        limit = func.coalesce(Payment.max_value_minor, Payment.amount_minor)
        return _changed(
            await self._session.execute(
                update(Payment)
                .where(
                    Payment.id == pk,
                    Payment.status.in_(sources_of(S.SETTLED)),
                    Payment.settled_minor + amount <= limit,
                )
                .values(
                    settled_minor=Payment.settled_minor + amount,
                    status=S.SETTLED,
                    updated_at=utcnow(),
                )
            )
        )

    async def release_settlement(self, pk: uuid.UUID, amount: int) -> None:
        await self._session.execute(
            update(Payment)
            .where(
                Payment.id == pk,
                Payment.status == S.SETTLED,
                Payment.settled_minor - amount >= Payment.refunded_minor,
            )
            .values(
                settled_minor=Payment.settled_minor - amount,
                status=case((Payment.settled_minor - amount == 0, S.APPROVED), else_=S.SETTLED),
                updated_at=utcnow(),
            )
        )

    async def reserve_refund(self, pk: uuid.UUID, amount: int) -> bool:
        return _changed(
            await self._session.execute(
                update(Payment)
                .where(
                    Payment.id == pk,
                    Payment.status.in_(sources_of(S.REFUNDED)),
                    Payment.refunded_minor + amount <= Payment.settled_minor,
                )
                .values(
                    refunded_minor=Payment.refunded_minor + amount,
                    status=S.REFUNDED,
                    updated_at=utcnow(),
                )
            )
        )

    async def release_refund(self, pk: uuid.UUID, amount: int) -> None:
        await self._session.execute(
            update(Payment)
            .where(Payment.id == pk, Payment.status == S.REFUNDED, Payment.refunded_minor >= amount)
            .values(
                refunded_minor=Payment.refunded_minor - amount,
                status=case((Payment.refunded_minor - amount == 0, S.SETTLED), else_=S.REFUNDED),
                updated_at=utcnow(),
            )
        )

    async def reserve_cancellation(self, pk: uuid.UUID, source: PaymentState) -> bool:
        """Cancel only from `source` and only while nothing was settled."""
        return _changed(
            await self._session.execute(
                update(Payment)
                .where(Payment.id == pk, Payment.status == source, Payment.settled_minor == 0)
                .values(status=S.CANCELLED, updated_at=utcnow())
            )
        )

    async def release_cancellation(self, pk: uuid.UUID, back_to: PaymentState) -> None:
        await self._session.execute(
            update(Payment)
            .where(
                Payment.id == pk, Payment.status == S.CANCELLED, Payment.cancellation_id.is_(None)
            )
            .values(status=back_to, updated_at=utcnow())
        )

    async def set_cancellation_id(self, pk: uuid.UUID, cancellation_id: str) -> None:
        await self._session.execute(
            update(Payment)
            .where(Payment.id == pk, Payment.cancellation_id.is_(None))
            .values(cancellation_id=cancellation_id)
        )

    # ------------------------------------------------------------------ operations

    async def insert_operation_if_absent(
        self, payment_pk: uuid.UUID, kind: str, request_id: str, amount: int
    ) -> tuple[PaymentOperation, bool]:
        statement = (
            _insert(self._session, PaymentOperation)
            .values(
                id=uuid.uuid4(),
                payment_pk=payment_pk,
                kind=kind,
                request_id=request_id,
                amount_minor=amount,
                state="in_progress",
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["payment_pk", "kind", "request_id"])
        )
        created = _changed(await self._session.execute(statement))
        operation = await self.get_operation(payment_pk, kind, request_id)
        assert operation is not None
        return operation, created

    async def get_operation(
        self, payment_pk: uuid.UUID, kind: str, request_id: str
    ) -> PaymentOperation | None:
        return await self._session.scalar(
            select(PaymentOperation)
            .where(
                and_(
                    PaymentOperation.payment_pk == payment_pk,
                    PaymentOperation.kind == kind,
                    PaymentOperation.request_id == request_id,
                )
            )
            .execution_options(populate_existing=True)
        )

    async def take_over_operation(self, operation_id: uuid.UUID, stale_before: datetime) -> bool:
        """Claim an operation left in progress by a crashed or timed-out attempt."""
        return _changed(
            await self._session.execute(
                update(PaymentOperation)
                .where(
                    PaymentOperation.id == operation_id,
                    PaymentOperation.state == "in_progress",
                    PaymentOperation.created_at < stale_before,
                )
                .values(created_at=utcnow())
            )
        )

    async def complete_operation(
        self, operation_id: uuid.UUID, state: str, http_status: int, response: dict[str, Any]
    ) -> None:
        await self._session.execute(
            update(PaymentOperation)
            .where(PaymentOperation.id == operation_id)
            .values(state=state, http_status=http_status, response=response, completed_at=utcnow())
        )

    async def delete_operation(self, operation_id: uuid.UUID) -> None:
        await self._session.execute(
            delete(PaymentOperation).where(PaymentOperation.id == operation_id)
        )

    # ------------------------------------------------------------------ reconciliation

    async def due_for_check(self, now: datetime, limit: int) -> list[Payment]:
        """Pending payments whose next acquirer check is due."""
        return list(
            await self._session.scalars(
                select(Payment)
                .where(
                    Payment.status == S.PENDING,
                    (Payment.next_check_at.is_(None)) | (Payment.next_check_at <= now),
                )
                .order_by(Payment.next_check_at)
                .limit(limit)
            )
        )

    async def abandoned_authorizations(self, stale_before: datetime, limit: int) -> list[Payment]:
        """Payments still `received` whose authorization attempt is older than `stale_before`:
        the process that made it died (or lost its database) before recording an outcome."""
        return list(
            await self._session.scalars(
                select(Payment)
                .where(Payment.status == S.RECEIVED, Payment.authorizing_since < stale_before)
                .order_by(Payment.authorizing_since)
                .limit(limit)
            )
        )

    async def claim_check(self, pk: uuid.UUID, now: datetime, next_at: datetime) -> bool:
        """Lease one pending payment to this reconciler until `next_at`."""
        return _changed(
            await self._session.execute(
                update(Payment)
                .where(
                    Payment.id == pk,
                    Payment.status == S.PENDING,
                    (Payment.next_check_at.is_(None)) | (Payment.next_check_at <= now),
                )
                .values(next_check_at=next_at)
            )
        )

    async def by_pk(self, pk: uuid.UUID) -> Payment | None:
        return await self._session.scalar(
            select(Payment).where(Payment.id == pk).execution_options(populate_existing=True)
        )
