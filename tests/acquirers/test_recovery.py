"""An authorization whose process died mid-request (`kill -9`, a crash) is recovered by the
reconciler: what the core did is recorded and called back, what it never saw is left for VTEX's
retry, which brings the card. tests/faults/ shows the same with real processes killed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from connector.app import Services
from connector.db.tables import OutboxMessage, Payment, utcnow
from homologation.fakes.acquirer import Fault
from tests import payloads
from tests.acquirers.conftest import Core, pay
from tests.conftest import FAST, MerchantCredentials

pytestmark = pytest.mark.parametrize("settings_overrides", [FAST], indirect=True)


async def _die_mid_authorization(
    client: httpx.AsyncClient, merchant: MerchantCredentials, body: dict[str, object]
) -> None:
    """The request is cut while the core holds it: the row stays `received`, as after kill -9."""
    request = asyncio.create_task(pay(client, merchant, body))
    await asyncio.sleep(0.3)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


async def _age_attempts(services: Services) -> None:
    """Time passes: the dead process's attempt becomes stale."""
    async with services.database.writer() as session:
        await session.execute(
            update(Payment).values(authorizing_since=utcnow() - timedelta(minutes=5))
        )


async def _payment(services: Services, payment_id: str) -> Payment:
    async with services.database.reader() as session:
        payment = await session.scalar(select(Payment).where(Payment.payment_id == payment_id))
    assert payment is not None
    return payment


async def test_an_approval_the_core_made_is_recorded_and_called_back(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, services: Services
) -> None:
    core.fake.inject(Fault("authorize", latency_after=30))  # acts, then the answer is late
    body = payloads.create_payment()
    await _die_mid_authorization(client, merchant, body)
    assert (await _payment(services, body["paymentId"])).status == "received"
    assert await services.outcomes.recover_abandoned() == 0, "not stale yet: nothing to do"

    await _age_attempts(services)
    assert await services.outcomes.recover_abandoned() == 1
    assert await services.outcomes.recover_abandoned() == 0, "claimed once"

    payment = await _payment(services, body["paymentId"])
    assert payment.status == "approved" and payment.authorization_id is not None
    async with services.database.reader() as session:
        callbacks = [m.payload for m in await session.scalars(select(OutboxMessage))]
    assert [c["status"] for c in callbacks] == ["approved"]
    assert callbacks[0]["authorizationId"] == payment.authorization_id
    assert core.fake.effect_count("authorize") == 1
    # VTEX's retry now gets the same answer, and the core is not asked to authorize again.
    assert (await pay(client, merchant, body))["status"] == "approved"
    assert core.fake.effect_count("authorize") == 1


async def test_what_the_core_never_saw_is_left_for_vtexs_retry(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, services: Services
) -> None:
    core.fake.dedupe = False  # a second authorization would count as a second charge
    core.fake.inject(Fault("authorize", latency_before=30))  # the core has not acted yet
    body = payloads.create_payment()
    await _die_mid_authorization(client, merchant, body)
    core.fake.reset_faults()  # the held request is dropped: the core never acts on it
    core.fake.faults.clear()

    await _age_attempts(services)
    assert await services.outcomes.recover_abandoned() == 1
    payment = await _payment(services, body["paymentId"])
    assert payment.status == "pending", "undecided: only VTEX's retry has the card"
    assert core.fake.effect_count("authorize") == 0

    await _age_attempts(services)
    assert (await pay(client, merchant, body))["status"] == "approved"
    assert core.fake.effect_count("authorize") == 1
