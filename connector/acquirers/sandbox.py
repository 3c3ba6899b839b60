"""The built-in sandbox acquirer: deterministic, no network, every call kept in its own table.

Decision rules for an authorization, first match wins (documented in the README):

    card 4444333322221111                 approved  (VTEX Test Suite "Approved")
    card 4444333322221112                 denied    (VTEX Test Suite "Denied")
    card 4222222222222224                 pending, approved `async_decision_seconds` later
    card 4222222222222225                 pending, denied `async_decision_seconds` later
    a card number failing the Luhn check  denied, code "invalid-card-number"
    an amount whose minor units end in 51 denied, code "insufficient-funds" (e.g. 10.51)
    anything else (no card number too)   approved

It is idempotent by key: a repeated authorization, capture, refund or void with a key it has seen
returns the first answer and is recorded as `replayed`, so tests can count real effects. Latency
and failures can be injected; an injected failure either happens before the effect (nothing
happened) or after it (the effect happened but the caller never heard).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.acquirers import instruments
from connector.acquirers.base import (
    AuthorizationOutcome,
    AuthorizationRequest,
    AuthorizationResult,
    Flow,
    InboundAnswer,
    OperationRequest,
    OperationResult,
)
from connector.db.engine import Database
from connector.db.tables import SandboxAcquirerCall, utcnow
from connector.errors import AcquirerUnavailable

APPROVED_CARD = "4444333322221111"
DENIED_CARD = "4444333322221112"
ASYNC_APPROVED_CARD = "4222222222222224"
ASYNC_DENIED_CARD = "4222222222222225"

REPLAYED = "replayed"
SUCCEEDED = "succeeded"
REFUSED = "refused"


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _derived_id(prefix: str, key: str) -> str:
    """Stable ids: the same key always yields the same authorization id, nsu or reference."""
    return f"{prefix}-{hashlib.sha256(f'{prefix}:{key}'.encode()).hexdigest()[:12].upper()}"


class SandboxAcquirer:
    name = "sandbox"

    def __init__(
        self,
        database: Database,
        *,
        latency_seconds: float = 0.0,
        failure_rate: float = 0.0,
        async_decision_seconds: float = 5.0,
        rng: random.Random | None = None,
        public_base_url: str = "http://127.0.0.1:8000",
        pix_key: str = "sandbox@example.com",
        payment_app_name: str = "vtex.payment-app",
    ) -> None:
        self._db = database
        self.public_base_url = public_base_url.rstrip("/")
        self.pix_key = pix_key
        self.payment_app_name = payment_app_name
        self.latency_seconds = latency_seconds
        self.failure_rate = failure_rate
        self.async_decision_seconds = async_decision_seconds
        self._rng = rng or random.Random()  # noqa: S311 - fault injection, not cryptography
        self._fail_before: Counter[str] = Counter()
        self._fail_after: Counter[str] = Counter()

    # ------------------------------------------------------------------ fault injection

    def inject_failures(
        self, operation: str, count: int = 1, *, after_effect: bool = False
    ) -> None:
        """Make the next `count` calls of `operation` raise AcquirerUnavailable."""
        (self._fail_after if after_effect else self._fail_before)[operation] += count

    async def _before(self, operation: str) -> None:
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if self._fail_before[operation] > 0:
            self._fail_before[operation] -= 1
            raise AcquirerUnavailable("sandbox: injected failure", acquirer=self.name)
        if self.failure_rate and self._rng.random() < self.failure_rate:
            raise AcquirerUnavailable("sandbox: random failure", acquirer=self.name)

    def _after(self, operation: str) -> None:
        if self._fail_after[operation] > 0:
            self._fail_after[operation] -= 1
            raise AcquirerUnavailable("sandbox: injected failure after effect", acquirer=self.name)

    # ------------------------------------------------------------------ authorization

    def _decide(self, request: AuthorizationRequest) -> tuple[AuthorizationOutcome, str, bool]:
        """(final outcome, code, decided later?); PENDING means "when the shopper acts"."""
        later = AuthorizationOutcome.APPROVED, "0000", True
        if request.flow in (Flow.BANK_INVOICE, Flow.PIX):
            return later  # the shopper pays a few seconds later
        if request.flow in (Flow.REDIRECT, Flow.PAYMENT_APP):
            # VTEX's Test Suite expects the approval by itself; a shopper uses our page.
            return later if request.test_suite else (AuthorizationOutcome.PENDING, "", False)
        number = request.card.plain_number if request.card else None
        if number == APPROVED_CARD:
            return AuthorizationOutcome.APPROVED, "0000", False
        if number == DENIED_CARD:
            return AuthorizationOutcome.DENIED, "51", False
        if number == ASYNC_APPROVED_CARD:
            return AuthorizationOutcome.APPROVED, "0000", True
        if number == ASYNC_DENIED_CARD:
            return AuthorizationOutcome.DENIED, "51", True
        if number is not None and not luhn_valid(number):
            return AuthorizationOutcome.DENIED, "invalid-card-number", False
        if request.amount_minor % 100 == 51:
            return AuthorizationOutcome.DENIED, "insufficient-funds", False
        return AuthorizationOutcome.APPROVED, "0000", False

    def page_url(self, key: str) -> str:
        """The sandbox's stand-in for a bank's or wallet's page, where the shopper decides."""
        return f"{self.public_base_url}/sandbox/pay/{key}"

    def _instrument(self, request: AuthorizationRequest) -> dict[str, Any] | None:
        key, amount = request.idempotency_key, request.amount_minor
        page = self.page_url(key)
        if request.flow is Flow.BANK_INVOICE:
            return {"paymentUrl": page, **instruments.bank_invoice(key, amount)}
        if request.flow is Flow.PIX:
            return instruments.pix(key, amount, request.merchant_name or "", self.pix_key)
        if request.flow is Flow.REDIRECT:
            return {"paymentUrl": page, "redirectUrl": page}
        if request.flow is Flow.PAYMENT_APP:
            payload = json.dumps(
                {
                    "paymentUrl": page,
                    "approveUrl": f"{page}?decision=approve",
                    "denyUrl": f"{page}?decision=deny",
                }
            )
            return {"paymentAppData": {"appName": self.payment_app_name, "payload": payload}}
        return None

    def _result(
        self, call: SandboxAcquirerCall, instrument: dict[str, Any] | None = None
    ) -> AuthorizationResult:
        key = call.idempotency_key
        waiting = call.decide_at is not None and utcnow() < call.decide_at
        if waiting or call.outcome == AuthorizationOutcome.PENDING:
            return AuthorizationResult(
                AuthorizationOutcome.PENDING,
                None,
                None,
                "pending",
                "Waiting for a decision",
                instrument,
            )
        outcome = AuthorizationOutcome(call.outcome)
        approved = outcome is AuthorizationOutcome.APPROVED
        return AuthorizationResult(
            outcome,
            authorization_id=_derived_id("AUT", key) if approved else None,
            nsu=_derived_id("NSU", key),
            code=call.reference,
            message="Approved" if approved else "Denied",
        )

    @staticmethod
    async def _first_call(
        session: AsyncSession, operation: str, key: str
    ) -> SandboxAcquirerCall | None:
        return await session.scalar(
            select(SandboxAcquirerCall)
            .where(SandboxAcquirerCall.operation == operation)
            .where(SandboxAcquirerCall.idempotency_key == key)
            .where(SandboxAcquirerCall.outcome != REPLAYED)
            .order_by(SandboxAcquirerCall.id)
            .limit(1)
        )

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        await self._before("authorize")
        key = request.idempotency_key
        # One transaction for look-up and record: cheaper, and on SQLite it holds the write lock.
        async with self._db.writer() as session:
            call = await self._first_call(session, "authorize", key)
            if call is not None:
                session.add(
                    SandboxAcquirerCall(
                        operation="authorize",
                        idempotency_key=key,
                        amount_minor=request.amount_minor,
                        outcome=REPLAYED,
                    )
                )
            else:
                outcome, code, later = self._decide(request)
                delay = timedelta(seconds=self.async_decision_seconds)
                call = SandboxAcquirerCall(
                    operation="authorize",
                    idempotency_key=key,
                    amount_minor=request.amount_minor,
                    outcome=outcome.value,
                    reference=code,
                    decide_at=utcnow() + delay if later else None,
                )
                session.add(call)
        self._after("authorize")
        return self._result(call, self._instrument(request))

    async def complete(self, idempotency_key: str, approved: bool) -> AuthorizationResult | None:
        """The shopper decided on the sandbox's page; None if nothing was waiting for it."""
        outcome = AuthorizationOutcome.APPROVED if approved else AuthorizationOutcome.DENIED
        async with self._db.writer() as session:
            call = await self._first_call(session, "authorize", idempotency_key)
            if call is None or call.outcome != AuthorizationOutcome.PENDING:
                return None
            call.outcome, call.reference = outcome.value, "0000" if approved else "shopper-declined"
        return self._result(call)

    async def inbound(self, action: str, authorization_key: str, body: str) -> InboundAnswer | None:
        """Actions: `status` (what the sandbox knows) and `decide` (`{"decision": "approve"}` or
        `"deny"`, as a wallet's server-to-server notification would)."""
        if action == "status":
            known = await self.query(authorization_key)
            outcome = known.outcome.value if known else "unknown"
            return InboundAnswer(200, "application/json", json.dumps({"outcome": outcome}))
        if action == "decide":
            try:
                decision = json.loads(body or "{}").get("decision")
            except (ValueError, AttributeError):
                decision = None
            if decision not in ("approve", "deny"):
                return InboundAnswer(
                    400,
                    "application/json",
                    json.dumps({"error": "decision must be approve or deny"}),
                )
            result = await self.complete(authorization_key, approved=decision == "approve")
            state = result.outcome.value if result else "already decided"
            return InboundAnswer(200, "application/json", json.dumps({"outcome": state}), result)
        return None

    async def query(self, idempotency_key: str) -> AuthorizationResult | None:
        await self._before("query")
        async with self._db.reader() as session:
            existing = await self._first_call(session, "authorize", idempotency_key)
        return self._result(existing) if existing is not None else None

    # ------------------------------------------------------------------ capture, refund, void

    async def _operation(self, operation: str, request: OperationRequest) -> OperationResult:
        await self._before(operation)
        key = request.idempotency_key
        async with self._db.writer() as session:
            call = await self._first_call(session, operation, key)
            if call is not None:
                session.add(
                    SandboxAcquirerCall(
                        operation=operation,
                        idempotency_key=key,
                        amount_minor=request.amount_minor,
                        outcome=REPLAYED,
                    )
                )
            else:
                refusal = await self._refusal(session, operation, request)
                call = SandboxAcquirerCall(
                    operation=operation,
                    idempotency_key=key,
                    amount_minor=request.amount_minor,
                    outcome=REFUSED if refusal else SUCCEEDED,
                    reference=refusal or _derived_id(operation[:3].upper(), key),
                )
                session.add(call)
        self._after(operation)
        return self._operation_result(call)

    async def query_operation(self, idempotency_key: str) -> OperationResult | None:
        await self._before("query")
        async with self._db.reader() as session:
            call = await session.scalar(
                select(SandboxAcquirerCall)
                .where(SandboxAcquirerCall.operation.in_(("capture", "refund", "void")))
                .where(SandboxAcquirerCall.idempotency_key == idempotency_key)
                .where(SandboxAcquirerCall.outcome != REPLAYED)
                .order_by(SandboxAcquirerCall.id)
                .limit(1)
            )
        return self._operation_result(call) if call is not None else None

    @staticmethod
    def _operation_result(call: SandboxAcquirerCall) -> OperationResult:
        if call.outcome == SUCCEEDED:
            return OperationResult(True, call.reference, None, None)
        return OperationResult(False, None, call.reference, f"{call.operation} refused")

    async def _refusal(
        self, session: AsyncSession, operation: str, request: OperationRequest
    ) -> str | None:
        """The sandbox's own ledger check, independent of the connector's."""
        authorization = await self._first_call(session, "authorize", request.authorization_key)
        if authorization is None or authorization.outcome != AuthorizationOutcome.APPROVED:
            return "no-approved-authorization"
        captured = await self._total(session, "capture", request.authorization_key)
        if operation == "capture" and captured + request.amount_minor > authorization.amount_minor:
            return "exceeds-authorization"
        if operation == "refund":
            refunded = await self._total(session, "refund", request.authorization_key)
            if refunded + request.amount_minor > captured:
                return "exceeds-captured"
        if operation == "void" and captured > 0:
            return "already-captured"
        return None

    @staticmethod
    async def _total(session: AsyncSession, operation: str, authorization_key: str) -> int:
        total = await session.scalar(
            select(func.coalesce(func.sum(SandboxAcquirerCall.amount_minor), 0))
            .where(SandboxAcquirerCall.operation == operation)
            .where(SandboxAcquirerCall.idempotency_key.startswith(authorization_key + ":"))
            .where(SandboxAcquirerCall.outcome == SUCCEEDED)
        )
        return int(total or 0)

    async def effect_count(self, operation: str) -> int:
        """How many real effects (not replays, not refusals) the sandbox has recorded."""
        kept = (
            SandboxAcquirerCall.outcome != REPLAYED
            if operation == "authorize"
            else SandboxAcquirerCall.outcome == SUCCEEDED
        )
        async with self._db.reader() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(SandboxAcquirerCall)
                .where(SandboxAcquirerCall.operation == operation, kept)
            )
        return int(count or 0)

    async def capture(self, request: OperationRequest) -> OperationResult:
        return await self._operation("capture", request)

    async def refund(self, request: OperationRequest) -> OperationResult:
        return await self._operation("refund", request)

    async def void(self, request: OperationRequest) -> OperationResult:
        return await self._operation("void", request)
