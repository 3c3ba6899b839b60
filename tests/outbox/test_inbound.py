"""Inbound requests: VTEX forwards an external call; the action is routed to the acquirer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connector.app import Services
from connector.db.tables import OutboxMessage
from tests import payloads
from tests.conftest import MerchantCredentials

pytestmark = pytest.mark.parametrize(
    "settings_overrides", [{"redirect_payment_methods": ["RedirectPay"]}], indirect=True
)


async def redirect_payment(client: httpx.AsyncClient, merchant: MerchantCredentials) -> str:
    body = payloads.create_payment(card_number=None, paymentMethod="RedirectPay")
    answer = (await client.post("/payments", json=body, headers=merchant.headers)).json()
    assert answer["status"] == "undefined"
    return str(body["paymentId"])


def inbound_body(payment_id: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestId": "IN-1",
        "transactionId": "T",
        "paymentId": payment_id,
        "authorizationId": None,
        "nsu": None,
        "tid": "TID",
        "requestData": {"body": json.dumps(content)},
    }


@pytest.mark.parametrize("path", ["inbound", "inbound-request"])
async def test_decide_action_settles_the_payment_and_calls_back(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    path: str,
):
    payment_id = await redirect_payment(client, merchant)
    status = await client.post(
        f"/payments/{payment_id}/{path}/status",
        json=inbound_body(payment_id, {}),
        headers=merchant.headers,
    )
    assert status.status_code == 200
    assert json.loads(status.json()["responseData"]["content"]) == {"outcome": "pending"}

    response = await client.post(
        f"/payments/{payment_id}/{path}/decide",
        json=inbound_body(payment_id, {"decision": "approve"}),
        headers=merchant.headers,
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["requestId"] == "IN-1" and answer["paymentId"] == payment_id
    assert answer["responseData"]["statusCode"] == 200
    again = await client.post(
        "/payments",
        json={"paymentId": payment_id, "value": 31.9, "currency": "BRL"},
        headers=merchant.headers,
    )
    assert again.json()["status"] == "approved"
    async with services.database.reader() as session:
        (message,) = await session.scalars(select(OutboxMessage))
    assert message.payload["status"] == "approved"


async def test_unknown_action_and_bad_decision(
    client: httpx.AsyncClient, merchant: MerchantCredentials
):
    payment_id = await redirect_payment(client, merchant)
    unknown = await client.post(
        f"/payments/{payment_id}/inbound/teleport",
        json=inbound_body(payment_id, {}),
        headers=merchant.headers,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown-action"
    bad = await client.post(
        f"/payments/{payment_id}/inbound/decide",
        json=inbound_body(payment_id, {"decision": "maybe"}),
        headers=merchant.headers,
    )
    assert bad.status_code == 200 and bad.json()["responseData"]["statusCode"] == 400
    missing = await client.post(
        "/payments/NOPE/inbound/status", json=inbound_body("NOPE", {}), headers=merchant.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "payment-not-found"
    unauthenticated = await client.post(
        f"/payments/{payment_id}/inbound/status", json=inbound_body(payment_id, {})
    )
    assert unauthenticated.status_code == 401
