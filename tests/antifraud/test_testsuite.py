"""VTEX's anti-fraud test suite, end to end over HTTP (reference, A13): ids ending in 1 approve,
2 deny, 3 and 4 answer `undefined` first and then approve or deny, 5 and 6 the same with the
decision POSTed to the `hook` URL. The suite reads statuses without credentials; the hook is
delivered through the outbox by the background workers to a real HTTP receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.antifraud.conftest import SUITE, order, suite_id
from tests.receiver import Receiver, running_receiver

pytestmark = pytest.mark.anyio

WORKERS = {
    "run_background_workers": True,
    "antifraud_poll_seconds": 0.1,
    "antifraud_test_suite_hook_delay_seconds": 0.5,
    "outbox_poll_seconds": 0.1,
    "callback_delay_seconds": 0,
    "vtex_app_key": "vtexappkey-provider-ABCDEF",
    "vtex_app_token": "provider-token",
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


def hook_url(receiver: Receiver, transaction_id: str) -> str:
    """The shape of the suite's mock: the URL must be called exactly so, query included."""
    return receiver.url(f"/antifraud-provider/transactions/{transaction_id}/hook?accountName=acme")


async def start(
    antifraud: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver, case: str
) -> str:
    transaction_id = suite_id(case)
    response = await antifraud.post(
        "/transactions",
        json=order(transaction_id, hook=hook_url(receiver, transaction_id)),
        headers={**headers, **SUITE},
    )
    assert response.status_code in (200, 201)
    answer = response.json()
    assert answer["status"] == "received" and answer["id"] == transaction_id and answer["tid"]
    return transaction_id


async def status(antifraud: httpx.AsyncClient, transaction_id: str, **headers: str) -> str:
    """A status read as the suite makes it: only the test-suite header, or nothing at all."""
    response = await antifraud.get(f"/transactions/{transaction_id}", headers=headers)
    assert response.status_code == 200, response.text
    value: str = response.json()["status"]
    return value


@pytest.mark.parametrize("settings_overrides", [WORKERS], indirect=True)
@pytest.mark.parametrize(("case", "final"), [("1", "approved"), ("2", "denied")])
async def test_cases_1_and_2_are_final_at_the_first_read(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    case: str,
    final: str,
) -> None:
    transaction_id = await start(antifraud, headers, receiver, case)
    assert await status(antifraud, transaction_id, **SUITE) == final
    assert await status(antifraud, transaction_id) == final
    await asyncio.sleep(1.0)
    assert receiver.attempts == 0  # no hook in these cases


@pytest.mark.parametrize("settings_overrides", [WORKERS], indirect=True)
@pytest.mark.parametrize(("case", "final"), [("3", "approved"), ("4", "denied")])
async def test_cases_3_and_4_are_undefined_first_then_final(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    case: str,
    final: str,
) -> None:
    transaction_id = await start(antifraud, headers, receiver, case)
    assert await status(antifraud, transaction_id, **SUITE) == "undefined"
    assert await status(antifraud, transaction_id, **SUITE) == final
    assert await status(antifraud, transaction_id) == final  # no headers at all: still read
    await asyncio.sleep(1.0)
    assert receiver.attempts == 0


@pytest.mark.parametrize("settings_overrides", [WORKERS], indirect=True)
@pytest.mark.parametrize(("case", "final"), [("5", "approved"), ("6", "denied")])
async def test_cases_5_and_6_post_the_decision_to_the_hook(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    case: str,
    final: str,
) -> None:
    transaction_id = await start(antifraud, headers, receiver, case)
    assert await status(antifraud, transaction_id, **SUITE) == "undefined"
    assert await status(antifraud, transaction_id, **SUITE) == "undefined"  # until the hook

    (hook,) = await receiver.wait_for(1, timeout=10)  # VTEX waits 10 s for it
    assert hook.url == hook_url(receiver, transaction_id)
    assert hook.body["id"] == transaction_id and hook.body["status"] == final
    assert hook.body["score"] == hook.body["fraudRiskPercentage"]
    assert hook.body["analysisType"] == "automatic" and hook.body["tid"]
    # The provider's own VTEX credentials, as DP-AF asks of calls to the hook.
    assert hook.headers["x-vtex-api-appkey"] == "vtexappkey-provider-ABCDEF"
    assert hook.headers["x-vtex-api-apptoken"] == "provider-token"
    assert await status(antifraud, transaction_id, **SUITE) == final

    await asyncio.sleep(1.0)
    assert len(receiver.received) == 1  # announced once


@pytest.mark.parametrize("settings_overrides", [WORKERS], indirect=True)
async def test_a_failing_hook_is_retried_until_delivered(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    settings_overrides: dict[str, object],
) -> None:
    receiver.fail_next = 2
    transaction_id = await start(antifraud, headers, receiver, "5")
    (hook,) = await receiver.wait_for(1, timeout=20)
    assert receiver.attempts == 3 and hook.body["status"] == "approved"
    assert await status(antifraud, transaction_id) == "approved"


@pytest.mark.parametrize("settings_overrides", [WORKERS], indirect=True)
async def test_a_stopped_hook_case_is_never_announced(
    antifraud: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    transaction_id = await start(antifraud, headers, receiver, "6")
    stopped = await antifraud.delete(f"/transactions/{transaction_id}", headers=headers)
    assert stopped.json()["stopped"] is True
    await asyncio.sleep(1.5)
    assert receiver.attempts == 0
    assert await status(antifraud, transaction_id) == "undefined"


@pytest.mark.parametrize("settings_overrides", [{"test_suite_enabled": False}], indirect=True)
async def test_with_test_suite_mode_off_the_suite_gets_the_real_engine(
    antifraud: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    transaction_id = suite_id("2")
    response = await antifraud.post(
        "/transactions", json=order(transaction_id), headers={**headers, **SUITE}
    )
    assert response.json()["status"] == "approved"  # the rules, not the scripted denial
    read = await antifraud.get(f"/transactions/{transaction_id}", headers=SUITE)
    assert read.status_code == 401
