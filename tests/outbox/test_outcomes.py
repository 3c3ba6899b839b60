"""Outcomes from outside the request: the signed webhook, the reconciler's expiry."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from connector.app import Services
from connector.db.tables import OutboxMessage, Payment, utcnow
from connector.webhooks import sign
from tests import payloads
from tests.conftest import MerchantCredentials

SECRET = "whsec-test"
pytestmark = pytest.mark.parametrize(
    "settings_overrides",
    [{"webhook_secret": SECRET, "sandbox_async_decision_seconds": 3600}],
    indirect=True,
)


@pytest.fixture
async def webhook(app: Starlette) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

        async def post(
            report: dict[str, Any], *, secret: str = SECRET, timestamp: int | None = None
        ) -> httpx.Response:
            body = json.dumps(report).encode()
            stamp = str(int(time.time()) if timestamp is None else timestamp)
            return await http.post(
                "/provider/webhooks/outcome",
                content=body,
                headers={
                    "X-Connector-Timestamp": stamp,
                    "X-Connector-Signature": sign(secret, stamp, body),
                },
            )

        yield post


async def pending_payment(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
) -> Payment:
    body = payloads.create_payment(card_number=payloads.ASYNC_APPROVED_CARD)
    answer = (await client.post("/payments", json=body, headers=merchant.headers)).json()
    assert answer["status"] == "undefined"
    async with services.database.reader() as session:
        payment = await session.scalar(
            select(Payment).where(Payment.payment_id == body["paymentId"])
        )
    assert payment is not None
    return payment


async def outbox(services: Services) -> list[OutboxMessage]:
    async with services.database.reader() as session:
        return list(await session.scalars(select(OutboxMessage)))


async def test_signed_webhook_decides_and_enqueues_one_callback(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    webhook: Any,
):
    payment = await pending_payment(client, merchant, services)
    report = {
        "idempotencyKey": f"pay-{payment.id.hex}",
        "status": "approved",
        "authorizationId": "AUT-CORE-1",
        "nsu": "NSU-CORE-1",
    }
    response = await webhook(report)
    assert response.status_code == 200
    assert response.json() == {
        "paymentId": payment.payment_id,
        "state": "approved",
        "status": "approved",
    }
    # A duplicate, and a contradicting report arriving out of order, change nothing.
    assert (await webhook(report)).json()["status"] == "approved"
    assert (await webhook({**report, "status": "denied"})).json()["status"] == "approved"
    (message,) = await outbox(services)
    assert message.payload["status"] == "approved"
    assert message.payload["authorizationId"] == "AUT-CORE-1"
    assert message.url == payment.callback_url


@pytest.mark.parametrize(
    ("secret", "age", "reason"),
    [
        ("wrong-secret", 0, "signature"),
        (SECRET, 3600, "replayed later"),
        (SECRET, -3600, "from the future"),
    ],
)
async def test_webhook_refuses_bad_signatures_and_replays(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    webhook: Any,
    secret: str,
    age: int,
    reason: str,
):
    payment = await pending_payment(client, merchant, services)
    report = {"idempotencyKey": f"pay-{payment.id.hex}", "status": "approved"}
    response = await webhook(report, secret=secret, timestamp=int(time.time()) - age)
    assert response.status_code == 401, reason
    assert response.json()["code"] == "invalid-signature"
    assert await outbox(services) == []


async def test_webhook_bad_body_and_unknown_payment(webhook: Any, services: Services):
    assert (await webhook({"status": "approved"})).status_code == 400
    unknown = {"idempotencyKey": "pay-" + "0" * 32, "status": "approved"}
    assert (await webhook(unknown)).status_code == 404


async def test_pending_payment_past_delay_to_cancel_is_cancelled_and_voided(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
):
    payment = await pending_payment(client, merchant, services)
    async with services.database.writer() as session:
        await session.execute(
            update(Payment)
            .where(Payment.id == payment.id)
            .values(
                created_at=utcnow() - timedelta(seconds=payment.delay_to_cancel + 1),
                next_check_at=None,
            )
        )
    assert await services.outcomes.reconcile_due() == 1
    async with services.database.reader() as session:
        expired = await session.scalar(select(Payment).where(Payment.id == payment.id))
    assert expired is not None and expired.status == "cancelled"
    assert await services.sandbox.effect_count("void") == 1
    assert await outbox(services) == []
    # VTEX's own cancellation afterwards succeeds, and nothing revives the payment.
    response = await client.post(
        f"/payments/{payment.payment_id}/cancellations",
        json=payloads.cancellation(payment.payment_id),
        headers=merchant.headers,
    )
    assert response.json()["cancellationId"]
