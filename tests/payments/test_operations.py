"""Settlements, refunds and cancellations: cumulative limits, replays, refusals, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.app import Services
from connector.db.tables import Payment, PaymentOperation
from tests import payloads
from tests.conftest import FAST, MerchantCredentials


async def approved_payment(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    value: float = 100.0,
    card_number: str = payloads.APPROVED_CARD,
) -> str:
    body = payloads.create_payment(card_number=card_number, value=value)
    response = await client.post(
        "/payments", json=body, headers={**merchant.headers, **payloads.TEST_SUITE}
    )
    assert response.status_code == 200
    return str(body["paymentId"])


async def settle(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    payment_id: str,
    value: float,
    request_id: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"/payments/{payment_id}/settlements",
        json=payloads.settlement(payment_id, value, request_id),
        headers=merchant.headers,
    )


async def refund(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    payment_id: str,
    value: float,
    request_id: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"/payments/{payment_id}/refunds",
        json=payloads.refund(payment_id, value, request_id),
        headers=merchant.headers,
    )


async def cancel(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    payment_id: str,
    request_id: str | None = None,
    path: str = "cancellations",
) -> httpx.Response:
    return await client.post(
        f"/payments/{payment_id}/{path}",
        json=payloads.cancellation(payment_id, request_id),
        headers=merchant.headers,
    )


async def stored(services: Services, payment_id: str) -> Payment:
    async with services.database.reader() as session:
        payment = await session.scalar(select(Payment).where(Payment.payment_id == payment_id))
    assert payment is not None
    return payment


# ----------------------------------------------------------------------------- test suite flow


async def test_test_suite_approved_flow_settle_then_refund(
    client: httpx.AsyncClient, merchant: MerchantCredentials
):
    payment_id = await approved_payment(client, merchant, 31.9)
    settled = await settle(client, merchant, payment_id, 31.9, "settle-1")
    assert settled.status_code == 200
    body = settled.json()
    assert body["settleId"] and body["value"] == 31.9 and body["requestId"] == "settle-1"
    assert body["paymentId"] == payment_id and body["code"] is None
    refunded = await refund(client, merchant, payment_id, 31.9, "refund-1")
    assert refunded.status_code == 200
    body = refunded.json()
    assert body["refundId"] and body["value"] == 31.9 and body["requestId"] == "refund-1"


@pytest.mark.parametrize("path", ["cancellations", "cancelations"])
async def test_test_suite_cancellation_flow(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services, path: str
):
    payment_id = await approved_payment(client, merchant)
    response = await cancel(client, merchant, payment_id, "cancel-1", path=path)
    assert response.status_code == 200
    body = response.json()
    assert body["cancellationId"] and body["requestId"] == "cancel-1" and body["code"] is None
    payment = await stored(services, payment_id)
    assert payment.status == "cancelled" and payment.cancellation_id == body["cancellationId"]
    assert await services.sandbox.effect_count("void") == 1
    # The authorization's answer is still "approved" with the same ids.
    body = payloads.create_payment()
    body["paymentId"] = payment_id
    again = await client.post("/payments", json=body, headers=merchant.headers)
    assert again.json()["status"] == "approved"


# ----------------------------------------------------------------------------- cumulative limits


async def test_partial_settlements_up_to_the_authorized_value(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    assert (await settle(client, merchant, payment_id, 40)).json()["settleId"]
    assert (await settle(client, merchant, payment_id, 60)).json()["settleId"]
    over = (await settle(client, merchant, payment_id, 0.01)).json()
    assert over["settleId"] is None and over["value"] == 0
    assert over["code"] == "exceeds-authorized-value"
    payment = await stored(services, payment_id)
    assert (payment.status, payment.settled_minor) == ("settled", 10_000)
    assert await services.sandbox.effect_count("capture") == 2


async def test_settlement_over_the_authorization_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 50.0)
    response = await settle(client, merchant, payment_id, 50.01)
    assert response.status_code == 200
    assert response.json()["settleId"] is None
    assert (await stored(services, payment_id)).settled_minor == 0
    assert await services.sandbox.effect_count("capture") == 0


async def test_refunds_never_exceed_what_was_settled(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    before = (await refund(client, merchant, payment_id, 10)).json()
    assert before["refundId"] is None and before["code"] == "payment-not-settled"
    await settle(client, merchant, payment_id, 60)
    assert (await refund(client, merchant, payment_id, 25)).json()["refundId"]
    assert (await refund(client, merchant, payment_id, 35)).json()["refundId"]
    over = (await refund(client, merchant, payment_id, 0.01)).json()
    assert over["refundId"] is None and over["code"] == "exceeds-settled-value"
    payment = await stored(services, payment_id)
    assert (payment.status, payment.settled_minor, payment.refunded_minor) == (
        "refunded",
        6_000,
        6_000,
    )


async def test_settling_a_denied_payment_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials
):
    payment_id = await approved_payment(client, merchant, card_number=payloads.DENIED_CARD)
    body = (await settle(client, merchant, payment_id, 1)).json()
    assert body["settleId"] is None and body["code"] == "payment-not-settleable"


async def test_cancel_after_settlement_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant)
    await settle(client, merchant, payment_id, 10)
    body = (await cancel(client, merchant, payment_id)).json()
    assert body["cancellationId"] is None and body["code"] == "payment-already-settled"
    assert (await stored(services, payment_id)).status == "settled"


async def test_settle_after_cancel_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials
):
    payment_id = await approved_payment(client, merchant)
    await cancel(client, merchant, payment_id)
    body = (await settle(client, merchant, payment_id, 10)).json()
    assert body["settleId"] is None and body["code"] == "payment-not-settleable"


async def test_cancelling_a_denied_payment_succeeds_without_acquirer(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, card_number=payloads.DENIED_CARD)
    body = (await cancel(client, merchant, payment_id)).json()
    assert body["cancellationId"] and body["code"] is None
    assert (await stored(services, payment_id)).status == "denied"
    assert await services.sandbox.effect_count("void") == 0


async def test_second_cancellation_with_new_request_id_returns_the_first_id(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant)
    first = (await cancel(client, merchant, payment_id)).json()
    second = (await cancel(client, merchant, payment_id)).json()
    assert second["cancellationId"] == first["cancellationId"]
    assert second["requestId"] != first["requestId"]
    assert await services.sandbox.effect_count("void") == 1


# ----------------------------------------------------------------------------- idempotency


@pytest.mark.parametrize("operation", ["settlements", "refunds", "cancellations"])
async def test_same_request_id_replays_the_stored_response(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    operation: str,
):
    payment_id = await approved_payment(client, merchant, 100.0)
    if operation == "refunds":
        await settle(client, merchant, payment_id, 100)
    call = {
        "settlements": lambda: settle(client, merchant, payment_id, 30, "same"),
        "refunds": lambda: refund(client, merchant, payment_id, 30, "same"),
        "cancellations": lambda: cancel(client, merchant, payment_id, "same"),
    }[operation]
    first = await call()
    second = await call()
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    kind = {"settlements": "capture", "refunds": "refund", "cancellations": "void"}[operation]
    assert await services.sandbox.effect_count(kind) == 1


async def test_concurrent_settlements_never_exceed_the_authorization(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    responses = await asyncio.gather(*(settle(client, merchant, payment_id, 30) for _ in range(10)))
    accepted = [r.json() for r in responses if r.json()["settleId"]]
    assert len(accepted) == 3
    payment = await stored(services, payment_id)
    assert payment.settled_minor == 9_000
    assert await services.sandbox.effect_count("capture") == 3


async def test_concurrent_repeats_of_one_request_id_settle_once(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    services.sandbox.latency_seconds = 0.1
    responses = await asyncio.gather(
        *(settle(client, merchant, payment_id, 30, "once") for _ in range(10))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["settleId"] for r in responses}) == 1
    assert (await stored(services, payment_id)).settled_minor == 3_000
    assert await services.sandbox.effect_count("capture") == 1


async def test_concurrent_cancel_and_settle_leave_one_winner(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    settled, cancelled = await asyncio.gather(
        settle(client, merchant, payment_id, 100), cancel(client, merchant, payment_id)
    )
    winners = [bool(settled.json()["settleId"]), bool(cancelled.json()["cancellationId"])]
    assert winners.count(True) == 1
    payment = await stored(services, payment_id)
    assert payment.status == ("settled" if winners[0] else "cancelled")


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("settings_overrides", [FAST], indirect=True)
async def test_acquirer_failure_on_capture_answers_500_and_retry_captures_once(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    services.sandbox.inject_failures("capture", after_effect=True)
    failed = await settle(client, merchant, payment_id, 100, "retry-me")
    assert failed.status_code == 500
    assert failed.json()["settleId"] is None and failed.json()["value"] == 0
    # A different requestId cannot capture the amount whose fate is unknown.
    other = (await settle(client, merchant, payment_id, 100)).json()
    assert other["settleId"] is None
    await asyncio.sleep(1.0)  # the unknown attempt goes stale; VTEX's retry takes it over
    retried = await settle(client, merchant, payment_id, 100, "retry-me")
    assert retried.status_code == 200 and retried.json()["settleId"]
    assert await services.sandbox.effect_count("capture") == 1
    assert (await stored(services, payment_id)).settled_minor == 10_000


async def test_acquirer_refusal_releases_the_reservation(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    payment_id = await approved_payment(client, merchant, 100.0)
    await settle(client, merchant, payment_id, 100)
    # The acquirer refuses a void of a captured authorization; the connector refuses first.
    body = (await cancel(client, merchant, payment_id)).json()
    assert body["cancellationId"] is None
    assert (await stored(services, payment_id)).status == "settled"


async def test_cancelling_while_authorization_in_flight_asks_for_a_retry(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
):
    services.sandbox.latency_seconds = 0.25
    body = payloads.create_payment()
    creating = asyncio.create_task(client.post("/payments", json=body, headers=merchant.headers))
    await asyncio.sleep(0.1)
    response = await cancel(client, merchant, body["paymentId"])
    assert response.status_code == 500
    assert response.json()["code"] == "authorization-in-progress"
    assert (await creating).json()["status"] == "approved"
    async with services.database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(PaymentOperation)) == 0


# ----------------------------------------------------------------------------- bad requests


async def test_unknown_payment_is_404(client: httpx.AsyncClient, merchant: MerchantCredentials):
    for path in ("settlements", "refunds", "cancellations"):
        response = await client.post(
            f"/payments/NOPE/{path}", json={"requestId": "r", "value": 1}, headers=merchant.headers
        )
        assert response.status_code == 404
        assert response.json()["code"] == "payment-not-found"


async def test_body_payment_id_must_match_the_path(
    client: httpx.AsyncClient, merchant: MerchantCredentials
):
    payment_id = await approved_payment(client, merchant)
    response = await client.post(
        f"/payments/{payment_id}/settlements",
        json=payloads.settlement("SOMETHING-ELSE", 1),
        headers=merchant.headers,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "payment-id-mismatch"


@pytest.mark.parametrize(
    "body",
    [
        {"value": 1},
        {"requestId": "r"},
        {"requestId": "r", "value": -1},
        {"requestId": "r", "value": 0},
        {"requestId": "r", "value": 1.001},
    ],
)
async def test_invalid_settlements_get_400_and_change_nothing(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    body: dict[str, Any],
):
    payment_id = await approved_payment(client, merchant)
    response = await client.post(
        f"/payments/{payment_id}/settlements", json=body, headers=merchant.headers
    )
    assert response.status_code == 400
    assert (await stored(services, payment_id)).settled_minor == 0
