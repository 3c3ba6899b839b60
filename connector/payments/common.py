"""What the payment use cases share: the time budget, amounts, the acquirer's key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from decimal import Decimal
from typing import TypeVar

from connector.db.tables import Payment
from connector.errors import AcquirerTimeout, BadRequest
from protocol import money

T = TypeVar("T")
POLL_SECONDS = 0.05
# Far above any real payment, far below what a BIGINT column holds.
MAX_AMOUNT_MINOR = 10**15


async def within_budget(call: Awaitable[T], seconds: float, acquirer: str) -> T:
    """The acquirer's answer, or AcquirerTimeout once `seconds` have passed."""
    try:
        return await asyncio.wait_for(call, seconds)
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
