"""Callback delivery latency: N pending payments resolved at once, time to each callback.

What it does, per database (SQLite file, fresh PostgreSQL database):

1. starts `connector serve` (dispatcher and reconciler inside it) and a callback receiver on
   loopback, both from this script;
2. creates N payments that stay pending (VTEX's async test card, with the sandbox's decision
   pushed an hour away), each with its own callbackUrl on the receiver;
3. resolves all N at the same moment through the signed outcome webhook, the way a provider's
   core would, and notes when each webhook answered (the state change and its outbox row are
   committed by then);
4. waits for the N callbacks and reports, from state change to receipt: p50, p95, p99, max,
   plus how many arrived and how many arrived twice.

The service runs with its default delivery settings (`CONNECTOR_CALLBACK_DELAY_SECONDS=1.0`, a
deliberate floor so a callback never races VTEX's own request; `OUTBOX_POLL_SECONDS=0.5`), so
about a second of every figure is that floor. `--callback-delay` changes it.

    python tests/load/bench_callbacks.py [--database sqlite|postgresql] [--payments 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench_authorize as base

from connector.webhooks import sign
from tests import payloads
from tests.receiver import running_receiver

SECRET = "bench-webhook-secret"


async def create_pending(
    http: httpx.AsyncClient, headers: dict[str, str], receiver_url: str, count: int
) -> list[str]:
    semaphore = asyncio.Semaphore(16)

    async def one(index: int) -> str:
        body = payloads.create_payment(card_number=payloads.ASYNC_APPROVED_CARD)
        body["callbackUrl"] = f"{receiver_url}/cb/{index}?X-VTEX-signature=sig{index}"
        async with semaphore:
            response = await http.post("/payment-provider/payments", json=body, headers=headers)
        answer = response.json()
        if answer.get("status") != "undefined":
            raise base.BenchmarkError(f"expected undefined, got {response.text}")
        return str(body["paymentId"])

    return await asyncio.gather(*(one(i) for i in range(count)))


async def idempotency_keys(url: str) -> dict[str, str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT payment_id, id FROM payments"))
            # Uuid columns come back as UUID on PostgreSQL and as 32 hex chars on SQLite.
            return {str(pid): "pay-" + str(pk).replace("-", "") for pid, pk in rows}
    finally:
        await engine.dispose()


async def resolve_all(http: httpx.AsyncClient, keys: dict[str, str]) -> dict[str, float]:
    changed: dict[str, float] = {}

    async def one(payment_id: str, key: str) -> None:
        body = json.dumps({"idempotencyKey": key, "status": "approved"}).encode()
        stamp = str(int(time.time()))
        response = await http.post(
            "/provider/webhooks/outcome",
            content=body,
            headers={
                "X-Connector-Timestamp": stamp,
                "X-Connector-Signature": sign(SECRET, stamp, body),
            },
        )
        if response.status_code != 200:
            raise base.BenchmarkError(f"webhook answered {response.status_code}: {response.text}")
        changed[payment_id] = time.monotonic()

    await asyncio.gather(*(one(pid, key) for pid, key in keys.items()))
    return changed


async def measure(url: str, base_url: str, headers: dict[str, str], count: int) -> dict[str, float]:
    async with (
        running_receiver() as receiver,
        httpx.AsyncClient(
            base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=64)
        ) as http,
    ):
        payment_ids = await create_pending(http, headers, receiver.base_url, count)
        keys = await idempotency_keys(url)
        assert set(payment_ids) <= set(keys)
        changed = await resolve_all(http, {pid: keys[pid] for pid in payment_ids})
        with contextlib.suppress(TimeoutError):
            await receiver.wait_for(count, timeout=120)
        await asyncio.sleep(2)  # let any duplicate show itself
        arrivals = Counter(r.body["paymentId"] for r in receiver.received)
        latencies = sorted(
            (r.at - changed[r.body["paymentId"]]) * 1000
            for r in receiver.received
            if arrivals[r.body["paymentId"]] == 1 or r is receiver.received[0]
        )
        return {
            "delivered": float(len(arrivals)),
            "duplicates": float(sum(n - 1 for n in arrivals.values())),
            "p50": base.percentile(latencies, 0.50),
            "p95": base.percentile(latencies, 0.95),
            "p99": base.percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else float("nan"),
        }


def run(database: str, args: argparse.Namespace) -> dict[str, float] | str:
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        try:
            with base.database_url(database, workdir) as url:
                env = base.server_environment(url)
                env.update(
                    {
                        "CONNECTOR_CALLBACK_ALLOW_LOOPBACK": "true",
                        "CONNECTOR_WEBHOOK_SECRET": SECRET,
                        "CONNECTOR_SANDBOX_ASYNC_DECISION_SECONDS": "3600",
                        "CONNECTOR_CALLBACK_DELAY_SECONDS": str(args.callback_delay),
                    }
                )
                base.run_connector(env, workdir, "migrate")
                credentials = json.loads(
                    base.run_connector(env, workdir, "merchants", "add", "bench")
                )
                port = base.free_port()
                log_path = workdir / "serve.log"
                server = base.start_server(env, workdir, port, 1, log_path)
                try:
                    base_url = f"http://{base.HOST}:{port}"
                    base.wait_until_live(server, base_url, log_path)
                    headers = {
                        "X-VTEX-API-AppKey": credentials["appKey"],
                        "X-VTEX-API-AppToken": credentials["appToken"],
                    }
                    return asyncio.run(measure(url, base_url, headers, args.payments))
                finally:
                    base.stop_server(server)
        except base.Skipped as skipped:
            return str(skipped)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--callback-delay", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(
        f"{'database':<12}{'payments':>9}{'delivered':>10}{'twice':>7}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    failed = False
    for database in args.database or ["sqlite", "postgresql"]:
        result = run(database, args)
        if isinstance(result, str):
            print(f"{database:<12} skipped: {result}")
            continue
        failed |= result["delivered"] < args.payments or result["duplicates"] > 0
        print(
            f"{database:<12}{args.payments:>9}{int(result['delivered']):>10}"
            f"{int(result['duplicates']):>7}{result['p50']:>9.0f}{result['p95']:>9.0f}"
            f"{result['p99']:>9.0f}{result['max']:>9.0f}"
        )
    print(base.machine_description())
    print(base.command_line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
