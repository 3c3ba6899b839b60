"""Payment use cases: authorize, settle, refund, cancel. No Starlette, no SQL.

Exactly-once rests on two database facts: a payment row is unique per (merchant, paymentId), so
only the request that inserts it calls the acquirer; an operation row is unique per (payment,
kind, requestId), so only the request that inserts it moves money. Whoever loses a race reads the
winner's result. Amount limits are reserved by conditional updates before the acquirer is called
and released only when the acquirer refuses. When the acquirer's answer is unknown (timeout,
error), nothing is released: the request is answered so that VTEX retries, and the retry asks
the acquirer again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from connector.acquirers.base import (
    Acquirer,
    AuthorizationOutcome,
    AuthorizationRequest,
    AuthorizationResult,
    CardData,
    Flow,
    OperationRequest,
    OperationResult,
)
from connector.db.engine import Database
from connector.db.tables import Merchant, Payment, PaymentOperation, utcnow
from connector.errors import AcquirerError, AcquirerTimeout, BadRequest, NotFound
from connector.outbox.allowlist import callback_url_allowed
from connector.outbox.repository import OutboxRepository
from connector.payments.repository import PaymentRepository
from connector.payments.states import (
    CANCELLABLE,
    REFUNDABLE,
    SETTLEABLE,
    UNDECIDED,
    PaymentState,
    sources_of,
    transition,
    wire_status,
)
from connector.security import FieldCipher
from connector.settings import Settings
from protocol import money
from protocol.payments import (
    CancellationRequest,
    CreatePaymentRequest,
    CreatePaymentResponse,
    RefundRequest,
    SettlementRequest,
)

log = logging.getLogger(__name__)
S = PaymentState
T = TypeVar("T")

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_POLL_SECONDS = 0.05
# Far above any real payment, far below what a BIGINT column holds.
MAX_AMOUNT_MINOR = 10**15


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


class PaymentService:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        cipher: FieldCipher,
        acquirers: Mapping[str, Acquirer],
    ) -> None:
        self._db = database
        self._settings = settings
        self._cipher = cipher
        self._acquirers = acquirers
        # An attempt older than this lost its process (or its answer): another may take over.
        self._stale_after = timedelta(seconds=settings.attempt_stale_seconds)
        self._first_check_delay = timedelta(
            seconds=max(settings.callback_delay_seconds, settings.reconcile_interval_seconds)
        )

    # ================================================================== authorization

    async def authorize(
        self, merchant: Merchant, request: CreatePaymentRequest, *, test_suite: bool
    ) -> CreatePaymentResponse:
        currency = request.currency.upper()
        if not _CURRENCY.match(currency):
            raise BadRequest(
                f"currency {request.currency!r} is not an ISO 4217 code", code="invalid-currency"
            )
        amount = self._minor(request.value, currency)
        self._check_callback_url(request.callback_url)
        card = _card_data(request)
        test_suite = test_suite and self._settings.test_suite_enabled
        acquirer_name = "sandbox" if test_suite else self._settings.acquirer
        now = utcnow()
        async with self._db.writer() as session:
            payment, created = await PaymentRepository(session).insert_if_absent(
                self._new_payment_values(
                    merchant, request, currency, amount, card, acquirer_name, test_suite, now
                )
            )
        if created:
            log.info("payment %s received (%s %s)", request.payment_id, amount, currency)
            payment = await self._authorize_at_acquirer(payment, card)
        else:
            payment = await self._current(payment, card)
        return self._response(payment)

    def _flow(self, method: str | None, test_suite: bool, card: CardData | None) -> Flow:
        """The purchase flow, from VTEX's payment method name (and the Test Suite's habits)."""
        settings = self._settings
        if method == "BankInvoice":
            return Flow.BANK_INVOICE
        if method == "Pix":
            return Flow.PIX
        if method in settings.redirect_payment_methods:
            return Flow.REDIRECT
        if method in settings.payment_app_methods:
            return Flow.PAYMENT_APP
        if test_suite and card is not None and card.number is None:
            # The Test Suite's Redirect case sends a card whose members are all null.
            return Flow.REDIRECT
        return Flow.CARD

    def _delay_to_cancel(self, flow: Flow) -> int:
        """How long VTEX waits for a decision before cancelling: the instrument's validity."""
        settings = self._settings
        return {
            Flow.BANK_INVOICE: settings.bank_invoice_delay_to_cancel,
            Flow.PIX: settings.pix_expiry_seconds,
            Flow.REDIRECT: settings.redirect_delay_to_cancel,
            Flow.PAYMENT_APP: settings.redirect_delay_to_cancel,
        }.get(flow, settings.delay_to_cancel)

    def _check_callback_url(self, url: str | None) -> None:
        settings = self._settings
        if url and not callback_url_allowed(
            url, settings.callback_allowed_hosts, settings.callback_allow_loopback
        ):
            log.warning("refused a callbackUrl off the allow-list: %s", url.split("?")[0])
            raise BadRequest(
                "callbackUrl must be https on an allowed host (CONNECTOR_CALLBACK_ALLOWED_HOSTS)",
                code="callback-url-not-allowed",
            )

    def _new_payment_values(
        self,
        merchant: Merchant,
        request: CreatePaymentRequest,
        currency: str,
        amount: int,
        card: CardData | None,
        acquirer_name: str,
        test_suite: bool,
        now: datetime,
    ) -> dict[str, Any]:
        pk = uuid.uuid4()
        settings = self._settings
        return {
            "id": pk,
            "merchant_id": merchant.id,
            "payment_id": request.payment_id,
            "transaction_id": request.transaction_id,
            "order_id": request.order_id,
            "reference": request.reference,
            "payment_method": request.payment_method,
            "currency": currency,
            "amount_minor": amount,
            "installments": request.installments,
            "status": S.RECEIVED,
            "tid": f"TID-{pk.hex[:16].upper()}",
            "acquirer": acquirer_name,
            "delay_to_auto_settle": settings.delay_to_auto_settle,
            "delay_to_auto_settle_after_antifraud": settings.delay_to_auto_settle_after_antifraud,
            "delay_to_cancel": self._delay_to_cancel(
                self._flow(request.payment_method, test_suite, card)
            ),
            "card_bin": card.bin if card else None,
            "card_last4": card.last4 if card else None,
            "is_test_suite": test_suite,
            "sandbox_mode": bool(request.sandbox_mode),
            "callback_url": request.callback_url,
            "return_url": request.return_url,
            "inbound_requests_url": request.inbound_requests_url,
            "personal_data": self._encrypt_personal_data(request),
            "settled_minor": 0,
            "refunded_minor": 0,
            "authorizing_since": now,
            "created_at": now,
            "updated_at": now,
        }

    def _encrypt_personal_data(self, request: CreatePaymentRequest) -> bytes | None:
        cart = request.mini_cart
        data = {
            "buyer": cart.buyer.model_dump(by_alias=True, mode="json")
            if cart and cart.buyer
            else None,
            "shippingAddress": cart.shipping_address.model_dump(by_alias=True, mode="json")
            if cart and cart.shipping_address
            else None,
            "billingAddress": cart.billing_address.model_dump(by_alias=True, mode="json")
            if cart and cart.billing_address
            else None,
            "cardHolder": request.card.holder if request.card else None,
            "cardDocument": request.card.document if request.card else None,
            "ipAddress": request.ip_address,
            "deviceFingerprint": request.device_fingerprint,
            "merchantSettings": [s.model_dump(mode="json") for s in request.merchant_settings]
            if request.merchant_settings
            else None,
        }
        present = {key: value for key, value in data.items() if value}
        return self._cipher.encrypt_json(present) if present else None

    async def _authorize_at_acquirer(self, payment: Payment, card: CardData | None) -> Payment:
        """Ask the acquirer (same key on every attempt) and record what it said."""
        acquirer = self._acquirers[payment.acquirer]
        request = AuthorizationRequest(
            idempotency_key=authorization_key(payment),
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            payment_method=payment.payment_method,
            installments=payment.installments,
            card=card,
            test_suite=payment.is_test_suite,
            flow=self._flow(payment.payment_method, payment.is_test_suite, card),
        )
        try:
            result = await self._within_budget(acquirer.authorize(request), acquirer.name)
        except AcquirerError as error:
            log.warning("payment %s: authorization outcome unknown: %r", payment.payment_id, error)
            return await self._decide(payment, S.PENDING, None)
        return await self._decide(payment, _STATE_OF[result.outcome], result)

    async def _decide(
        self,
        payment: Payment,
        target: PaymentState,
        result: AuthorizationResult | None,
        *,
        notify: bool = False,
    ) -> Payment:
        """Record an authorization outcome. With `notify`, the callback to VTEX is enqueued in the
        same transaction (decisions made inside a POST /payments answer in its response)."""
        now = utcnow()
        values: dict[str, Any] = {}
        if result is not None:
            values = {
                "authorization_id": result.authorization_id,
                "nsu": result.nsu,
                "acquirer_code": result.code,
                "acquirer_message": result.message,
            }
            if result.instrument is not None:
                values["instrument"] = result.instrument
        if target is S.PENDING:
            # The reconciler looks again only after VTEX has our `undefined` answer.
            values["next_check_at"] = now + self._first_check_delay
        else:
            values["authorizing_since"] = None
        # Only an undecided payment is decided here; a cancelled one stays cancelled.
        sources = (sources_of(target) & UNDECIDED) - {target}
        async with self._db.writer() as session:
            repository = PaymentRepository(session)
            decided = await repository.decide(payment.id, sources, target, **values)
            if decided is not None:
                log.info("payment %s %s", payment.payment_id, target)
                if notify and target is not S.PENDING:
                    await self._enqueue_callback(session, decided, now)
                return decided
            current = await repository.get(payment.merchant_id, payment.payment_id)
        assert current is not None
        return current

    async def record_outcome(
        self, payment: Payment, result: AuthorizationResult, *, notify: bool
    ) -> Payment:
        """An outcome learnt outside POST /payments (reconciler, webhook): VTEX hears it by
        callback when `notify`."""
        return await self._decide(payment, _STATE_OF[result.outcome], result, notify=notify)

    def acquirer_for(self, payment: Payment) -> Acquirer:
        return self._acquirers[payment.acquirer]

    async def _enqueue_callback(
        self, session: AsyncSession, payment: Payment, now: datetime
    ) -> None:
        if not payment.callback_url:
            return
        settings = self._settings
        await OutboxRepository(session).enqueue(
            kind="payment_callback",
            payment_pk=payment.id,
            url=payment.callback_url,
            payload=self._response(payment).model_dump(mode="json"),
            available_at=now + timedelta(seconds=settings.callback_delay_seconds),
            deadline=now + timedelta(seconds=settings.callback_deadline_seconds),
        )

    async def _current(self, payment: Payment, card: CardData | None) -> Payment:
        """A repeated POST /payments: the current state, settling an undecided one if possible."""
        deadline = asyncio.get_running_loop().time() + self._settings.duplicate_wait_seconds
        while (
            payment.status == S.RECEIVED
            and not self._is_stale(payment)
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(_POLL_SECONDS)
            payment = await self._reload(payment)
        if payment.status not in UNDECIDED:
            return payment
        now = utcnow()
        async with self._db.writer() as session:
            won = await PaymentRepository(session).take_over_authorization(
                payment.id, now - self._stale_after, now
            )
        if not won:
            return payment
        return await self._reconcile(payment, card)

    async def _reconcile(self, payment: Payment, card: CardData | None) -> Payment:
        """Ask the acquirer what became of the authorization before ever sending another."""
        acquirer = self._acquirers[payment.acquirer]
        try:
            known = await self._within_budget(
                acquirer.query(authorization_key(payment)), acquirer.name
            )
        except AcquirerError as error:
            log.warning("payment %s: reconciliation failed: %r", payment.payment_id, error)
            return await self._reload(payment)
        if known is None:
            # The acquirer never saw it: authorizing now is the first authorization.
            return await self._authorize_at_acquirer(payment, card)
        if known.outcome is AuthorizationOutcome.PENDING:
            return await self._decide(payment, S.PENDING, known)
        return await self._decide(payment, _STATE_OF[known.outcome], known)

    def _is_stale(self, payment: Payment) -> bool:
        since = payment.authorizing_since
        return since is None or utcnow() - since > self._stale_after

    async def _reload(self, payment: Payment) -> Payment:
        async with self._db.reader() as session:
            fresh = await PaymentRepository(session).get(payment.merchant_id, payment.payment_id)
        assert fresh is not None
        return fresh

    def _response(self, payment: Payment) -> CreatePaymentResponse:
        state = PaymentState(payment.status)
        approved = payment.authorization_id is not None
        return CreatePaymentResponse(
            paymentId=payment.payment_id,
            status=wire_status(state, was_approved=approved),
            authorizationId=payment.authorization_id,
            tid=payment.tid,
            nsu=payment.nsu,
            acquirer=payment.acquirer,
            code=payment.acquirer_code,
            message=payment.acquirer_message,
            delayToAutoSettle=payment.delay_to_auto_settle,
            delayToAutoSettleAfterAntifraud=payment.delay_to_auto_settle_after_antifraud,
            delayToCancel=payment.delay_to_cancel,
            maxValue=money.from_minor(payment.max_value_minor, payment.currency)
            if payment.max_value_minor is not None
            else None,
            cardBrand=payment.payment_method if payment.card_last4 else None,
            firstDigits=payment.card_bin,
            lastDigits=payment.card_last4,
            **(payment.instrument or {}),
        )

    # ================================================================== operations

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
            amount = self._minor(value, payment.currency)
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
        if not created:
            return await self._replay_or_resume(kind, payment, operation)
        return await self._execute(kind, payment, operation)

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
        self, kind: OperationKind, payment: Payment, operation: PaymentOperation
    ) -> OperationReply:
        """Call the acquirer for a reserved operation and record its answer."""
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
            result = await self._within_budget(call(request), acquirer.name)
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
        self, kind: OperationKind, payment: Payment, operation: PaymentOperation
    ) -> OperationReply:
        """Same requestId again: the stored answer, or the unfinished attempt taken over."""
        deadline = asyncio.get_running_loop().time() + self._settings.duplicate_wait_seconds
        while True:
            if operation.state != "in_progress":
                assert operation.http_status is not None and operation.response is not None
                return OperationReply(operation.http_status, operation.response)
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(_POLL_SECONDS)
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
            return await self._execute(kind, payment, operation)
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

    async def _within_budget(self, call: Awaitable[T], acquirer: str) -> T:
        try:
            return await asyncio.wait_for(call, self._settings.acquirer_timeout_seconds)
        except TimeoutError as error:
            raise AcquirerTimeout("no answer within the time budget", acquirer=acquirer) from error

    @staticmethod
    def _minor(value: Decimal, currency: str) -> int:
        try:
            minor = money.to_minor(value, currency)
        except money.InvalidAmount as error:
            raise BadRequest(str(error), code="invalid-value") from error
        if minor > MAX_AMOUNT_MINOR:
            raise BadRequest(
                f"value {value} is larger than this connector accepts", code="invalid-value"
            )
        return minor


_STATE_OF = {
    AuthorizationOutcome.APPROVED: S.APPROVED,
    AuthorizationOutcome.DENIED: S.DENIED,
    AuthorizationOutcome.PENDING: S.PENDING,
}


def authorization_key(payment: Payment) -> str:
    return f"pay-{payment.id.hex}"


def _reference(prefix: str, operation: PaymentOperation) -> str:
    return f"{prefix}-{operation.id.hex[:16].upper()}"


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _card_data(request: CreatePaymentRequest) -> CardData | None:
    card = request.card
    if card is None:
        return None
    number = re.sub(r"[ -]", "", card.number) if card.number else None
    expiration = card.expiration
    return CardData(
        number=number or None,
        csc=card.csc,
        holder=card.holder,
        expiry_month=expiration.month if expiration else None,
        expiry_year=expiration.year if expiration else None,
    )


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


__all__ = ["OperationKind", "OperationReply", "PaymentService"]
