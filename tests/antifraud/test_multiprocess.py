"""Velocity holds across processes: two `connector serve` processes share the database and take
orders with one card at the same moment; each order counts the ones before it exactly once."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from connector.app import Services
from connector.db.tables import AntifraudAnalysis
from tests.antifraud.conftest import order, provider_headers
from tests.conftest import MerchantCredentials
from tests.servers import fire

pytestmark = pytest.mark.slow

ORDERS = 20


def other_buyer() -> dict[str, str]:
    """Only the card repeats: a fresh email, document, IP and device per order."""
    tag = uuid.uuid4().hex
    return {
        "miniCart.buyer.email": f"{tag}@example.com",
        "miniCart.buyer.document": tag[:11],
        "ip": f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.{int(tag[4:6], 16)}",
        "deviceFingerprint": tag,
    }


async def test_concurrent_orders_with_one_card_count_one_at_a_time(
    two_servers: list[str], merchant: MerchantCredentials, services: Services
) -> None:
    bodies = [order(**other_buyer()) for _ in range(ORDERS)]

    responses = await fire(
        two_servers, "/antifraud/transactions", bodies, provider_headers(merchant)
    )

    assert [r.status_code for r in responses] == [200] * ORDERS, [r.text for r in responses]
    reasons = [r.json()["responses"].get("card-burst") for r in responses]
    counts = sorted(int(re.match(r"(\d+) orders", reason)[1]) for reason in reasons if reason)
    # The default rule fires above 3 orders an hour: orders 4..20 see 4..20, each exactly once.
    # Counting without the subject lock, racing orders see the same count and numbers repeat.
    assert counts == list(range(4, ORDERS + 1))
    async with services.database.reader() as session:
        stored = await session.scalar(select(func.count()).select_from(AntifraudAnalysis))
    assert stored == ORDERS


async def test_repeats_of_one_id_on_two_processes_make_one_analysis(
    two_servers: list[str], merchant: MerchantCredentials, services: Services
) -> None:
    body = order()

    responses = await fire(
        two_servers, "/antifraud/transactions", [body] * 20, provider_headers(merchant)
    )

    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["tid"] for r in responses}) == 1
    async with services.database.reader() as session:
        stored = await session.scalar(select(func.count()).select_from(AntifraudAnalysis))
    assert stored == 1
