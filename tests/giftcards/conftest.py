"""Fixtures for the Gift Card Provider Protocol: a client at the Hub's `serviceUrl`, the Hub's
headers, and cards issued straight through the service (as an operator would)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from connector.app import GIFTCARD_PREFIX, Services
from connector.db.tables import GiftCard, GiftCardEntry
from connector.giftcards.cards import IssuedCard, IssueOrder
from tests.conftest import MerchantCredentials

VENDOR_JSON = "application/vnd.vtex.giftcards.v1+json"

IssueCard = Callable[..., Awaitable[IssuedCard]]


def hub_headers(merchant: MerchantCredentials) -> dict[str, str]:
    """What the Gift Card Hub sends, unknown headers included."""
    return {
        "X-PROVIDER-API-AppKey": merchant.app_key,
        "X-PROVIDER-API-AppToken": merchant.app_token,
        "Accept": VENDOR_JSON,
        "Content-Type": VENDOR_JSON,
        "x-vtex-operation-id": str(uuid.uuid4()),
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "baggage": "userId=alice",
    }


@pytest.fixture
async def hub(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://testserver{GIFTCARD_PREFIX}"
    ) as http:
        yield http


@pytest.fixture
def headers(merchant: MerchantCredentials) -> dict[str, str]:
    return hub_headers(merchant)


@pytest.fixture
def issue_card(services: Services, merchant: MerchantCredentials) -> IssueCard:
    async def issue(amount: str | int = "100.00", **fields: Any) -> IssuedCard:
        found = await services.merchants.by_name(fields.pop("merchant_name", merchant.name))
        assert found is not None
        return await services.giftcards.issue(
            found, IssueOrder(amount=Decimal(str(amount)), **fields), actor="test"
        )

    return issue


def debit(
    card: IssuedCard, value: float | str, request_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A Debit as the Hub sends it (VTEX's example body, trimmed)."""
    return {
        "operation": "Debit",
        "value": value,
        "description": "GiftCardHub",
        "redemptionToken": card.card.redemption_token,
        "redemptionCode": "***********" + card.redemption_code[-4:],
        "requestId": request_id or uuid.uuid4().hex.upper(),
        "orderInfo": {
            "orderId": "v5006128str",
            "sequence": 5006128,
            "cart": {
                "items": [],
                "grandTotal": 0,
                "discounts": -7.5,
                "shipping": 7.27,
                "taxes": 0,
                "itemsTotal": 14.99,
            },
            "clientProfile": {
                "email": "michael.scott96@mail.com",
                "document": "02906792063",
                "isCorporate": False,
            },
        },
        **extra,
    }


async def ledger_of(services: Services, card_id: str) -> dict[str, int]:
    """The card's running totals next to the sums of its ledger entries."""
    async with services.database.reader() as session:
        card = await session.scalar(select(GiftCard).where(GiftCard.card_id == card_id))
        assert card is not None
        entries = list(
            await session.scalars(select(GiftCardEntry).where(GiftCardEntry.card_pk == card.id))
        )
    return {
        "available": card.available_minor,
        "held": card.held_minor,
        "ledger_available": sum(e.available_delta for e in entries),
        "ledger_held": sum(e.held_delta for e in entries),
    }


async def assert_ledger(services: Services, card_id: str, available: int, held: int) -> None:
    """The card's running totals are `available` and `held` (minor units), and so are the sums
    of its ledger entries."""
    assert await ledger_of(services, card_id) == {
        "available": available,
        "held": held,
        "ledger_available": available,
        "ledger_held": held,
    }
