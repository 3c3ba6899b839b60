"""`make demo`: the connector against a fake provider core and a fake VTEX Secure Proxy.

Starts four servers on loopback (the fake core, the fake proxy, a stand-in for VTEX's callback
endpoint, and the connector itself on SQLite, configured with `CONNECTOR_ACQUIRER=http`), then
plays VTEX's part in the scenarios that matter most, checking each outcome:

1. a tokenized card authorized through the Secure Proxy, then settled and refunded;
2. a core slower than the time budget: `undefined`, then reconciled and called back, once;
3. a capture that fails with 503, and VTEX's retry capturing exactly once;
4. a core URL the proxy does not allow: a clear denial.

With `--once` it exits after the scenarios (non-zero if one failed); otherwise the servers stay
up for exploring with curl until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.app import Services, create_app
from connector.db.migrate import upgrade
from connector.security import generate_encryption_key
from connector.settings import Settings
from homologation.fakes.acquirer import FakeAcquirer, Fault
from homologation.fakes.acquirer import create_app as acquirer_app
from homologation.fakes.secure_proxy import FakeSecureProxy
from homologation.fakes.secure_proxy import create_app as proxy_app
from homologation.fakes.server import serve

APPROVED_CARD = "4444333322221111"
BUDGET_SECONDS = 2.0
STALE_SECONDS = 3.0
CORE_API_KEY = secrets.token_urlsafe(24)  # a fresh one per run: the fake core's only client


class ScenarioFailed(AssertionError):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise ScenarioFailed(what)
    print(f"    ok  {what}")


@dataclass
class Callbacks:
    """VTEX's side of the callbacks: what the connector POSTed to `callbackUrl`."""

    received: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def callback(request: Request) -> Response:
            self.received.append(await request.json())
            self.arrived.set()
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/callback", callback, methods=["POST"])])

    async def wait_for(self, payment_id: str, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for body in self.received:
                if body.get("paymentId") == payment_id:
                    return body
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        raise ScenarioFailed(f"no callback for {payment_id} within {seconds} s")


@asynccontextmanager
async def serve_connector(settings: Settings, port: int) -> AsyncIterator[tuple[str, Services]]:
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it (a port in use)
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}", app.state.services
    finally:
        server.should_exit = True
        await task


@dataclass
class Demo:
    """VTEX's part: tokenize at checkout, call the connector, receive callbacks."""

    connector: httpx.AsyncClient
    proxy_url: str
    core: FakeAcquirer
    proxy: FakeSecureProxy
    callbacks: Callbacks
    callback_url: str

    async def tokenize(self, number: str) -> dict[str, Any]:
        response = await self.connector.post(
            self.proxy_url.removesuffix("/proxy") + "/tokens",
            json={"number": number, "holder": "Ana Demo", "csc": "123"},
        )
        response.raise_for_status()
        tokens: dict[str, Any] = response.json()
        return tokens

    def payment(self, tokens: dict[str, Any], value: float = 31.9) -> dict[str, Any]:
        return {
            "paymentId": uuid.uuid4().hex.upper(),
            "transactionId": uuid.uuid4().hex.upper(),
            "orderId": "v1234567-01",
            "reference": "1234567",
            "paymentMethod": "Visa",
            "merchantName": "demostore",
            "value": value,
            "currency": "BRL",
            "installments": 1,
            "card": {
                "holderToken": tokens["holderToken"],
                "numberToken": tokens["numberToken"],
                "cscToken": tokens["cscToken"],
                "bin": tokens["bin"],
                "numberLength": tokens["numberLength"],
                "cscLength": tokens["cscLength"],
                "expiration": {"month": "12", "year": "2030"},
            },
            "secureProxyUrl": self.proxy_url,
            "callbackUrl": f"{self.callback_url}?X-VTEX-signature=demo",
            "returnUrl": "https://demostore.example/checkout/order",
        }

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.connector.post(f"/payment-provider{path}", json=body)

    async def authorize(self, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.post("/payments", body)).json()
        print(f"    POST /payments -> {answer['status']} {answer.get('code') or ''}".rstrip())
        return answer

    async def settle(self, payment_id: str, value: float, request_id: str) -> httpx.Response:
        return await self.post(
            f"/payments/{payment_id}/settlements",
            {"paymentId": payment_id, "requestId": request_id, "value": value},
        )

    # ------------------------------------------------------------------ scenarios

    async def through_the_proxy(self) -> None:
        print("1. A tokenized card, authorized through the Secure Proxy, settled and refunded")
        tokens = await self.tokenize(APPROVED_CARD)
        print(f"    checkout vaulted the card: numberToken {tokens['numberToken']}")
        body = self.payment(tokens)
        answer = await self.authorize(body)
        check(answer["status"] == "approved", "approved by the core")
        sent = self.proxy.received[-1]
        check(tokens["numberToken"] in sent.body, "the connector sent tokens, not card data")
        forwarded = self.proxy.forwarded[-1]
        check("#vtex#" not in forwarded.body, "the proxy swapped the tokens before the core")
        payment_id = body["paymentId"]
        settled = (await self.settle(payment_id, 31.9, "settle-1")).json()
        check(bool(settled["settleId"]), f"settled: settleId {settled['settleId']}")
        refunded = (
            await self.post(
                f"/payments/{payment_id}/refunds",
                {"paymentId": payment_id, "requestId": "refund-1", "value": 10},
            )
        ).json()
        check(bool(refunded["refundId"]), f"refunded 10.00: refundId {refunded['refundId']}")

    async def slower_than_the_budget(self) -> None:
        print(f"2. A core slower than the {BUDGET_SECONDS:.0f} s budget (it answers after 10 s)")
        self.core.inject(Fault("authorize", latency_after=10))
        before = self.core.effect_count("authorize")
        body = self.payment(await self.tokenize(APPROVED_CARD))
        started = time.monotonic()
        answer = await self.authorize(body)
        elapsed = time.monotonic() - started
        check(answer["status"] == "undefined", f"undefined after {elapsed:.1f} s, not 10 s")
        callback = await self.callbacks.wait_for(body["paymentId"], seconds=15)
        check(callback["status"] == "approved", "reconciled by asking the core; VTEX called back")
        again = await self.authorize(body)
        check(again["status"] == "approved", "VTEX's retry reads the same outcome")
        check(self.core.effect_count("authorize") - before == 1, "one authorization at the core")

    async def capture_fails_then_retried(self) -> None:
        print("3. A capture that fails with 503, and VTEX's retry")
        body = self.payment(await self.tokenize(APPROVED_CARD))
        await self.authorize(body)
        payment_id = body["paymentId"]
        before = self.core.effect_count("capture")
        self.core.inject(Fault("capture", status_before=503))
        failed = await self.settle(payment_id, 31.9, "settle-retry")
        check(failed.status_code == 500, "the connector answers 500: VTEX retries later")
        await asyncio.sleep(STALE_SECONDS + 0.2)
        retried = (await self.settle(payment_id, 31.9, "settle-retry")).json()
        check(bool(retried["settleId"]), f"the retry settled: settleId {retried['settleId']}")
        check(self.core.effect_count("capture") - before == 1, "one capture at the core")

    async def proxy_refuses(self) -> None:
        print("4. The core's URL is not on the Secure Proxy's allow-list")
        allowed = list(self.proxy.allowed_prefixes)
        self.proxy.allowed_prefixes.clear()
        try:
            answer = await self.authorize(self.payment(await self.tokenize(APPROVED_CARD)))
        finally:
            self.proxy.allowed_prefixes.extend(allowed)
        check(answer["status"] == "denied", f"denied, code {answer['code']}: {answer['message']}")


