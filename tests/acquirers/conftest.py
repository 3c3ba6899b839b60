"""The connector in front of a fake provider core (the acquirer API) and a fake VTEX Secure
Proxy, both real HTTP servers on loopback, so that timeouts cut real connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connector.settings import Settings
from homologation.fakes.acquirer import FakeAcquirer
from homologation.fakes.acquirer import create_app as acquirer_app
from homologation.fakes.secure_proxy import FakeSecureProxy
from homologation.fakes.secure_proxy import create_app as proxy_app
from homologation.fakes.server import serve
from tests.conftest import MerchantCredentials, make_settings
from tests.receiver import Receiver, running_receiver

API_KEY = "core-api-key-for-tests"


@dataclass
class Core:
    fake: FakeAcquirer
    url: str

    def posts(self, path_end: str) -> int:
        """How many POSTs whose path ends with `path_end` reached the core."""
        return sum(
            1
            for request in self.fake.requests
            if request.method == "POST" and request.path.endswith(path_end)
        )


@dataclass
class Proxy:
    fake: FakeSecureProxy
    base_url: str

    @property
    def url(self) -> str:
        """The `secureProxyUrl` VTEX would send with the payment."""
        return f"{self.base_url}/proxy"

    async def tokenize(
        self, number: str, holder: str = "John Doe", csc: str = "987"
    ) -> dict[str, Any]:
        """What VTEX's checkout does: vault the card, hand the connector tokens."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.base_url}/tokens", json={"number": number, "holder": holder, "csc": csc}
            )
        response.raise_for_status()
        tokens: dict[str, Any] = response.json()
        return tokens


@pytest.fixture
async def core() -> AsyncIterator[Core]:
    fake = FakeAcquirer(
        api_key=API_KEY, async_decision_seconds=0.3, public_url="https://core.example"
    )
    async with serve(acquirer_app(fake)) as url:
        try:
            yield Core(fake, url)
        finally:
            fake.release()  # wake any injected 30 s sleep so the server stops at once


@pytest.fixture
async def proxy(core: Core) -> AsyncIterator[Proxy]:
    fake = FakeSecureProxy(allowed_prefixes=[f"{core.url}/"])
    async with serve(proxy_app(fake)) as url:
        try:
            yield Proxy(fake, url)
        finally:
            fake.release()
            await fake.aclose()


@pytest.fixture
def settings(database_url: str, settings_overrides: dict[str, Any], core: Core) -> Settings:
    values: dict[str, Any] = {
        "acquirer": "http",
        "acquirer_url": core.url,
        "acquirer_api_key": SecretStr(API_KEY),
        "secure_proxy_allow_loopback": True,
        **settings_overrides,
    }
    return make_settings(database_url, **values)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """VTEX's callback endpoint."""
    async with running_receiver() as running:
        yield running


async def pay(
    client: httpx.AsyncClient, merchant: MerchantCredentials, body: dict[str, Any]
) -> dict[str, Any]:
    """POST /payments as VTEX would; the answer's body (which must be a 200)."""
    response = await client.post("/payments", json=body, headers=merchant.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer
