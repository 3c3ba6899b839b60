"""Asynchronous outcomes reach VTEX by callback: after the request, once, verbatim, retried."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from connector.app import Services
from connector.db.tables import OutboxMessage, Payment, utcnow
from tests import payloads
from tests.conftest import MerchantCredentials
from tests.receiver import Receiver

BACKGROUND = {
    "run_background_workers": True,
    "sandbox_async_decision_seconds": 0.5,
    "reconcile_interval_seconds": 0.2,
    "callback_delay_seconds": 0.2,
    "outbox_poll_seconds": 0.05,
    "callback_backoff_base_seconds": 0.05,
    "callback_backoff_max_seconds": 0.2,
    "vtex_app_key": "vtexappkey-provider",
    "vtex_app_token": "provider-token",
}
pytestmark = pytest.mark.parametrize("settings_overrides", [BACKGROUND], indirect=True)


async def pay(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    card: str,
    **overrides: Any,
) -> tuple[dict[str, Any], float]:
    body = payloads.create_payment(card_number=card, **overrides)
    body["callbackUrl"] = receiver.url(
        "/api/pvt/payment-provider/transactions/T1/payments/P1/callback"
        "?accountName=teampaymentsintegrations&X-VTEX-signature=R123456789aBcDeFGHij1234567890tk"
    )
    response = await client.post(
        "/payments", json=body, headers={**merchant.headers, **payloads.TEST_SUITE}
    )
    answered_at = time.monotonic()
    assert response.status_code == 200, response.text
    return response.json(), answered_at


@pytest.mark.parametrize(
    ("card", "final"),
    [(payloads.ASYNC_APPROVED_CARD, "approved"), (payloads.ASYNC_DENIED_CARD, "denied")],
)
async def test_async_test_cards_are_called_back_after_the_response(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    card: str,
    final: str,
):
    answer, answered_at = await pay(client, merchant, receiver, card)
    assert answer["status"] == "undefined"
    (callback,) = await receiver.wait_for(1)
    assert callback.at > answered_at  # never while the original POST /payments was open
    assert callback.body["status"] == final
    assert callback.body["paymentId"] == answer["paymentId"]
    assert callback.body["tid"] == answer["tid"]
    for key in ("delayToAutoSettle", "delayToAutoSettleAfterAntifraud", "delayToCancel"):
        assert callback.body[key] == answer[key]
    # The URL exactly as received, its signature parameter intact.
    assert callback.url.endswith(
        "/callback?accountName=teampaymentsintegrations"
        "&X-VTEX-signature=R123456789aBcDeFGHij1234567890tk"
    )
    assert callback.headers["x-vtex-api-appkey"] == "vtexappkey-provider"
    assert callback.headers["x-vtex-api-apptoken"] == "provider-token"
    # And VTEX's next POST /payments gets the same final answer.
    body = payloads.create_payment(card_number=card)
    body["paymentId"] = answer["paymentId"]
    again = await client.post("/payments", json=body, headers=merchant.headers)
    assert again.json() == callback.body


async def test_synchronous_answers_are_not_called_back(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    services: Services,
):
    answer, _ = await pay(client, merchant, receiver, payloads.APPROVED_CARD)
    assert answer["status"] == "approved"
    await asyncio.sleep(0.8)
    assert receiver.attempts == 0
    async with services.database.reader() as session:
        assert list(await session.scalars(select(OutboxMessage))) == []


async def test_a_receiver_failing_twice_gets_the_callback_once(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    services: Services,
):
    receiver.fail_next = 2
    await pay(client, merchant, receiver, payloads.ASYNC_APPROVED_CARD)
    await receiver.wait_for(1)
    await asyncio.sleep(0.5)
    assert receiver.attempts == 3 and len(receiver.received) == 1
    async with services.database.reader() as session:
        (message,) = await session.scalars(select(OutboxMessage))
    assert (message.status, message.attempts) == ("delivered", 3)


async def test_a_callback_past_its_deadline_becomes_a_dead_letter_and_can_be_replayed(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    services: Services,
):
    receiver.fail_next = 1_000
    await pay(client, merchant, receiver, payloads.ASYNC_APPROVED_CARD)
    while receiver.attempts == 0:  # the callback is enqueued and failing
        await asyncio.sleep(0.05)
    async with services.database.writer() as session:
        await session.execute(update(OutboxMessage).values(deadline=utcnow()))
    for _ in range(100):
        async with services.database.reader() as session:
            messages = list(await session.scalars(select(OutboxMessage)))
        if messages and messages[0].status == "dead":
            break
        await asyncio.sleep(0.1)
    assert messages[0].status == "dead" and messages[0].last_error == "HTTP 500"
    receiver.fail_next = 0
    from connector.outbox.repository import OutboxRepository

    async with services.database.writer() as session:
        assert await OutboxRepository(session).retry(None, utcnow(), utcnow() + _hour()) == 1
    (callback,) = await receiver.wait_for(1)
    assert callback.body["status"] == "approved"


def _hour() -> Any:
    from datetime import timedelta

    return timedelta(hours=1)


async def test_callback_url_off_the_allow_list_is_refused_at_request_time(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
):
    for url in (
        "https://attacker.example.org/steal",
        "http://api.mystore.example.com/x",
        "https://10.0.0.1/x",
        "https://user:pw@api.mystore.example.com/x",
        "ftp://x",
    ):
        body = payloads.create_payment(card_number=payloads.ASYNC_APPROVED_CARD, callbackUrl=url)
        response = await client.post("/payments", json=body, headers=merchant.headers)
        assert response.status_code == 400, url
        assert response.json()["code"] == "callback-url-not-allowed"
    async with services.database.reader() as session:
        assert list(await session.scalars(select(Payment))) == []


async def test_late_approval_of_a_cancelled_payment_is_voided_not_revived(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    services: Services,
):
    services.sandbox.async_decision_seconds = 30  # stays pending while we cancel it
    answer, _ = await pay(client, merchant, receiver, payloads.ASYNC_APPROVED_CARD)
    payment_id = answer["paymentId"]
    cancelled = await client.post(
        f"/payments/{payment_id}/cancellations",
        json=payloads.cancellation(payment_id),
        headers=merchant.headers,
    )
    assert cancelled.json()["cancellationId"]
    # The void sent with the cancellation makes the authorization uncapturable at the acquirer.
    assert await services.sandbox.effect_count("void") == 1
    async with services.database.reader() as session:
        payment = await session.scalar(select(Payment).where(Payment.payment_id == payment_id))
    assert payment is not None
    from connector.acquirers.base import AuthorizationOutcome, AuthorizationResult

    late = AuthorizationResult(AuthorizationOutcome.APPROVED, "AUT-LATE", "NSU", "00", "late")
    after = await services.outcomes.apply(payment, late)
    assert after.status == "cancelled" and after.authorization_id is None
    await asyncio.sleep(0.5)
    assert receiver.attempts == 0  # nothing to announce: VTEX cancelled it
