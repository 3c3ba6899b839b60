"""The time budget and what happens past it: an authorization whose outcome is unknown stays
pending, answers `undefined`, and is reconciled by asking the core; nothing is ever sent twice
before a query says the first never arrived."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connector.app import Services
from connector.db.tables import Payment
from homologation.fakes.acquirer import Fault
from tests import payloads
from tests.acquirers.conftest import Core, Proxy, pay
from tests.conftest import FAST, MerchantCredentials
from tests.receiver import Receiver

# Budget 0.5 s, an attempt stale after 0.8 s; the reconciler's first look 0.1 s after `undefined`.
RECONCILING = {
    **FAST,
    "callback_delay_seconds": 0.1,
    "reconcile_interval_seconds": 0.1,
    "outbox_poll_seconds": 0.05,
}
WITH_WORKERS = {**RECONCILING, "run_background_workers": True}
# Budget 1 s against a core that takes 30 s to answer anything.
ONE_SECOND = {
    "acquirer_timeout_seconds": 1.0,
    "test_suite_acquirer_timeout_seconds": 1.0,
    "attempt_stale_seconds": 2.0,
}
# What a request may take beyond its budget: the connector's own work (database, JSON).
OVERHEAD = 0.5


async def reconcile_until_decided(services: Services, payment_id: str, seconds: float) -> str:
    """Run reconciler passes (as the worker would) until the payment is decided."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await services.outcomes.reconcile_due()
        async with services.database.reader() as session:
            status = await session.scalar(
                select(Payment.status).where(Payment.payment_id == payment_id)
            )
        if status is not None and status != "pending":
            return str(status)
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment {payment_id} still pending after {seconds} s")


@pytest.mark.parametrize("settings_overrides", [WITH_WORKERS], indirect=True)
async def test_a_timed_out_authorization_is_reconciled_to_approved_with_one_authorization(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    core: Core,
    receiver: Receiver,
) -> None:
    # The core approves at once but its answer takes 30 s: lost to the connector's budget.
    core.fake.inject(Fault("authorize", latency_after=30))
    body = payloads.create_payment(callbackUrl=receiver.url("/callback?X-VTEX-signature=s"))
    started = time.monotonic()
    first = await pay(client, merchant, body)
    assert first["status"] == "undefined"
    assert time.monotonic() - started < 0.5 + OVERHEAD

    # The reconciler asks the core by reference, decides, and calls VTEX back.
    (callback,) = await receiver.wait_for(1, timeout=10)
    assert callback.body["status"] == "approved"
    assert callback.body["authorizationId"].startswith("AUT-")
    # VTEX's retry gets the same answer; the core saw one authorization, and no second POST.
    again = await pay(client, merchant, body)
    assert again["status"] == "approved"
    assert again["authorizationId"] == callback.body["authorizationId"]
    assert core.fake.effect_count("authorize") == 1
    assert core.posts("/authorizations") == 1


@pytest.mark.parametrize("settings_overrides", [RECONCILING], indirect=True)
async def test_a_core_that_records_late_is_found_by_later_checks(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services, core: Core
) -> None:
    # The request reaches the core only after 1.5 s: the first checks find nothing, and the
    # reconciler keeps looking (never re-authorizing: it has no card) until the core knows it.
    core.fake.inject(Fault("authorize", latency_before=1.5))
    body = payloads.create_payment()
    assert (await pay(client, merchant, body))["status"] == "undefined"
    status = await reconcile_until_decided(services, body["paymentId"], seconds=5)
    assert status == "approved"
    assert core.posts("/authorizations") == 1
    assert core.fake.effect_count("authorize") == 1


@pytest.mark.parametrize("settings_overrides", [FAST], indirect=True)
async def test_a_retry_asks_before_it_authorizes_even_when_the_core_ignores_references(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core
) -> None:
    # A core without duplicate detection: a second POST would authorize twice.
    core.fake.dedupe = False
    core.fake.inject(Fault("authorize", latency_after=30))
    body = payloads.create_payment()
    assert (await pay(client, merchant, body))["status"] == "undefined"
    # Within the attempt's lifetime a retry does not even ask; after it, the retry asks first.
    assert (await pay(client, merchant, body))["status"] == "undefined"
    await asyncio.sleep(1.0)
    assert (await pay(client, merchant, body))["status"] == "approved"
    assert core.posts("/authorizations") == 1
    assert core.fake.effect_count("authorize") == 1


