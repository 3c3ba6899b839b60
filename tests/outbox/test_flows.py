"""Every purchase flow, walked from POST /payments to its final callback."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connector.acquirers.instruments import _crc16
from tests import payloads
from tests.conftest import MerchantCredentials
from tests.receiver import Receiver

FLOWS = {
    "run_background_workers": True,
    "sandbox_async_decision_seconds": 0.5,
    "reconcile_interval_seconds": 0.2,
    "callback_delay_seconds": 0.2,
    "outbox_poll_seconds": 0.05,
    "redirect_payment_methods": ["RedirectPay"],
    "payment_app_methods": ["CustomPay"],
    "public_base_url": "http://testserver",
}
pytestmark = pytest.mark.parametrize("settings_overrides", [FLOWS], indirect=True)
NULL_CARD = {
    "holder": None,
    "number": None,
    "csc": None,
    "expiration": {"month": None, "year": None},
}


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The shopper's browser, on the service's own pages."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


async def start(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    method: str,
    test_suite: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    body = payloads.create_payment(card_number=None, paymentMethod=method, **overrides)
    body["card"] = NULL_CARD
    body["callbackUrl"] = receiver.url("/callback?X-VTEX-signature=s1")
    headers = {**merchant.headers, **(payloads.TEST_SUITE if test_suite else {})}
    response = await client.post("/payments", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "undefined"
    return answer


async def test_test_suite_boleto_case(
    client: httpx.AsyncClient, merchant: MerchantCredentials, receiver: Receiver
):
    answer = await start(client, merchant, receiver, "BankInvoice", test_suite=True)
    assert answer["paymentUrl"].startswith("http://testserver/sandbox/pay/pay-")
    assert len(answer["identificationNumber"]) == 47
    assert answer["barCodeImageType"] == "i25" and len(answer["barCodeImageNumber"]) == 44
    assert answer["delayToCancel"] == 259_200
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == "approved"
    assert callback.body["identificationNumber"] == answer["identificationNumber"]


async def test_test_suite_redirect_case(
    client: httpx.AsyncClient, merchant: MerchantCredentials, receiver: Receiver
):
    answer = await start(client, merchant, receiver, "Visa", test_suite=True)
    assert answer["paymentUrl"] and answer["redirectUrl"] == answer["paymentUrl"]
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == "approved"


@pytest.mark.parametrize(("decision", "final"), [("approve", "approved"), ("deny", "denied")])
async def test_redirect_flow_through_our_page(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    browser: httpx.AsyncClient,
    decision: str,
    final: str,
):
    answer = await start(
        client,
        merchant,
        receiver,
        "RedirectPay",
        returnUrl="https://mystore.example.com/checkout/order/1",
    )
    page = await browser.get(answer["paymentUrl"])
    assert page.status_code == 200 and "Pay</button>" in page.text
    chosen = await browser.post(answer["paymentUrl"], data={"decision": decision})
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "https://mystore.example.com/checkout/order/1"
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == final and callback.body["paymentId"] == answer["paymentId"]
    # A second click changes nothing.
    await browser.post(answer["paymentUrl"], data={"decision": "approve"})
    again = await client.post(
        "/payments",
        json={"paymentId": answer["paymentId"], "value": 31.9, "currency": "BRL"},
        headers=merchant.headers,
    )
    assert again.json()["status"] == final


async def test_pix_flow(
    client: httpx.AsyncClient, merchant: MerchantCredentials, receiver: Receiver
):
    answer = await start(client, merchant, receiver, "Pix")
    assert 900 <= answer["delayToCancel"] <= 3600
    app_data = answer["paymentAppData"]
    payload = json.loads(app_data["payload"])
    code = payload["code"]
    assert code.startswith("000201") and code[-4:] == _crc16(code[:-4])
    assert base64.b64decode(payload["qrCodeBase64Image"]).startswith(b"\x89PNG")
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == "approved"


async def test_payment_app_flow(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    browser: httpx.AsyncClient,
):
    answer = await start(client, merchant, receiver, "CustomPay")
    app_data = answer["paymentAppData"]
    assert app_data["appName"] == "vtex.payment-app"
    deny_url = json.loads(app_data["payload"])["denyUrl"]
    assert (await browser.post(deny_url)).status_code == 303  # back to the store
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == "denied"


async def test_bank_invoice_outside_the_test_suite(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    browser: httpx.AsyncClient,
):
    answer = await start(client, merchant, receiver, "BankInvoice")
    assert (await browser.get(answer["paymentUrl"])).status_code == 200
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == "approved"


async def test_unknown_page_is_404(browser: httpx.AsyncClient):
    assert (await browser.get("/sandbox/pay/pay-" + "0" * 32)).status_code == 404
    assert (await browser.get("/sandbox/pay/nonsense")).status_code == 404
