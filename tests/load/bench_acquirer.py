"""Benchmark of the `http` acquirer: a real `connector serve` in front of the fake provider core.

What it measures
    The connector runs as a subprocess (`CONNECTOR_ACQUIRER=http`, SQLite or PostgreSQL, built
    like tests/load/bench_authorize.py); the fake core, the fake Secure Proxy and a callback
    receiver run on loopback inside this script.

    throughput  closed-loop authorizations (N requests, C in flight), each a new payment: a plain
                card straight to the core (`direct`) and a tokenized card through the Secure
                Proxy (`proxy`, one more HTTP hop and the token swap).
    slow-core   the core approves at once but answers every authorization 30 s late. A burst
                of B authorizations arrives together; each must be answered `undefined` within
                the budget (CONNECTOR_ACQUIRER_TIMEOUT_SECONDS, 2 s here), then be reconciled by
                the background reconciler and called back `approved`, once, with exactly one
                authorization per payment at the core.

How to read the tables
    answer p50..max   latency of POST /payments seen by the client, in milliseconds
    over budget       answers slower than the budget plus 0.5 s (the goal is 0)
    callback p50..max from sending the authorization to VTEX receiving the approved callback
    at the core       authorizations the core recorded (the goal is exactly one per payment)

Usage
    python tests/load/bench_acquirer.py [--database sqlite|postgresql] [--scenario both]
        [--requests 1000] [--concurrency 16] [--burst 200] [--budget 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from homologation.fakes.acquirer import FakeAcquirer, Fault  # noqa: E402
from homologation.fakes.acquirer import create_app as acquirer_app  # noqa: E402
from homologation.fakes.secure_proxy import FakeSecureProxy  # noqa: E402
from homologation.fakes.secure_proxy import create_app as proxy_app  # noqa: E402
from homologation.fakes.server import serve  # noqa: E402
from tests import payloads  # noqa: E402
from tests.load import bench_authorize as base  # noqa: E402

CORE_KEY = "bench-core-key"
CORE_LATENCY_SECONDS = 30.0
OVERHEAD_SECONDS = 0.5


@dataclass
class Callbacks:
    arrived_at: dict[str, list[float]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.json()
            self.arrived_at.setdefault(body["paymentId"], []).append(time.monotonic())
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/callback", receive, methods=["POST"])])


@contextlib.asynccontextmanager
async def fresh_database(database: str, workdir: Path) -> AsyncIterator[str]:
    """bench_authorize's database_url, whose set-up runs its own event loop: in a thread."""
    manager = base.database_url(database, workdir)
    url = await asyncio.to_thread(manager.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def connector(
    database: str, workdir: Path, settings: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    """`connector serve` on a fresh database, and a client holding a merchant's credentials."""
    async with fresh_database(database, workdir) as url:
        env = base.server_environment(url)
        env.update({f"CONNECTOR_{name}": value for name, value in settings.items()})
        await asyncio.to_thread(base.run_connector, env, workdir, "migrate")
        issued = json.loads(
            await asyncio.to_thread(base.run_connector, env, workdir, "merchants", "add", "bench")
        )
        port = base.free_port()
        base_url = f"http://{base.HOST}:{port}"
        log_path = workdir / "server.log"
        process = base.start_server(env, workdir, port, 1, log_path)
        try:
            await asyncio.to_thread(base.wait_until_live, process, base_url, log_path)
            headers = {
                "X-VTEX-API-AppKey": issued["appKey"],
                "X-VTEX-API-AppToken": issued["appToken"],
            }
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
            async with httpx.AsyncClient(
                base_url=base_url, headers=headers, limits=limits, timeout=60
            ) as client:
                yield client
        finally:
            await asyncio.to_thread(base.stop_server, process)


def settings_for(core_url: str, budget: float) -> dict[str, str]:
    return {
        "ACQUIRER": "http",
        "ACQUIRER_URL": core_url,
        "ACQUIRER_API_KEY": CORE_KEY,
        "ACQUIRER_TIMEOUT_SECONDS": str(budget),
        "TEST_SUITE_ACQUIRER_TIMEOUT_SECONDS": str(min(budget, 4.0)),
        "ATTEMPT_STALE_SECONDS": str(budget + 15),
        "SECURE_PROXY_ALLOW_LOOPBACK": "true",
        "CALLBACK_ALLOW_LOOPBACK": "true",
        "CALLBACK_ALLOWED_HOSTS": "*.example.com",
        "RECONCILE_INTERVAL_SECONDS": "0.5",
        "CALLBACK_DELAY_SECONDS": "1.0",
        "OUTBOX_POLL_SECONDS": "0.2",
    }


def milliseconds(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    return {
        name: round(base.percentile(ordered, fraction) * 1000, 1)
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    }


ERROR_SAMPLES: list[str] = []


async def authorize(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, str]:
    started = time.monotonic()
    try:
        response = await client.post(base.AUTHORIZE_PATH, json=body)
        status = str(response.json().get("status")) if response.status_code == 200 else "error"
        if status not in ("approved", "undefined") and len(ERROR_SAMPLES) < 5:
            ERROR_SAMPLES.append(f"HTTP {response.status_code}: {response.text[:300]}")
    except (httpx.HTTPError, ValueError) as error:
        status = "error"
        if len(ERROR_SAMPLES) < 5:
            ERROR_SAMPLES.append(repr(error))
    return time.monotonic() - started, status


# ----------------------------------------------------------------------------- throughput


async def closed_loop(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)

    async def one_loop() -> None:
        nonlocal errors
        for body in queue:
            elapsed, status = await authorize(client, body)
            latencies.append(elapsed)
            errors += status != "approved"

    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(one_loop())
    duration = time.monotonic() - started
    return {
        "requests": len(bodies),
        "errors": errors,
        "req/s": round(len(bodies) / duration, 1),
        **milliseconds(latencies),
    }


async def throughput(
    database: str, args: argparse.Namespace, workdir: Path
) -> list[dict[str, Any]]:
    core = FakeAcquirer(api_key=CORE_KEY, public_url="http://127.0.0.1")
    async with serve(acquirer_app(core)) as core_url:
        proxy = FakeSecureProxy(allowed_prefixes=[f"{core_url}/"])
        async with serve(proxy_app(proxy)) as proxy_url:
            # The production budget: this scenario measures cost, not timeouts.
            settings = settings_for(core_url, 15.0)
            async with connector(database, workdir, settings) as client:
                tokens = (
                    await client.post(
                        f"{proxy_url}/tokens",
                        json={"number": payloads.APPROVED_CARD, "holder": "Bench", "csc": "123"},
                    )
                ).json()
                rows = []
                for mode in ("direct", "proxy"):
                    proxied = mode == "proxy"

                    def body(proxied: bool = proxied) -> dict[str, Any]:
                        if not proxied:
                            return payloads.create_payment()
                        return payloads.tokenized_payment(tokens, f"{proxy_url}/proxy")

                    await closed_loop(client, [body() for _ in range(50)], args.concurrency)
                    result = await closed_loop(
                        client, [body() for _ in range(args.requests)], args.concurrency
                    )
                    rows.append({"database": database, "mode": mode, **result})
            await proxy.aclose()
    return rows


# ----------------------------------------------------------------------------- slow core


async def slow_core(database: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    core = FakeAcquirer(api_key=CORE_KEY, public_url="http://127.0.0.1")
    core.inject(Fault("authorize", latency_after=CORE_LATENCY_SECONDS, times=None))
    callbacks = Callbacks()
    async with serve(acquirer_app(core)) as core_url, serve(callbacks.app()) as callback_base:
        try:
            settings = settings_for(core_url, args.budget)
            async with connector(database, workdir, settings) as client:
                bodies = [
                    payloads.create_payment(
                        callbackUrl=f"{callback_base}/callback?X-VTEX-signature=bench"
                    )
                    for _ in range(args.burst)
                ]
                started = time.monotonic()
                answers = await asyncio.gather(*(authorize(client, body) for body in bodies))
                ids = [body["paymentId"] for body in bodies]
                deadline = started + 60
                while time.monotonic() < deadline and len(callbacks.arrived_at) < len(ids):
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2)  # a duplicate would arrive now
        finally:
            core.release()
    latencies = [elapsed for elapsed, _ in answers]
    delays = [callbacks.arrived_at[i][0] - started for i in ids if i in callbacks.arrived_at]
    return {
        "database": database,
        "burst": args.burst,
        "budget s": args.budget,
        "answers undefined": sum(status == "undefined" for _, status in answers),
        "over budget": sum(elapsed > args.budget + OVERHEAD_SECONDS for elapsed in latencies),
        "answer ms": milliseconds(latencies),
        "called back": len(delays),
        "called back twice": sum(len(times) > 1 for times in callbacks.arrived_at.values()),
        "callback ms": milliseconds(delays),
        "at the core": core.effect_count("authorize"),
    }


# ----------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=base.DATABASES, default="sqlite")
    parser.add_argument("--scenario", choices=("throughput", "slow-core", "both"), default="both")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--budget", type=float, default=2.0)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    if args.scenario in ("throughput", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-acquirer-") as tmp:
            results.extend(await throughput(args.database, args, Path(tmp)))
    if args.scenario in ("slow-core", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-acquirer-") as tmp:
            results.append(await slow_core(args.database, args, Path(tmp)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    print(f"# {base.machine_description()}  run {uuid.uuid4().hex[:6]}")
    for result in asyncio.run(run(args)):
        print(json.dumps(result))
    for sample in ERROR_SAMPLES:
        print(f"error sample: {sample}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
