"""Exactly-once across processes: two `connector serve` processes share one database and receive
the same requests at the same moment, as VTEX's retries behind a load balancer would send them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from connector.app import Services
from connector.db.tables import Payment, SandboxAcquirerCall
from tests import payloads
from tests.conftest import MerchantCredentials
from tests.servers import fire

pytestmark = pytest.mark.slow


async def _fire(
    urls: list[str], path: str, bodies: list[dict[str, object]], headers: dict[str, str]
) -> list[httpx.Response]:
    return await fire(urls, f"/payment-provider{path}", bodies, headers)


async def test_twenty_identical_payments_on_two_processes_authorize_once(
    database_url: str, two_servers: list[str], merchant: MerchantCredentials, services: Services
):
    body = payloads.create_payment()
    headers = {**merchant.headers, **payloads.TEST_SUITE}
    responses = await _fire(two_servers, "/payments", [body] * 20, headers)

    assert [r.status_code for r in responses] == [200] * 20
    answers = [r.json() for r in responses]
    assert {a["status"] for a in answers} == {"approved"}
    assert len({(a["tid"], a["nsu"], a["authorizationId"]) for a in answers}) == 1
    async with services.database.reader() as session:
        authorizations = await session.scalar(
            select(func.count())
            .select_from(SandboxAcquirerCall)
            .where(
                SandboxAcquirerCall.operation == "authorize",
                SandboxAcquirerCall.outcome != "replayed",
            )
        )
        payments = await session.scalar(select(func.count()).select_from(Payment))
    assert (authorizations, payments) == (1, 1)


async def test_settlements_racing_on_two_processes_respect_the_limit(
    database_url: str, two_servers: list[str], merchant: MerchantCredentials, services: Services
):
    body = payloads.create_payment(value=100.0)
    await _fire(two_servers, "/payments", [body], merchant.headers)
    payment_id = body["paymentId"]
    distinct = [payloads.settlement(payment_id, 30) for _ in range(10)]
    same = [payloads.settlement(payment_id, 10, "same-request")] * 10
    responses = await _fire(
        two_servers, f"/payments/{payment_id}/settlements", distinct + same, merchant.headers
    )

    assert {r.status_code for r in responses} == {200}
    settled = [r.json() for r in responses if r.json()["settleId"]]
    same_ids = {r.json()["settleId"] for r in responses if r.json()["requestId"] == "same-request"}
    assert len(same_ids) == 1
    async with services.database.reader() as session:
        payment = await session.scalar(select(Payment).where(Payment.payment_id == payment_id))
        captures = await session.scalar(
            select(func.sum(SandboxAcquirerCall.amount_minor)).where(
                SandboxAcquirerCall.operation == "capture",
                SandboxAcquirerCall.outcome == "succeeded",
            )
        )
    assert payment is not None
    assert payment.settled_minor == captures <= 10_000
    assert (
        sum(round(s["value"] * 100) for s in settled if s["requestId"] != "same-request")
        + (1000 if None not in same_ids else 0)
        == payment.settled_minor
    )
