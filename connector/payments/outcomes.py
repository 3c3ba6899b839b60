"""Outcomes learnt after POST /payments has answered `undefined`.

Two sources: the reconciler, which asks the acquirer about pending payments on a schedule, and
the webhook the provider's core calls. Either one moves the state machine and, in the same
transaction, enqueues the callback to VTEX. Both are idempotent: a payment is decided once, so a
duplicate or late report changes nothing, except that an approval arriving after the payment was
cancelled is voided at the acquirer and logged, never revived.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from connector.acquirers.base import (
    AuthorizationOutcome,
    AuthorizationResult,
    OperationRequest,
)
from connector.db.engine import Database
from connector.db.tables import Merchant, Payment, utcnow
from connector.errors import AcquirerError, BadRequest, NotFound
from connector.payments.common import Budget, authorization_key
from connector.payments.repository import PaymentRepository
from connector.payments.service import PaymentService
from connector.payments.states import PaymentState
from connector.settings import Settings
from protocol.payments import InboundRequest, InboundResponse, InboundResponseData

log = logging.getLogger(__name__)
S = PaymentState
BATCH = 50


class Outcomes:
    def __init__(self, database: Database, settings: Settings, payments: PaymentService) -> None:
        self._db = database
        self._settings = settings
        self._payments = payments
        self._interval = timedelta(seconds=settings.reconcile_interval_seconds)
        self._max_interval = timedelta(seconds=settings.reconcile_max_interval_seconds)
        self._stale_after = timedelta(seconds=settings.attempt_stale_seconds)

    # ------------------------------------------------------------------ reconciler

    async def reconcile_due(self) -> int:
        """Check every pending payment that is due; the number checked by this process."""
        now = utcnow()
        async with self._db.reader() as session:
            due = await PaymentRepository(session).due_for_check(now, BATCH)
        checked = 0
        for payment in due:
            async with self._db.writer() as session:
                claimed = await PaymentRepository(session).claim_check(
                    payment.id, now, now + self.check_interval(now - payment.created_at)
                )
            if claimed:
                checked += 1
                await self._check(payment)
        return checked

    async def recover_abandoned(self) -> int:
        """Authorizations whose request died with its process (`kill -9`, a crash, a database
        lost mid-request) before it recorded an outcome. The acquirer may have approved one: it
        is asked, as a retry would ask, and what it knows is recorded and called back, so that
        neither the money nor VTEX waits for the gateway's next retry (an hour, for cards).

        The claim is the one a retry of the request takes (`take_over_authorization`), so a
        retry and this recovery never both act. What the acquirer never saw becomes `pending`:
        only VTEX's retry carries the card again, and it may still take the payment over."""
        now = utcnow()
        async with self._db.reader() as session:
            abandoned = await PaymentRepository(session).abandoned_authorizations(
                now - self._stale_after, BATCH
            )
        recovered = 0
        for payment in abandoned:
            async with self._db.writer() as session:
                won = await PaymentRepository(session).take_over_authorization(
                    payment.id, now - self._stale_after, now
                )
            if won:
                recovered += 1
                await self._recover(payment)
        return recovered

    async def _recover(self, payment: Payment) -> None:
        acquirer = self._payments.acquirer_for(payment)
        budget = Budget(self._settings.acquirer_budget(payment.is_test_suite))
        try:
            known = await budget.run(
                lambda: acquirer.query(authorization_key(payment)), acquirer.name
            )
        except AcquirerError as error:  # the claim goes stale again and the next pass retries
            log.warning("payment %s: recovery failed: %r", payment.payment_id, error)
            return
        log.warning(
            "payment %s: authorization abandoned by its process; the acquirer says %s",
            payment.payment_id,
            known.outcome if known is not None else "it never saw it",
        )
        if known is not None and known.outcome is not AuthorizationOutcome.PENDING:
            await self.apply(payment, known)
        else:
            await self._payments.record_undecided(payment, known)

    def check_interval(self, age: timedelta) -> timedelta:
        """How long until the next check of a pending payment this old: a tenth of its age, so
        a slow acquirer's answer is found within seconds and a boleto paid days later costs a
        few hundred queries, not a quarter of a million."""
        return max(self._interval, min(age / 10, self._max_interval))

    async def _check(self, payment: Payment) -> None:
        acquirer = self._payments.acquirer_for(payment)
        key = authorization_key(payment)
        budget = Budget(self._settings.acquirer_budget(payment.is_test_suite))
        try:
            known = await budget.run(lambda: acquirer.query(key), acquirer.name)
        except AcquirerError as error:
            log.warning("payment %s: reconciliation failed: %r", payment.payment_id, error)
            return
        expired = utcnow() >= payment.created_at + timedelta(seconds=payment.delay_to_cancel)
        if known is not None and known.outcome is not AuthorizationOutcome.PENDING:
            await self.apply(payment, known)
        elif expired:
            await self._expire(payment, known)

    async def _expire(self, payment: Payment, known: AuthorizationResult | None) -> None:
        """Past `delayToCancel` with no decision: cancelled, as VTEX will cancel it too."""
        async with self._db.writer() as session:
            cancelled = await PaymentRepository(session).reserve_cancellation(payment.id, S.PENDING)
        if cancelled:
            log.warning(
                "payment %s expired after %d s without a decision; cancelled",
                payment.payment_id,
                payment.delay_to_cancel,
            )
            if known is not None:
                # The acquirer knows the authorization: make sure it can never be captured.
                await self._void(payment, "expired")

    # ------------------------------------------------------------------ any source

    async def apply(self, payment: Payment, result: AuthorizationResult) -> Payment:
        decided = await self._payments.record_outcome(payment, result, notify=True)
        if (
            decided.status == S.CANCELLED
            and decided.authorization_id is None
            and result.outcome is AuthorizationOutcome.APPROVED
        ):
            log.warning(
                "payment %s: approval arrived after cancellation; voiding it", payment.payment_id
            )
            await self._void(decided, "late-approval")
        return decided

    async def _void(self, payment: Payment, reason: str) -> None:
        acquirer = self._payments.acquirer_for(payment)
        key = authorization_key(payment)
        try:
            result = await acquirer.void(
                OperationRequest(
                    idempotency_key=f"{key}:void:{reason}",
                    authorization_key=key,
                    amount_minor=payment.amount_minor,
                    currency=payment.currency,
                )
            )
        except AcquirerError as error:
            log.error(
                "payment %s: void after %s failed, operator action needed: %r",
                payment.payment_id,
                reason,
                error,
            )
            return
        log.warning(
            "payment %s: void after %s: %s",
            payment.payment_id,
            reason,
            "done" if result.succeeded else f"refused ({result.code})",
        )

    async def report(self, payment_pk: uuid.UUID, result: AuthorizationResult) -> Payment:
        """The provider's core reports an outcome (webhook)."""
        async with self._db.reader() as session:
            payment = await PaymentRepository(session).by_pk(payment_pk)
        if payment is None:
            raise NotFound("no payment for that idempotency key", code="payment-not-found")
        return await self.apply(payment, result)

    async def inbound(
        self, merchant: Merchant, payment_id: str, action: str, request: InboundRequest
    ) -> InboundResponse:
        """An inbound request VTEX forwards: routed to the payment's acquirer."""
        if request.payment_id is not None and request.payment_id != payment_id:
            raise BadRequest(
                "paymentId in the body differs from the one in the path", code="payment-id-mismatch"
            )
        async with self._db.reader() as session:
            payment = await PaymentRepository(session).get(merchant.id, payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id!r}", code="payment-not-found")
        acquirer = self._payments.acquirer_for(payment)
        body = request.request_data.body if request.request_data else None
        answer = await acquirer.inbound(action, authorization_key(payment), body or "")
        if answer is None:
            raise NotFound(f"unknown inbound action {action!r}", code="unknown-action")
        if answer.outcome is not None:
            await self.apply(payment, answer.outcome)
        return InboundResponse(
            requestId=request.request_id,
            paymentId=payment_id,
            responseData=InboundResponseData(
                statusCode=answer.status_code,
                contentType=answer.content_type,
                content=answer.content,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.reconcile_due()
                await self.recover_abandoned()
            except Exception:  # keep reconciling whatever one pass did
                log.exception("reconciliation pass failed")
            try:
                await asyncio.wait_for(stop.wait(), self._settings.reconcile_interval_seconds)
            except TimeoutError:
                pass
