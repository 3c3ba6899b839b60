"""Asynchronous flows at a real core: its instruments reach VTEX as they are, its outcomes arrive
by polling, by an inbound request or by the webhook, and concurrent retries ask it once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connector.app import Services
from connector.db.tables import OutboxMessage
from homologation.fakes.acquirer import Fault
from tests import payloads
from tests.acquirers.conftest import Core, pay
from tests.conftest import FAST, MerchantCredentials
from tests.outbox.test_inbound import inbound_body

NULL_CARD = {"holder": None, "number": None, "csc": None, "expiration": None}


async def callbacks(services: Services) -> list[dict[str, Any]]:
    async with services.database.reader() as session:
        return [message.payload for message in await session.scalars(select(OutboxMessage))]


async def test_a_bank_invoice_shows_the_cores_instrument_and_is_decided_by_inbound(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services, core: Core
) -> None:
    # The shopper's inbound decision must reach the core before its own timer decides (0.3 s
    # in these tests, too short on a loaded CI machine).
    core.fake.async_decision_seconds = 60
    body = payloads.create_payment(paymentMethod="BankInvoice", card=NULL_CARD)
    answer = await pay(client, merchant, body)
    assert answer["status"] == "undefined"
    assert answer["paymentUrl"].startswith("https://core.example/pay/")
    assert len(answer["identificationNumber"]) == 47
    [sent] = [r for r in core.fake.requests if r.path == "/authorizations"]
    assert json.loads(sent.body)["flow"] == "bank_invoice" and json.loads(sent.body)["card"] is None

    payment_id = body["paymentId"]
    decided = await client.post(
        f"/payments/{payment_id}/inbound/decide",
        json=inbound_body(payment_id, {"decision": "approve"}),
        headers=merchant.headers,
    )
    assert decided.status_code == 200
    assert json.loads(decided.json()["responseData"]["content"])["status"] == "approved"
    again = await pay(client, merchant, body)
    assert again["status"] == "approved" and again["identificationNumber"]
    [callback] = await callbacks(services)
    assert callback["status"] == "approved" and callback["paymentId"] == payment_id


async def test_an_unknown_inbound_action_is_404(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core
) -> None:
    body = payloads.create_payment(paymentMethod="BankInvoice", card=NULL_CARD)
    await pay(client, merchant, body)
    payment_id = body["paymentId"]
    response = await client.post(
        f"/payments/{payment_id}/inbound/teleport",
        json=inbound_body(payment_id, {}),
        headers=merchant.headers,
    )
    assert response.status_code == 404 and response.json()["code"] == "unknown-action"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"callback_delay_seconds": 0.1, "reconcile_interval_seconds": 0.1}],
    indirect=True,
)
async def test_an_async_card_is_decided_by_polling_the_core(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services, core: Core
) -> None:
    body = payloads.create_payment(card_number=payloads.ASYNC_DENIED_CARD)
    assert (await pay(client, merchant, body))["status"] == "undefined"
    for _ in range(40):  # the core decides 0.3 s later; the reconciler looks every 0.1 s
        await asyncio.sleep(0.1)
        await services.outcomes.reconcile_due()
        if await callbacks(services):
            break
    [callback] = await callbacks(services)
    assert callback["status"] == "denied"
    assert core.posts("/authorizations") == 1


# FAST's 0.5 s budget, spent by ten retries queueing on SQLite's one writer under a loaded CI
# machine, left even the winner of the take-over no time to ask the core: all ten undefined.
ROOMY = {
    **FAST,
    "acquirer_timeout_seconds": 2.0,
    "test_suite_acquirer_timeout_seconds": 2.0,
    "attempt_stale_seconds": 2.5,
    "duplicate_wait_seconds": 2.0,
}


@pytest.mark.parametrize("settings_overrides", [ROOMY], indirect=True)
async def test_concurrent_retries_of_an_unknown_authorization_ask_once_and_send_once(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core
) -> None:
    # The first attempt never reached the core; VTEX then retries ten times at once.
    core.fake.dedupe = False  # so a second POST would show as a second authorization
    core.fake.inject(Fault("authorize", status_before=503))
    body = payloads.create_payment()
    assert (await pay(client, merchant, body))["status"] == "undefined"
    await asyncio.sleep(2.7)  # stale

    answers = await asyncio.gather(*(pay(client, merchant, body) for _ in range(10)))
    statuses = {answer["status"] for answer in answers}
    assert statuses <= {"approved", "undefined"} and "approved" in statuses
    # One retry won the take-over (a conditional UPDATE): one query, one authorization.
    assert len([r for r in core.fake.requests if r.method == "GET"]) == 1
    assert core.posts("/authorizations") == 2  # the failed first attempt and the winner's
    assert core.fake.effect_count("authorize") == 1
    final = await pay(client, merchant, body)
    assert final["status"] == "approved"