def demo_settings(database_url: str, core_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        encryption_keys=[SecretStr(generate_encryption_key())],
        acquirer="http",
        acquirer_url=core_url,
        acquirer_api_key=SecretStr(CORE_API_KEY),
        acquirer_timeout_seconds=BUDGET_SECONDS,
        test_suite_acquirer_timeout_seconds=BUDGET_SECONDS,
        attempt_stale_seconds=STALE_SECONDS,
        secure_proxy_allow_loopback=True,
        callback_allow_loopback=True,
        callback_delay_seconds=0.5,
        reconcile_interval_seconds=0.5,
        payment_methods=["Visa", "Mastercard"],
        log_level="WARNING",  # the scenarios print what matters
    )


async def run(port: int, once: bool, workdir: Path) -> int:
    core = FakeAcquirer(api_key=CORE_API_KEY, public_url="http://127.0.0.1")
    callbacks = Callbacks()
    async with AsyncExitStack() as stack:
        core_url = await stack.enter_async_context(serve(acquirer_app(core)))
        stack.callback(core.release)
        proxy = FakeSecureProxy(allowed_prefixes=[f"{core_url}/"])
        proxy_base = await stack.enter_async_context(serve(proxy_app(proxy)))
        stack.push_async_callback(proxy.aclose)
        stack.callback(proxy.release)
        callback_base = await stack.enter_async_context(serve(callbacks.app()))
        database_url = f"sqlite+aiosqlite:///{workdir / 'demo.db'}"
        await asyncio.to_thread(upgrade, database_url)
        settings = demo_settings(database_url, core_url)
        connector_url, services = await stack.enter_async_context(serve_connector(settings, port))
        issued = await services.merchants.add("demo")
        headers = {"X-VTEX-API-AppKey": issued.app_key, "X-VTEX-API-AppToken": issued.app_token}
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=connector_url, headers=headers, timeout=30)
        )
        print(f"connector   {connector_url}  (acquirer=http, budget {BUDGET_SECONDS} s)")
        print(f"fake core   {core_url}  (Api-Key {CORE_API_KEY})")
        print(f"fake proxy  {proxy_base}/proxy  (tokens: POST {proxy_base}/tokens)")
        print(f"merchant    {json.dumps(issued.as_json())}\n")
        demo = Demo(
            client, f"{proxy_base}/proxy", core, proxy, callbacks, f"{callback_base}/callback"
        )
        scenarios = (
            demo.through_the_proxy,
            demo.slower_than_the_budget,
            demo.capture_fails_then_retried,
            demo.proxy_refuses,
        )
        failed = 0
        for scenario in scenarios:
            try:
                await scenario()
            except ScenarioFailed as error:
                failed += 1
                print(f"    FAILED  {error}")
            core.reset_faults()
        print(f"\n{len(scenarios) - failed} of {len(scenarios)} scenarios passed.")
        if not once:
            print("The servers stay up for curl (see README, 'make demo'); Ctrl-C stops them.")
            await asyncio.Event().wait()
        return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m homologation.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="the connector's port (0: any)")
    parser.add_argument("--once", action="store_true", help="exit after the scenarios")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="connector-demo-") as workdir:
        try:
            return asyncio.run(run(options.port, options.once, Path(workdir)))
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
