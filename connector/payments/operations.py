"""Settlements, refunds and cancellations. No Starlette, no SQL.

An operation row is unique per (payment, kind, requestId), so only the request that inserts it
moves money; a repeat replays the stored answer. Amount limits are reserved by conditional
updates before the acquirer is called and released only when the acquirer refuses. When its
answer is unknown (timeout, error), nothing is released: the request answers 500 so that VTEX
retries, and the retry first asks the acquirer whether the operation happened, then (only if it
did not) sends it again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from connector.acquirers.base import Acquirer, OperationRequest, OperationResult
from connector.db.engine import Database
from connector.db.tables import Merchant, Payment, PaymentOperation, utcnow
from connector.errors import AcquirerError, BadRequest, NotFound
from connector.payments.common import POLL_SECONDS, Budget, authorization_key, minor_units
from connector.payments.repository import PaymentRepository
from connector.payments.states import (
    CANCELLABLE,
    REFUNDABLE,
    SETTLEABLE,
    PaymentState,
    transition,
)
from connector.settings import Settings
from protocol import money
from protocol.payments import CancellationRequest, RefundRequest, SettlementRequest

log = logging.getLogger(__name__)
S = PaymentState


class OperationKind(StrEnum):
    SETTLEMENT = "settlement"
    REFUND = "refund"
    CANCELLATION = "cancellation"


_ID_FIELD = {
    OperationKind.SETTLEMENT: "settleId",
    OperationKind.REFUND: "refundId",
    OperationKind.CANCELLATION: "cancellationId",
}
_SUCCESS_MESSAGE = {
    OperationKind.SETTLEMENT: "Successfully settled",
    OperationKind.REFUND: "Successfully refunded",
    OperationKind.CANCELLATION: "Successfully cancelled",
}


@dataclass(frozen=True, slots=True)
class OperationReply:
    """An HTTP status and the protocol body, exactly as stored for replays."""

    http_status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: str
    message: str


class OperationService:
    def __init__(
        self, database: Database, settings: Settings, acquirers: Mapping[str, Acquirer]
    ) -> None:
        self._db = database
        self._settings = settings
        self._acquirers = acquirers
        # An attempt older than this lost its process (or its answer): another may take over.
        self._stale_after = timedelta(seconds=settings.attempt_stale_seconds)

    async def settle(
        self, merchant: Merchant, payment_id: str, request: SettlementRequest
    ) -> OperationReply:
        return await self._operate(
            OperationKind.SETTLEMENT,
            merchant.id,
            payment_id,
            request.request_id,
            request.payment_id,
            request.value,
        )

    async def refund(
        self, merchant: Merchant, payment_id: str, request: RefundRequest
    ) -> OperationReply:
        return await self._operate(
            OperationKind.REFUND,
            merchant.id,
            payment_id,
            request.request_id,
            request.payment_id,
            request.value,
        )

    async def cancel(
        self, merchant: Merchant, payment_id: str, request: CancellationRequest
    ) -> OperationReply:
        return await self._operate(
            OperationKind.CANCELLATION,
            merchant.id,
            payment_id,
            request.request_id,
            request.payment_id,
            None,
        )

    async def _operate(
        self,
        kind: OperationKind,
        merchant_id: uuid.UUID,
        payment_id: str,
        request_id: str,
        body_payment_id: str | None,
        value: Decimal | None,
    ) -> OperationReply:
        if body_payment_id is not None and body_payment_id != payment_id:
            raise BadRequest(
                "paymentId in the body differs from the one in the path", code="payment-id-mismatch"
            )
        async with self._db.reader() as session:
            payment = await PaymentRepository(session).get(merchant_id, payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id!r}", code="payment-not-found")
        amount = 0
        if value is not None:
            amount = minor_units(value, payment.currency)
            if amount == 0:
                raise BadRequest("value must be greater than zero", code="invalid-value")

        async with self._db.writer() as session:
            repository = PaymentRepository(session)
            operation, created = await repository.insert_operation_if_absent(
                payment.id, kind, request_id, amount
            )
            if created:
                reply = await self._reserve(repository, kind, payment, operation)
                if reply is not None:
                    return reply
        budget = Budget(self._settings.acquirer_budget(payment.is_test_suite))
        if not created:
            return await self._replay_or_resume(kind, payment, operation, budget)
        return await self._execute(kind, payment, operation, budget)

    async def _reserve(
        self,
        repository: PaymentRepository,
        kind: OperationKind,
        payment: Payment,
        operation: PaymentOperation,
    ) -> OperationReply | None:
        """Reserve the amount or state atomically; a reply when the operation ends here."""
        amount = operation.amount_minor
        if kind is OperationKind.SETTLEMENT:
            if await repository.reserve_settlement(payment.id, amount):
                return None
            current = await repository.get(payment.merchant_id, payment.payment_id)
            assert current is not None
            refusal = _settlement_refusal(current, amount)
        elif kind is OperationKind.REFUND:
            if await repository.reserve_refund(payment.id, amount):
                return None
            current = await repository.get(payment.merchant_id, payment.payment_id)
            assert current is not None
            refusal = _refund_refusal(current, amount)
        else:
            current = await repository.get(payment.merchant_id, payment.payment_id)
            assert current is not None
            state = PaymentState(current.status)
            if state in CANCELLABLE and await repository.reserve_cancellation(current.id, state):
                transition(state, S.CANCELLED)
                return None
            if state is S.RECEIVED:
                await repository.delete_operation(operation.id)
                return self._transient(
                    kind,
                    payment,
                    operation,
                    "authorization-in-progress",
                    "The authorization is still in progress; retry later",
                )
            if state is S.CANCELLED or state is S.DENIED:
                # Nothing (left) to void: the cancellation succeeds, and says so every time.
                cancellation_id = current.cancellation_id or _reference("CNL", operation)
                if state is S.CANCELLED:
                    await repository.set_cancellation_id(current.id, cancellation_id)
                reply = self._success(kind, payment, operation, cancellation_id)
                await repository.complete_operation(
                    operation.id, "succeeded", reply.http_status, reply.body
                )
                return reply
            refusal = _Refusal(
                "payment-already-settled",
                "A settled payment cannot be cancelled; refund it instead",
            )
        reply = self._refused(kind, payment, operation, refusal)
        await repository.complete_operation(operation.id, "refused", reply.http_status, reply.body)
        log.info(
            "payment %s: %s %s refused: %s",
            payment.payment_id,
            kind,
            operation.request_id,
            refusal.code,
        )
        return reply

    async def _execute(
        self,
        kind: OperationKind,
        payment: Payment,
        operation: PaymentOperation,
        budget: Budget,
        *,
        resume: bool = False,
    ) -> OperationReply:
        """Call the acquirer for a reserved operation and record its answer. Resuming an attempt
        whose outcome is unknown, ask first: a second call is sent only if the first never
        arrived, so even an acquirer that ignores idempotency keys cannot act twice."""
        acquirer = self._acquirers[payment.acquirer]
        request = OperationRequest(
            idempotency_key=f"{authorization_key(payment)}:{kind}:{operation.request_id}",
            authorization_key=authorization_key(payment),
            amount_minor=operation.amount_minor or payment.amount_minor,
            currency=payment.currency,
        )
        call = {
            OperationKind.SETTLEMENT: acquirer.capture,
            OperationKind.REFUND: acquirer.refund,
            OperationKind.CANCELLATION: acquirer.void,
        }[kind]
        try:
            known: OperationResult | None = None
            if resume:
                key = request.idempotency_key
                known = await budget.run(lambda: acquirer.query_operation(key), acquirer.name)
            result = (
                known
                if known is not None
                else await budget.run(lambda: call(request), acquirer.name)
            )
        except AcquirerError as error:
            # Outcome unknown: keep the reservation; VTEX's retry asks again with this key.
            log.warning(
                "payment %s: %s %s outcome unknown: %r",
                payment.payment_id,
                kind,
                operation.request_id,
                error,
            )
            return self._transient(kind, payment, operation, error.code, error.message)
        if kind is OperationKind.CANCELLATION and payment.authorization_id is None:
            # A pending payment: the void makes sure a late approval can never be captured; if
            # the acquirer has nothing to void, the cancellation stands all the same.
            result = OperationResult(
                True, result.reference or _reference("CNL", operation), None, None
            )

        async with self._db.writer() as session:
            repository = PaymentRepository(session)
            if result.succeeded:
                assert result.reference is not None
                reply = self._success(kind, payment, operation, result.reference)
                if kind is OperationKind.CANCELLATION:
                    await repository.set_cancellation_id(payment.id, result.reference)
                await repository.complete_operation(
                    operation.id, "succeeded", reply.http_status, reply.body
                )
                log.info(
                    "payment %s: %s %s succeeded", payment.payment_id, kind, operation.request_id
                )
                return reply
            await self._release(repository, kind, payment, operation)
            reply = self._refused(
                kind,
                payment,
                operation,
                _Refusal(
                    result.code or "refused-by-acquirer",
                    result.message or "Refused by the acquirer",
                ),
            )
            await repository.complete_operation(
                operation.id, "refused", reply.http_status, reply.body
            )
            return reply

    async def _release(
        self,
        repository: PaymentRepository,
        kind: OperationKind,
        payment: Payment,
        operation: PaymentOperation,
    ) -> None:
        if kind is OperationKind.SETTLEMENT:
            await repository.release_settlement(payment.id, operation.amount_minor)
        elif kind is OperationKind.REFUND:
            await repository.release_refund(payment.id, operation.amount_minor)
        else:
            await repository.release_cancellation(payment.id, S.APPROVED)

    async def _replay_or_resume(
        self, kind: OperationKind, payment: Payment, operation: PaymentOperation, budget: Budget
    ) -> OperationReply:
        """Same requestId again: the stored answer, or the unfinished attempt taken over."""
        wait = min(self._settings.duplicate_wait_seconds, budget.remaining())
        deadline = asyncio.get_running_loop().time() + wait
        stale_before = utcnow() - self._stale_after
        while True:
            if operation.state != "in_progress":
                assert operation.http_status is not None and operation.response is not None
                return OperationReply(operation.http_status, operation.response)
            if operation.created_at < stale_before:
                break  # nobody is waiting for an answer any more: take over now
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
            async with self._db.reader() as session:
                fresh = await PaymentRepository(session).get_operation(
                    payment.id, kind, operation.request_id
                )
            if fresh is None:  # the first attempt gave up without effect: start afresh
                return await self._operate_again(kind, payment, operation)
            operation = fresh
        async with self._db.writer() as session:
            won = await PaymentRepository(session).take_over_operation(
                operation.id, utcnow() - self._stale_after
            )
        if won:
            return await self._execute(kind, payment, operation, budget, resume=True)
        return self._transient(
            kind,
            payment,
            operation,
            "operation-in-progress",
            "The same request is being processed; retry later",
        )

    async def _operate_again(
        self, kind: OperationKind, payment: Payment, operation: PaymentOperation
    ) -> OperationReply:
        amount = (
            None
            if kind is OperationKind.CANCELLATION
            else money.from_minor(operation.amount_minor, payment.currency)
        )
        return await self._operate(
            kind, payment.merchant_id, payment.payment_id, operation.request_id, None, amount
        )

    # ------------------------------------------------------------------ replies

    def _body(
        self,
        kind: OperationKind,
        payment: Payment,
        operation: PaymentOperation,
        reference: str | None,
        amount: int,
        code: str | None,
        message: str,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"paymentId": payment.payment_id, _ID_FIELD[kind]: reference}
        if kind is not OperationKind.CANCELLATION:
            body["value"] = _number(money.from_minor(amount, payment.currency))
        body.update(code=code, message=message, requestId=operation.request_id)
        return body

    def _success(
        self, kind: OperationKind, payment: Payment, operation: PaymentOperation, reference: str
    ) -> OperationReply:
        return OperationReply(
            200,
            self._body(
                kind,
                payment,
                operation,
                reference,
                operation.amount_minor,
                None,
                _SUCCESS_MESSAGE[kind],
            ),
        )

    def _refused(
        self,
        kind: OperationKind,
        payment: Payment,
        operation: PaymentOperation,
        refusal: _Refusal,
    ) -> OperationReply:
        # 200 with a null id: a definitive no that VTEX should not retry (5xx would be retried
        # for a day and count towards Contingency Mode).
        return OperationReply(
            200, self._body(kind, payment, operation, None, 0, refusal.code, refusal.message)
        )

    def _transient(
        self,
        kind: OperationKind,
        payment: Payment,
        operation: PaymentOperation,
        code: str,
        message: str,
    ) -> OperationReply:
        # 500 is VTEX's signal to retry the same request later (settlements and cancellations
        # for a day, refunds for 24 hours).
        return OperationReply(500, self._body(kind, payment, operation, None, 0, code, message))

    # ------------------------------------------------------------------ helpers


def _reference(prefix: str, operation: PaymentOperation) -> str:
    return f"{prefix}-{operation.id.hex[:16].upper()}"


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _settlement_refusal(payment: Payment, amount: int) -> _Refusal:
    state = PaymentState(payment.status)
    if state not in SETTLEABLE:
        return _Refusal("payment-not-settleable", f"A payment in state {state} cannot be settled")
    limit = payment.max_value_minor or payment.amount_minor
    return _Refusal(
        "exceeds-authorized-value",
        f"Settling {_money(amount, payment)} would exceed the authorized "
        f"{_money(limit, payment)} ({_money(payment.settled_minor, payment)} already settled)",
    )


def _refund_refusal(payment: Payment, amount: int) -> _Refusal:
    state = PaymentState(payment.status)
    if state not in REFUNDABLE:
        return _Refusal("payment-not-settled", f"A payment in state {state} cannot be refunded")
    return _Refusal(
        "exceeds-settled-value",
        f"Refunding {_money(amount, payment)} would exceed the settled "
        f"{_money(payment.settled_minor, payment)} "
        f"({_money(payment.refunded_minor, payment)} already refunded)",
    )


def _money(minor: int, payment: Payment) -> str:
    return f"{money.from_minor(minor, payment.currency)} {payment.currency}"


__all__ = ["OperationKind", "OperationReply", "OperationService"]
