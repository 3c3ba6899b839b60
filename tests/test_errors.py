"""Errors are rendered in one place: JSON bodies, documented shapes, headers kept."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connector.app import Services
from tests import payloads
from tests.conftest import MerchantCredentials


async def test_unknown_route_and_wrong_method_are_json(client: httpx.AsyncClient):
    missing = await client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == "not-found"
    wrong = await client.get("/payments")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method-not-allowed"
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/giftcard/giftcards/C1/transactions", {"GET", "HEAD", "POST"}),
        ("/giftcard/giftcards/C1/transactions/", {"GET", "HEAD", "POST"}),
        ("/giftcard/giftcards/C1/transactions/T1/settlements", {"GET", "HEAD", "POST"}),
        ("/antifraud/transactions/T1", {"GET", "HEAD", "PUT", "DELETE"}),
        ("/admin/giftcards", {"GET", "HEAD", "POST"}),
        ("/admin/antifraud/merchants/m/rules", {"GET", "HEAD", "PUT"}),
        ("/sandbox/pay/K1", {"GET", "HEAD", "POST"}),
    ],
)
async def test_a_405_names_every_method_of_the_path(
    app: Starlette, path: str, allowed: set[str]
) -> None:
    """One route per path: the `Allow` of a 405 was one route's methods (Schemathesis found it)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.request("PATCH", path)
    assert response.status_code == 405 and response.json()["code"] == "method-not-allowed"
    assert set(response.headers["allow"].split(", ")) == allowed


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/payments", {"status", "code", "message"}),
        (
            "/payments/P1/settlements",
            {"paymentId", "settleId", "value", "code", "message", "requestId"},
        ),
        (
            "/payments/P1/refunds",
            {"paymentId", "refundId", "value", "code", "message", "requestId"},
        ),
        (
            "/payments/P1/cancellations",
            {"paymentId", "cancellationId", "code", "message", "requestId"},
        ),
    ],
)
async def test_an_unexpected_failure_is_a_500_in_the_documented_shape(
    app: Starlette,
    services: Services,
    merchant: MerchantCredentials,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    shape: set[str],
):
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services.payments, "authorize", broken)
    for name in ("settle", "refund", "cancel"):
        monkeypatch.setattr(services.operations, name, broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver/payment-provider"
    ) as http:
        response = await http.post(
            path, json={**payloads.create_payment(), "requestId": "r"}, headers=merchant.headers
        )
    assert response.status_code == 500
    body = response.json()
    assert set(body) == shape
    assert body["code"] == "internal-error" and "fire" not in response.text
