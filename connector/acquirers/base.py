"""The Acquirer port: what the payment service needs from whoever moves the money.

Every call carries an idempotency key derived from the payment (and, for later operations, from
VTEX's `requestId`), never a fresh one on a retry, so that repeating a call after a timeout cannot
move money twice. Implementations raise `AcquirerUnavailable` when they could not get an answer;
a refusal is an answer (`approved=False`), not an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from connector.errors import AcquirerTimeout, AcquirerUnavailable

# How the shopper pays, which decides what an undecided authorization looks like.
from protocol.acquirer import Flow as Flow

T = TypeVar("T")


class AuthorizationOutcome(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class CardData:
    """Card data held in memory only for the length of one acquirer call.

    With `tokenized`, number, csc and holder are VTEX Secure Proxy tokens standing for the card
    (a connector that is not PCI-certified never sees card data): they may only travel through
    the proxy, which swaps them for the real values on the way to the acquirer.
    """

    number: str | None = field(repr=False)
    csc: str | None = field(repr=False)
    expiry_month: str | None = field(repr=False)
    expiry_year: str | None = field(repr=False)
    holder: str | None = field(repr=False)
    tokenized: bool = False
    # First digits VTEX sends next to the tokens (the only card digits a tokenized card shows).
    token_bin: str | None = None

    @property
    def plain_number(self) -> str | None:
        """The card number when the connector holds it in clear (a PCI-certified provider)."""
        return None if self.tokenized else self.number

    @property
    def bin(self) -> str | None:
        if self.tokenized:
            return self.token_bin
        number = self.number
        return number[:6] if number and len(number) >= 12 else None

    @property
    def last4(self) -> str | None:
        number = self.plain_number
        return number[-4:] if number and len(number) >= 12 else None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    idempotency_key: str
    amount_minor: int
    currency: str
    payment_method: str | None
    installments: int | None
    card: CardData | None
    test_suite: bool
    flow: Flow = Flow.CARD
    merchant_name: str | None = None
    # VTEX's Secure Proxy for this payment; a tokenized card can only be sent through it.
    secure_proxy_url: str | None = None
    return_url: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    outcome: AuthorizationOutcome
    authorization_id: str | None
    nsu: str | None
    code: str | None
    message: str | None
    # Flow-specific answer fields for VTEX (paymentUrl, bank invoice numbers, paymentAppData),
    # by their protocol names; only on the answer to an authorization.
    instrument: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """A capture, refund or void of (part of) an authorization."""

    idempotency_key: str
    authorization_key: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class OperationResult:
    succeeded: bool
    reference: str | None
    code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class InboundAnswer:
    """The acquirer's answer to an inbound request, relayed by VTEX to the original caller; an
    outcome it carries (a payment decided by that call) is recorded by the connector."""

    status_code: int
    content_type: str
    content: str
    outcome: AuthorizationResult | None = None


class Acquirer(Protocol):
    name: str

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationResult: ...

    async def capture(self, request: OperationRequest) -> OperationResult: ...

    async def refund(self, request: OperationRequest) -> OperationResult: ...

    async def void(self, request: OperationRequest) -> OperationResult: ...

    async def inbound(self, action: str, authorization_key: str, body: str) -> InboundAnswer | None:
        """Handle an inbound request's `action`; None when the acquirer has no such action."""
        ...

    async def query(self, idempotency_key: str) -> AuthorizationResult | None:
        """The authorization made with this key, or None if the acquirer never saw it."""
        ...

    async def query_operation(self, idempotency_key: str) -> OperationResult | None:
        """The capture, refund or void made with this key, or None if the acquirer never saw it."""
        ...


# (acquirer, operation, outcome, seconds) of one call; see ObservedAcquirer.
CallObserver = Callable[[str, str, str, float], None]


def _settled(result: OperationResult) -> str:
    return "succeeded" if result.succeeded else "refused"


def _found(result: object) -> str:
    return "unknown" if result is None else "found"


class ObservedAcquirer:
    """An acquirer whose every call is timed and reported to `observe` with its outcome:
    `approved`, `denied` or `pending` (authorize), `succeeded` or `refused` (capture, refund,
    void), `found` or `unknown` (query, query_operation), `answered` or `no-action` (inbound);
    `unavailable`, `timeout` (also: cut short by the request's time budget) or `error` when it
    gave no answer."""

    def __init__(self, inner: Acquirer, observe: CallObserver) -> None:
        self.inner = inner
        self.name = inner.name
        self._observe = observe

    async def _timed(self, operation: str, call: Awaitable[T], outcome: Callable[[T], str]) -> T:
        started = time.perf_counter()
        label = "error"
        try:
            result = await call
            label = outcome(result)
            return result
        except (AcquirerTimeout, asyncio.CancelledError):
            label = "timeout"
            raise
        except AcquirerUnavailable:
            label = "unavailable"
            raise
        finally:
            self._observe(self.name, operation, label, time.perf_counter() - started)

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        return await self._timed(
            "authorize", self.inner.authorize(request), lambda result: result.outcome.value
        )

    async def capture(self, request: OperationRequest) -> OperationResult:
        return await self._timed("capture", self.inner.capture(request), _settled)

    async def refund(self, request: OperationRequest) -> OperationResult:
        return await self._timed("refund", self.inner.refund(request), _settled)

    async def void(self, request: OperationRequest) -> OperationResult:
        return await self._timed("void", self.inner.void(request), _settled)

    async def inbound(self, action: str, authorization_key: str, body: str) -> InboundAnswer | None:
        return await self._timed(
            "inbound",
            self.inner.inbound(action, authorization_key, body),
            lambda answer: "no-action" if answer is None else "answered",
        )

    async def query(self, idempotency_key: str) -> AuthorizationResult | None:
        return await self._timed("query", self.inner.query(idempotency_key), _found)

    async def query_operation(self, idempotency_key: str) -> OperationResult | None:
        return await self._timed(
            "query_operation", self.inner.query_operation(idempotency_key), _found
        )
