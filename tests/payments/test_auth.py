"""Credentials: both header families, any case, 401 JSON when missing or wrong, isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.app import Services
from connector.db.tables import Payment
from tests import payloads
from tests.conftest import MerchantCredentials


async def payment_count(services: Services) -> int:
    async with services.database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(Payment)) or 0)


async def test_manifest_is_public(client: httpx.AsyncClient):
    response = await client.get("/manifest")
    assert response.status_code == 200
    manifest = response.json()
    assert {m["name"] for m in manifest["paymentMethods"]} >= {"Visa", "Mastercard"}
    assert all(
        m["allowsSplit"] in {"onAuthorize", "onCapture", "disabled"}
        for m in manifest["paymentMethods"]
    )
    assert manifest["autoSettleDelay"] == {"minimum": "0", "maximum": "168"}
    assert manifest["customFields"] == []
    assert (await client.get("/payment-methods")).json()["paymentMethods"][0] == "Visa"


@pytest.mark.parametrize(
    "make_headers",
    [
        lambda m: {"X-VTEX-API-AppKey": m.app_key, "X-VTEX-API-AppToken": m.app_token},
        lambda m: {"X-PROVIDER-API-AppKey": m.app_key, "X-PROVIDER-API-AppToken": m.app_token},
        lambda m: {"x-vtex-api-appkey": m.app_key, "X-VTEX-API-APPTOKEN": m.app_token},
        lambda m: {"X-Provider-Api-Appkey": m.app_key, "x-provider-api-apptoken": m.app_token},
    ],
)
async def test_accepted_credential_headers(
    client: httpx.AsyncClient, merchant: MerchantCredentials, make_headers: Any
):
    response = await client.post(
        "/payments", json=payloads.create_payment(), headers=make_headers(merchant)
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("make_headers", "code"),
    [
        (lambda m: {}, "missing-credentials"),
        (lambda m: {"X-VTEX-API-AppKey": "", "X-VTEX-API-AppToken": ""}, "missing-credentials"),
        (lambda m: {"X-VTEX-API-AppKey": m.app_key}, "unauthorized"),
        (
            lambda m: {"X-VTEX-API-AppKey": m.app_key, "X-VTEX-API-AppToken": "wrong"},
            "unauthorized",
        ),
        (
            lambda m: {"X-VTEX-API-AppKey": "unknown", "X-VTEX-API-AppToken": m.app_token},
            "unauthorized",
        ),
        (
            lambda m: {"X-VTEX-API-AppKey": m.app_key, "X-VTEX-API-AppToken": m.app_token + "x"},
            "unauthorized",
        ),
    ],
)
async def test_missing_or_wrong_credentials_get_401_and_change_nothing(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    make_headers: Any,
    code: str,
):
    for path in (
        "/payments",
        "/payments/X/settlements",
        "/payments/X/refunds",
        "/payments/X/cancellations",
        "/payments/X/cancelations",
    ):
        response = await client.post(
            path, json=payloads.create_payment(), headers=make_headers(merchant)
        )
        assert response.status_code == 401, path
        assert response.json() == {
            "status": "error",
            "code": code,
            "message": response.json()["message"],
        }
    assert await payment_count(services) == 0


async def test_credentials_are_checked_before_the_body(
    client: httpx.AsyncClient, merchant: MerchantCredentials
):
    response = await client.post("/payments", content=b"{broken", headers={})
    assert response.status_code == 401


async def test_merchants_never_see_each_others_payments(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    services: Services,
):
    body = payloads.create_payment()
    await client.post("/payments", json=body, headers=merchant.headers)
    payment_id = body["paymentId"]
    for path, operation in (
        ("settlements", payloads.settlement(payment_id, 1)),
        ("refunds", payloads.refund(payment_id, 1)),
        ("cancellations", payloads.cancellation(payment_id)),
    ):
        response = await client.post(
            f"/payments/{payment_id}/{path}", json=operation, headers=other_merchant.headers
        )
        assert response.status_code == 404
    # The same paymentId under another merchant is another payment, not a view of the first.
    theirs = await client.post("/payments", json=body, headers=other_merchant.headers)
    ours = await client.post("/payments", json=body, headers=merchant.headers)
    assert theirs.json()["tid"] != ours.json()["tid"]
    assert await payment_count(services) == 2


async def test_rotated_token_replaces_the_old_one(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    before = await client.post(
        "/payments", json=payloads.create_payment(), headers=merchant.headers
    )
    assert before.status_code == 200  # the credentials are now in the look-up cache
    rotated = await services.merchants.rotate_token(merchant.name)
    old = await client.post("/payments", json=payloads.create_payment(), headers=merchant.headers)
    assert old.status_code == 401
    new = await client.post(
        "/payments",
        json=payloads.create_payment(),
        headers={"X-VTEX-API-AppKey": rotated.app_key, "X-VTEX-API-AppToken": rotated.app_token},
    )
    assert new.status_code == 200


async def test_tokens_are_stored_only_as_hashes(merchant: MerchantCredentials, services: Services):
    found = await services.merchants.by_name(merchant.name)
    assert found is not None
    assert merchant.app_token.encode() not in found.token_digest + found.token_salt
    assert len(found.token_digest) == 32


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "payment_methods": ["Pix", "Visa"],
            "split_mode": "onCapture",
            "custom_fields": [
                {"name": "Store id", "type": "text"},
                {"name": "Mode", "type": "select", "options": [{"text": "Live", "value": "live"}]},
            ],
            "auto_settle_delay_max_hours": 720,
        }
    ],
    indirect=True,
)
async def test_manifest_follows_the_settings(client: httpx.AsyncClient):
    manifest = (await client.get("/manifest")).json()
    assert manifest["paymentMethods"] == [
        {"name": "Pix", "allowsSplit": "onCapture"},
        {"name": "Visa", "allowsSplit": "onCapture"},
    ]
    assert manifest["customFields"] == [
        {"name": "Store id", "type": "text"},
        {"name": "Mode", "type": "select", "options": [{"text": "Live", "value": "live"}]},
    ]
    assert manifest["autoSettleDelay"] == {"minimum": "0", "maximum": "720"}
