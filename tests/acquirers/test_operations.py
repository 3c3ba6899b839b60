"""Settlements, refunds and cancellations against a core that fails: VTEX is told to retry, and
the retry never doubles the effect, even at a core that ignores idempotency references."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from homologation.fakes.acquirer import Fault
from tests import payloads
from tests.acquirers.conftest import API_KEY, Core
from tests.conftest import FAST, MerchantCredentials

pytestmark = pytest.mark.parametrize("settings_overrides", [FAST], indirect=True)

# (VTEX route, body builder, the core's operation, the answer's id field)
KINDS = {
    "settle": ("settlements", payloads.settlement, "capture", "settleId"),
    "refund": ("refunds", payloads.refund, "refund", "refundId"),
    "cancel": ("cancellations", None, "void", "cancellationId"),
}


async def approved(client: httpx.AsyncClient, merchant: MerchantCredentials) -> str:
    body = payloads.create_payment(value=100)
    answer = (await client.post("/payments", json=body, headers=merchant.headers)).json()
    assert answer["status"] == "approved"
    return str(body["paymentId"])


async def operate(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    kind: str,
    payment_id: str,
    request_id: str,
) -> httpx.Response:
    route, build, _, _ = KINDS[kind]
    body: dict[str, Any] = (
        build(payment_id, 40, request_id)
        if build is not None
        else payloads.cancellation(payment_id, request_id)
    )
    return await client.post(f"/payments/{payment_id}/{route}", json=body, headers=merchant.headers)


async def ready(client: httpx.AsyncClient, merchant: MerchantCredentials, kind: str) -> str:
    payment_id = await approved(client, merchant)
    if kind == "refund":
        settled = await operate(client, merchant, "settle", payment_id, "settle-first")
        assert settled.json()["settleId"]
    return payment_id


@pytest.mark.parametrize("kind", KINDS)
async def test_a_5xx_then_vtexs_retry_acts_once(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, kind: str
) -> None:
    _, _, operation, id_field = KINDS[kind]
    payment_id = await ready(client, merchant, kind)
    core.fake.inject(Fault(operation, status_before=503))

    failed = await operate(client, merchant, kind, payment_id, "r-1")
    assert failed.status_code == 500 and failed.json()[id_field] is None
    await asyncio.sleep(1.0)  # VTEX retries later; the attempt is stale by then
    retried = await operate(client, merchant, kind, payment_id, "r-1")
    assert retried.status_code == 200 and retried.json()[id_field]
    assert core.fake.effect_count(operation) == 1
    # And a third call is a replay of the stored answer, with no call to the core at all.
    calls = len(core.fake.requests)
    replay = await operate(client, merchant, kind, payment_id, "r-1")
    assert replay.json() == retried.json() and len(core.fake.requests) == calls


@pytest.mark.parametrize("kind", KINDS)
async def test_an_effect_whose_answer_was_lost_is_found_not_repeated(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, kind: str
) -> None:
    _, _, operation, id_field = KINDS[kind]
    payment_id = await ready(client, merchant, kind)
    core.fake.dedupe = False  # a core that would act again on a repeated reference
    core.fake.inject(Fault(operation, status_after=502))

    failed = await operate(client, merchant, kind, payment_id, "r-1")
    assert failed.status_code == 500
    assert core.fake.effect_count(operation) == 1  # it happened; the connector did not hear
    await asyncio.sleep(1.0)
    retried = await operate(client, merchant, kind, payment_id, "r-1")
    assert retried.status_code == 200 and retried.json()[id_field]
    assert core.fake.effect_count(operation) == 1
    sent = [
        r for r in core.fake.requests if r.method == "POST" and r.path.endswith(operation + "s")
    ]
    assert len(sent) == 1  # the retry asked (GET /operations/...) and never re-sent


async def test_the_cores_refusal_is_a_definitive_no_that_releases_the_amount(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core
) -> None:
    payment_id = await approved(client, merchant)
    # An operator voided the authorization at the core, behind the connector's back.
    [authorize] = [r for r in core.fake.requests if r.path == "/authorizations"]
    reference = json.loads(authorize.body)["reference"]
    async with httpx.AsyncClient(base_url=core.url, headers={"Api-Key": API_KEY}) as http:
        voided = await http.post(
            f"/authorizations/{reference}/voids", json={"reference": "ops-1", "amount": 10000}
        )
    assert voided.json()["status"] == "succeeded"

    refused = await operate(client, merchant, "settle", payment_id, "s-1")
    assert refused.status_code == 200  # a definitive no: VTEX must not retry it
    assert refused.json()["settleId"] is None and refused.json()["code"] == "voided"
    assert core.fake.effect_count("capture") == 0
    # The reservation was released: the connector's ledger still allows the full amount.
    again = await operate(client, merchant, "settle", payment_id, "s-2")
    assert again.json()["code"] == "voided"
