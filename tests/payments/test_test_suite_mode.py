"""Test-suite traffic: empty credentials map to a configured merchant; a setting turns it off."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connector.app import Services
from connector.db.tables import Payment
from tests import payloads

EMPTY = {"X-VTEX-API-AppKey": "", "X-VTEX-API-AppToken": ""}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", {"test_suite_merchant": "suite"}))


async def test_empty_credentials_use_the_test_suite_merchant(
    client: httpx.AsyncClient, services: Services
):
    await services.merchants.add("suite")
    body = payloads.create_payment()
    response = await client.post("/payments", json=body, headers={**EMPTY, **payloads.TEST_SUITE})
    assert response.status_code == 200 and response.json()["status"] == "approved"
    async with services.database.reader() as session:
        payment = await session.scalar(select(Payment))
    assert payment is not None and payment.is_test_suite


async def test_empty_credentials_without_the_header_are_refused(
    client: httpx.AsyncClient, services: Services
):
    await services.merchants.add("suite")
    response = await client.post("/payments", json=payloads.create_payment(), headers=EMPTY)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "settings_overrides",
    [{"test_suite_merchant": "suite", "test_suite_enabled": False}, {}],
    indirect=True,
)
async def test_turning_test_suite_handling_off(client: httpx.AsyncClient, services: Services):
    await services.merchants.add("suite")
    response = await client.post(
        "/payments", json=payloads.create_payment(), headers={**EMPTY, **payloads.TEST_SUITE}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"test_suite_enabled": False}], indirect=True)
async def test_header_is_ignored_when_handling_is_off(
    client: httpx.AsyncClient, services: Services
):
    issued = await services.merchants.add("real")
    headers = {
        "X-VTEX-API-AppKey": issued.app_key,
        "X-VTEX-API-AppToken": issued.app_token,
        **payloads.TEST_SUITE,
    }
    await client.post("/payments", json=payloads.create_payment(), headers=headers)
    async with services.database.reader() as session:
        payment = await session.scalar(select(Payment))
    assert payment is not None and not payment.is_test_suite