@pytest.mark.parametrize("settings_overrides", [FAST], indirect=True)
async def test_an_authorization_the_core_never_saw_is_sent_once_after_a_query(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core
) -> None:
    core.fake.inject(Fault("authorize", status_before=503))
    body = payloads.create_payment()
    assert (await pay(client, merchant, body))["status"] == "undefined"
    await asyncio.sleep(1.0)
    assert (await pay(client, merchant, body))["status"] == "approved"
    calls = [
        (r.method, r.path.rsplit("/", 1)[-1] if r.method == "GET" else r.path)
        for r in core.fake.requests
    ]
    reference = calls[1][1]
    assert calls == [("POST", "/authorizations"), ("GET", reference), ("POST", "/authorizations")]
    assert core.fake.effect_count("authorize") == 1


# ---------------------------------------------------------------------- a core that sleeps 30 s


async def timed(call: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await call
    return time.monotonic() - started, response


@pytest.mark.parametrize("settings_overrides", [ONE_SECOND], indirect=True)
async def test_a_core_that_sleeps_30_s_never_makes_a_request_exceed_the_budget(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    core: Core,
    proxy: Proxy,
) -> None:
    to_settle, to_cancel = payloads.create_payment(), payloads.create_payment()
    for body in (to_settle, to_cancel):
        assert (await pay(client, merchant, body))["status"] == "approved"
    settle_id, cancel_id = to_settle["paymentId"], to_cancel["paymentId"]
    core.fake.inject(Fault("any", latency_before=30, times=None))
    budget = 1.0
    headers = merchant.headers
    slow = payloads.create_payment()

    requests = {
        "authorize": client.post("/payments", json=slow, headers=headers),
        "authorize through the proxy": client.post(
            "/payments",
            json=payloads.tokenized_payment(
                await proxy.tokenize(payloads.APPROVED_CARD), proxy.url
            ),
            headers=headers,
        ),
        "settle": client.post(
            f"/payments/{settle_id}/settlements",
            json=payloads.settlement(settle_id, 10),
            headers=headers,
        ),
        "cancel": client.post(
            f"/payments/{cancel_id}/cancellations",
            json=payloads.cancellation(cancel_id),
            headers=headers,
        ),
    }
    for name, request in requests.items():
        elapsed, response = await timed(request)
        assert elapsed < budget + OVERHEAD, f"{name} took {elapsed:.2f} s"
        if name.startswith("authorize"):
            assert response.json()["status"] == "undefined", name
        else:
            assert response.status_code == 500, name  # VTEX retries later

    # VTEX's retry of the stale attempt queries, then would authorize: both in one budget.
    await asyncio.sleep(2.1)
    elapsed, response = await timed(client.post("/payments", json=slow, headers=headers))
    assert elapsed < budget + OVERHEAD and response.json()["status"] == "undefined"


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "acquirer_timeout_seconds": 2.0,
            "test_suite_acquirer_timeout_seconds": 0.5,
            "sandbox_latency_ms": 1000,
        }
    ],
    indirect=True,
)
async def test_test_suite_traffic_has_its_own_shorter_budget(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core
) -> None:
    # Both acquirers take 1 s: inside the production budget, past the Test Suite's.
    core.fake.inject(Fault("authorize", latency_before=1.0))
    real = await pay(client, merchant, payloads.create_payment())
    assert real["status"] == "approved"
    started = time.monotonic()
    suite = await client.post(
        "/payments",
        json=payloads.create_payment(),
        headers={**merchant.headers, **payloads.TEST_SUITE},
    )
    assert suite.json()["status"] == "undefined"
    assert time.monotonic() - started < 0.5 + OVERHEAD
