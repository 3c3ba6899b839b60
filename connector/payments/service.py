"""Authorizations: POST /payments and the outcomes recorded after it. No Starlette, no SQL.

Exactly-once rests on a database fact: a payment row is unique per (merchant, paymentId), so
only the request that inserts it calls the acquirer; whoever loses the race reads the winner's
result. An authorization whose outcome is unknown (timeout, error) stays pending; a retry asks
the acquirer by idempotency key before it ever sends another authorization.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from connector.acquirers.base import (
    Acquirer,
    AuthorizationOutcome,
    AuthorizationRequest,
    AuthorizationResult,
    CardData,
    Flow,
)
from connector.db.engine import Database
from connector.db.tables import Merchant, Payment, utcnow
from connector.errors import AcquirerError, BadRequest
from connector.outbox.allowlist import callback_url_allowed
from connector.outbox.repository import OutboxRepository
from connector.payments.common import (
    POLL_SECONDS,
    Budget,
    authorization_key,
    minor_units,
)
from connector.payments.repository import PaymentRepository
from connector.payments.states import (
    UNDECIDED,
    PaymentState,
    sources_of,
    wire_status,
)
from connector.security import FieldCipher
from connector.settings import Settings
from protocol import money
from protocol.payments import (
    CreatePaymentRequest,
    CreatePaymentResponse,
)

log = logging.getLogger(__name__)
S = PaymentState
T = TypeVar("T")

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_BIN = re.compile(r"^[0-9]{6,8}$")


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
        amount = minor_units(request.value, currency)
        self._check_callback_url(request.callback_url)
        card = _card_data(request)
        test_suite = test_suite and self._settings.test_suite_enabled
        acquirer_name = "sandbox" if test_suite else self._settings.acquirer
        proxy_url = self._secure_proxy_url(request, card, acquirer_name)
        budget = Budget(self._settings.acquirer_budget(test_suite))
        now = utcnow()
        async with self._db.writer() as session:
            payment, created = await PaymentRepository(session).insert_if_absent(
                self._new_payment_values(
                    merchant, request, currency, amount, card, acquirer_name, test_suite, now
                )
            )
        attempt = _Attempt(card, proxy_url, budget)
        if created:
            log.info("payment %s received (%s %s)", request.payment_id, amount, currency)
            payment = await self._authorize_at_acquirer(payment, attempt)
        else:
            payment = await self._current(payment, attempt)
        return self._response(payment)

    def _secure_proxy_url(
        self, request: CreatePaymentRequest, card: CardData | None, acquirer_name: str
    ) -> str | None:
        """Where a tokenized card must be sent: VTEX's Secure Proxy, on an allowed host only (the
        connector hands the proxy its acquirer's API key), or 400 before anything is stored."""
        if card is None or not card.tokenized or acquirer_name == "sandbox":
            return None  # the sandbox decides without card data, like VTEX's own test connector
        url = request.secure_proxy_url
        settings = self._settings
        if not url:
            raise BadRequest(
                "the card is tokenized but secureProxyUrl is missing", code="secure-proxy-missing"
            )
        if not callback_url_allowed(
            url, settings.secure_proxy_allowed_hosts, settings.secure_proxy_allow_loopback
        ):
            log.warning("refused a secureProxyUrl off the allow-list: %s", url.split("?")[0])
            raise BadRequest(
                "secureProxyUrl must be https on an allowed host "
                "(CONNECTOR_SECURE_PROXY_ALLOWED_HOSTS)",
                code="secure-proxy-url-not-allowed",
            )
        return url

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
        if test_suite and card is not None and card.plain_number is None:
            # The Test Suite's Redirect case sends a card whose members are all null (VTEX's own
            # test connector treats a tokenized card the same way).
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

    async def _authorize_at_acquirer(self, payment: Payment, attempt: _Attempt) -> Payment:
        """Ask the acquirer (same key on every attempt) and record what it said."""
        acquirer = self._acquirers[payment.acquirer]
        card = attempt.card
        request = AuthorizationRequest(
            idempotency_key=authorization_key(payment),
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            payment_method=payment.payment_method,
            installments=payment.installments,
            card=card,
            test_suite=payment.is_test_suite,
            flow=self._flow(payment.payment_method, payment.is_test_suite, card),
            secure_proxy_url=attempt.secure_proxy_url,
            return_url=payment.return_url,
        )
        try:
            result = await attempt.budget.run(lambda: acquirer.authorize(request), acquirer.name)
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

    async def record_undecided(
        self, payment: Payment, result: AuthorizationResult | None
    ) -> Payment:
        """An authorization whose outcome is still open (the acquirer says pending, or never saw
        it): `pending`, so that the reconciler keeps asking and a retry of the request, which
        brings the card again, can still take it over."""
        return await self._decide(payment, S.PENDING, result)

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

    async def _current(self, payment: Payment, attempt: _Attempt) -> Payment:
        """A repeated POST /payments: the current state, settling an undecided one if possible."""
        wait = min(self._settings.duplicate_wait_seconds, attempt.budget.remaining())
        deadline = asyncio.get_running_loop().time() + wait
        while (
            payment.status == S.RECEIVED
            and not self._is_stale(payment)
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(POLL_SECONDS)
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
        return await self._reconcile(payment, attempt)

    async def _reconcile(self, payment: Payment, attempt: _Attempt) -> Payment:
        """Ask the acquirer what became of the authorization before ever sending another."""
        acquirer = self._acquirers[payment.acquirer]
        key = authorization_key(payment)
        try:
            known = await attempt.budget.run(lambda: acquirer.query(key), acquirer.name)
        except AcquirerError as error:
            log.warning("payment %s: reconciliation failed: %r", payment.payment_id, error)
            return await self._reload(payment)
        if known is None:
            # The acquirer never saw it: authorizing now is the first authorization.
            return await self._authorize_at_acquirer(payment, attempt)
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


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one POST /payments brings to the acquirer: the card (or its tokens) lives only here,
    never in the database, and the time budget is shared by every call the request makes."""

    card: CardData | None
    secure_proxy_url: str | None
    budget: Budget


_STATE_OF = {
    AuthorizationOutcome.APPROVED: S.APPROVED,
    AuthorizationOutcome.DENIED: S.DENIED,
    AuthorizationOutcome.PENDING: S.PENDING,
}


def _card_data(request: CreatePaymentRequest) -> CardData | None:
    """The card in clear (a PCI-certified provider) or as Secure Proxy tokens."""
    card = request.card
    if card is None:
        return None
    number = re.sub(r"[ -]", "", card.number) if card.number else None
    expiration = card.expiration
    month = expiration.month if expiration else None
    year = expiration.year if expiration else None
    if not number and card.number_token:
        bin_digits = card.bin if card.bin and _BIN.match(card.bin) else None
        return CardData(
            number=card.number_token,
            csc=card.csc_token,
            holder=card.holder_token,
            expiry_month=month,
            expiry_year=year,
            tokenized=True,
            token_bin=bin_digits,
        )
    return CardData(
        number=number or None,
        csc=card.csc,
        holder=card.holder,
        expiry_month=month,
        expiry_year=year,
    )


__all__ = ["PaymentService"]
