"""The fake Secure Proxy over real HTTP, in front of the fake acquirer: VTEX's documented rules,
the token swap, and what reaches the core."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from homologation.fakes.acquirer import FakeAcquirer, Fault
from homologation.fakes.acquirer import create_app as acquirer_app
from homologation.fakes.secure_proxy import FakeSecureProxy
from homologation.fakes.secure_proxy import create_app as proxy_app
from homologation.fakes.server import serve
from tests.fakes import Swappable, eventually

API_KEY = "fake-core-key"
APPROVED = "4444333322221111"
# What only the connector sends to the proxy, never meant for the core.
CONNECTOR_ONLY = {"X-VTEX-API-AppKey": "app-key", "Authorization": "Bearer connector"}


@dataclass
class Setup:
    core: FakeAcquirer
    core_url: str
    proxy: FakeSecureProxy
    http: httpx.AsyncClient  # the connector's client, pointed at the proxy

    async def tokenize(self, number: str = APPROVED, holder: str = "Ana Test") -> dict[str, Any]:
        response = await self.http.post(
            "/tokens", json={"number": number, "holder": holder, "csc": "987"}
        )
        assert response.status_code == 200
        tokens: dict[str, Any] = response.json()
        return tokens

    def forward_headers(self, path: str = "/authorizations") -> dict[str, str]:
        return {
            "X-PROVIDER-Forward-To": f"{self.core_url}{path}",
            "X-PROVIDER-Forward-Api-Key": API_KEY,
        }

    async def authorize(self, tokens: dict[str, Any], reference: str = "a-1") -> httpx.Response:
        body = {
            "reference": reference,
            "amount": 10000,
            "currency": "BRL",
            "card": {
                "number": tokens["numberToken"],
                "holder": tokens["holderToken"],
                "csc": tokens["cscToken"],
            },
        }
        return await self.http.post("/proxy", json=body, headers=self.forward_headers())


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module-wide, so that two servers serve every test of the module


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[tuple[Swappable, str, Swappable, str]]:
    core_app, proxy_app_ = Swappable(), Swappable()
    async with serve(core_app) as core_url, serve(proxy_app_) as proxy_url:
        yield core_app, core_url, proxy_app_, proxy_url


@pytest.fixture
async def setup(servers: tuple[Swappable, str, Swappable, str]) -> AsyncIterator[Setup]:
    core_app, core_url, proxy_app_, proxy_url = servers
    core = FakeAcquirer(api_key=API_KEY, public_url=core_url)
    proxy = FakeSecureProxy(allowed_prefixes=[f"{core_url}/"])
    core_app.app, proxy_app_.app = acquirer_app(core), proxy_app(proxy)
    async with httpx.AsyncClient(base_url=proxy_url) as http:
        try:
            yield Setup(core, core_url, proxy, http)
        finally:
            core.release()
            proxy.release()
            await proxy.aclose()


def card_id(token: str, part: str) -> str:
    match = re.fullmatch(rf"#vtex#token#([0-9a-f]{{8}})#{part}#", token)
    assert match is not None, f"not a {part} token"
    return match[1]


async def test_the_vault_hands_out_tokens_that_stand_for_one_card(setup: Setup) -> None:
    first = await setup.tokenize("4444333322221111")
    second = await setup.tokenize("4111111111111111")
    ids = {card_id(first[f"{part}Token"], part) for part in ("number", "holder", "csc")}
    assert len(ids) == 1 and ids != {card_id(second["numberToken"], "number")}
    assert (first["bin"], first["numberLength"], first["cscLength"]) == ("444433", 16, 3)
    assert setup.proxy.vault[first["numberToken"]] == "4444333322221111"
    assert setup.proxy.vault[second["cscToken"]] == "987"


async def test_a_tokenized_authorization_reaches_the_core_with_card_data(setup: Setup) -> None:
    tokens = await setup.tokenize()
    response = await setup.authorize(tokens)
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert setup.core.effect_count("authorize") == 1
    [sent] = setup.proxy.received
    assert tokens["numberToken"] in sent.body and APPROVED not in sent.body
    [arrived] = setup.core.requests
    assert json.loads(arrived.body)["card"]["number"] == APPROVED
    assert all("#vtex#" not in request.body for request in setup.core.requests)


async def test_tokens_are_swapped_inside_json_strings(setup: Setup) -> None:
    holder = 'Ana "Nana" O\'Test'
    tokens = await setup.tokenize(holder=holder)
    body = {"card": {"holder": f"Name: {tokens['holderToken']}"}, "list": [tokens["cscToken"], 1]}
    headers = setup.forward_headers()
    await setup.http.post("/proxy", json=body, headers=headers)
    [forwarded] = setup.proxy.forwarded
    assert json.loads(forwarded.body) == {"card": {"holder": f"Name: {holder}"}, "list": ["987", 1]}
    assert json.loads(setup.core.requests[0].body) == json.loads(forwarded.body)


async def test_tokens_are_swapped_inside_form_values(setup: Setup) -> None:
    tokens = await setup.tokenize(holder="Ana & Co")
    form = {"number": tokens["numberToken"], "holder": tokens["holderToken"], "amount": "1"}
    response = await setup.http.post("/proxy", data=form, headers=setup.forward_headers())
    assert response.status_code == 400  # the core speaks JSON: its own refusal, passed back
    [arrived] = setup.core.requests
    assert parse_qs(arrived.body) == {"number": [APPROVED], "holder": ["Ana & Co"], "amount": ["1"]}
    assert arrived.headers["content-type"] == "application/x-www-form-urlencoded"


async def test_only_forward_headers_and_content_headers_reach_the_core(setup: Setup) -> None:
    headers = {
        **setup.forward_headers(),
        "X-PROVIDER-Forward-X-Request-Id": "req-1",
        "Accept": "application/json",
        "User-Agent": "connector/1",
        **CONNECTOR_ONLY,
    }
    tokens = await setup.tokenize()
    await setup.http.post("/proxy", json={"card": tokens["numberToken"]}, headers=headers)
    [arrived] = setup.core.requests
    assert arrived.headers["api-key"] == API_KEY
    assert arrived.headers["x-request-id"] == "req-1"
    assert arrived.headers["user-agent"] == "connector/1"
    assert arrived.headers["accept"] == "application/json"
    assert set(arrived.headers) == {
        "api-key",
        "x-request-id",
        "accept",
        "user-agent",
        "content-type",
        "content-length",
        "host",
    }


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"X-PROVIDER-Forward-To": None}, 400),
        ({"X-PROVIDER-Forward-To": "https://attacker.example/authorizations"}, 403),
        ({"Content-Type": "text/plain"}, 400),
    ],
)
async def test_vtexs_rules_refuse_without_forwarding(
    setup: Setup, change: dict[str, str | None], status: int
) -> None:
    tokens = await setup.tokenize()
    headers = {**setup.forward_headers(), "Content-Type": "application/json", **change}
    response = await setup.http.post(
        "/proxy",
        content=json.dumps({"number": tokens["numberToken"]}),
        headers={name: value for name, value in headers.items() if value is not None},
    )
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert setup.core.requests == [] and setup.proxy.forwarded == []


@pytest.mark.parametrize(
    "unknown", ["#vtex#token#00000000#number#", "#vtex#something-else#", "#vtex#token#abc#pan#"]
)
async def test_unrecognized_tokens_are_refused(setup: Setup, unknown: str) -> None:
    await setup.tokenize()
    response = await setup.http.post(
        "/proxy", json={"card": {"number": unknown}}, headers=setup.forward_headers()
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unrecognized data in tokenized fields"}
    assert setup.core.requests == []


async def test_the_cores_answer_comes_back_verbatim(setup: Setup) -> None:
    headers = setup.forward_headers("/authorizations/nope/captures")
    response = await setup.http.post(
        "/proxy", json={"reference": "c-1", "amount": 1}, headers=headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "authorization-not-found"


async def test_a_core_slower_than_the_timeout_is_a_500_yet_it_acts(setup: Setup) -> None:
    setup.proxy.timeout_seconds = 0.3
    setup.core.inject(Fault("authorize", latency_before=5))
    started = time.monotonic()
    response = await setup.authorize(await setup.tokenize())
    assert response.status_code == 500 and "in time" in response.json()["error"]
    assert time.monotonic() - started < 1
    setup.core.release()
    await eventually(lambda: setup.core.effect_count("authorize") == 1)


async def test_an_unreachable_core_is_a_500(setup: Setup) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    setup.proxy.allowed_prefixes.append(f"http://127.0.0.1:{port}/")
    response = await setup.http.post(
        "/proxy",
        json={},
        headers={"X-PROVIDER-Forward-To": f"http://127.0.0.1:{port}/authorizations"},
    )
    assert response.status_code == 500 and "unreachable" in response.json()["error"]


async def test_injected_failures_answer_without_forwarding(setup: Setup) -> None:
    setup.proxy.fail_next(503, times=2)
    tokens = await setup.tokenize()
    statuses = [(await setup.authorize(tokens)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(setup.proxy.received) == 3 and len(setup.core.requests) == 1


async def test_release_ends_the_proxys_latency_at_once(setup: Setup) -> None:
    setup.proxy.latency = 30
    started = time.monotonic()
    request = asyncio.create_task(setup.authorize(await setup.tokenize()))
    await asyncio.sleep(0.1)
    setup.proxy.release()
    assert (await request).status_code == 200
    assert time.monotonic() - started < 1
