"""What the payment use cases share: the time budget, amounts, the acquirer's key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

from connector.db.tables import Payment
from connector.errors import AcquirerTimeout, BadRequest
from protocol import money

T = TypeVar("T")
POLL_SECONDS = 0.05
# Far above any real payment, far below what a BIGINT column holds.
MAX_AMOUNT_MINOR = 10**15


class Budget:
    """The time one request to the connector may spend at its acquirer, across every call it
    makes there (a retried authorization may query, then authorize): past it, the request answers
    with what it knows instead of making VTEX wait beyond its limit."""

    def __init__(self, seconds: float) -> None:
        self._ends_at = asyncio.get_running_loop().time() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends_at - asyncio.get_running_loop().time())

    async def run(self, call: Callable[[], Awaitable[T]], acquirer: str) -> T:
        """The acquirer's answer, or AcquirerTimeout once the budget is spent (the call is
        cancelled, which closes its connection). A spent budget starts no call at all."""
        remaining = self.remaining()
        if remaining <= 0:
            raise AcquirerTimeout("the time budget was spent before this call", acquirer=acquirer)
        try:
            return await asyncio.wait_for(call(), remaining)
        except TimeoutError as error:
            raise AcquirerTimeout("no answer within the time budget", acquirer=acquirer) from error


def minor_units(value: Decimal, currency: str) -> int:
    """A wire amount in minor units, or 400 when the currency or the database cannot hold it."""
    try:
        minor = money.to_minor(value, currency)
    except money.InvalidAmount as error:
        raise BadRequest(str(error), code="invalid-value") from error
    if minor > MAX_AMOUNT_MINOR:
        raise BadRequest(
            f"value {value} is larger than this connector accepts", code="invalid-value"
        )
    return minor


def authorization_key(payment: Payment) -> str:
    """The idempotency key of a payment's authorization at the acquirer, stable forever."""
    return f"pay-{payment.id.hex}"
