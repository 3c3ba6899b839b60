"""Benchmark of the `http` acquirer: a real `connector serve` in front of the fake provider core.

What it measures
    For each database (SQLite by default, PostgreSQL with `--database postgresql`) the connector
    runs as a subprocess on a throw-away deployment built by tests/load/bench_authorize.py's
    helpers (fresh database, `connector migrate`, `connector merchants add bench`). It runs with
    `CONNECTOR_ACQUIRER=http` against the fake core of homologation/fakes/acquirer.py. The fake
    core, the fake Secure Proxy and a stand-in for VTEX's callback endpoint are loopback servers
    in this script's own event loop, so they share the machine (and this process) with the load
    generator.

    throughput  closed-loop authorizations like bench_authorize.py: after a warm-up, N
                create-payment requests, each a new payment, from C concurrent tasks sharing one
                keep-alive client. One row per mode, each on a fresh deployment:
                  direct   a plain card, sent by the connector straight to the core
                  proxy    a tokenized card (a handful of cards vaulted once at the proxy's
                           /tokens), sent through the fake Secure Proxy, which swaps the tokens
                           and forwards to the core: one more loopback hop
                  sandbox  CONNECTOR_ACQUIRER=sandbox, the built-in acquirer, for reference
    slow-core   the core approves every authorization at once but answers 30 s late. The
                connector's budget is 2 s (`--budget`), attempts go stale after 5 s, the
                reconciler runs every 0.5 s and callbacks wait 1 s. After a warm-up with the
                core answering promptly, B authorizations are sent at the same moment, each
                from its own client over a connection opened beforehand, each with a
                callbackUrl on the loopback receiver. Each must be answered `undefined` within
                the budget, then be reconciled and called back `approved` once. The core forgets
                references here (`dedupe=False`), so a re-sent authorization would count as a
                second authorization.

How to read the tables
    errors        throughput answers that were not 200 with "status": "approved"
    req/s         N divided by the wall-clock time of the measured phase (warm-up excluded)
    p50..max ms   throughput: latency seen by the client, from the start of the request to the
                  full answer; slow core: from the moment the request was written to its
                  connection to the full answer (the load generator's own queue before that,
                  `send_delay_max_ms` in the JSON, is left out)
    undefined     burst answers that were 200 with "status": "undefined" (the goal: all B)
    over N s      burst answers slower than the budget plus 0.5 s (the goal: 0). The budget
                  starts when the connector's handler takes the request up and ends when the
                  core has not answered; reading the request before it, and recording the
                  pending state and answering after it, are the connector's own work, which a
                  single process does one request at a time when B arrive together
    called back   payments whose `approved` callback arrived, and `duplicates`, callbacks beyond
                  the first for a payment (the goal: B and 0); callback times count from the
                  moment that payment's request was sent, so they include the budget, the
                  callback delay, the reconciler's schedule and the dispatcher's polling
    at the core   authorizations the core performed during the burst (the goal: exactly B)

    The load generator and the fakes run on the same machine as the connector and compete with
    it for CPU; compare runs made on the same machine with the same options. The script exits
    with 1 when a throughput answer was an error or a slow-core goal was missed.

Usage
    python tests/load/bench_acquirer.py [--database sqlite|postgresql ...]
        [--scenario throughput|slow-core|both] [--requests 1500] [--concurrency 16]
        [--warmup 100] [--burst 200] [--budget 2] [--json]

PostgreSQL comes from CONNECTOR_BENCH_POSTGRES_URL as in bench_authorize.py. Everything the
script and the connector send goes to 127.0.0.1, and it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from homologation.fakes.acquirer import FakeAcquirer, Fault
from homologation.fakes.acquirer import create_app as core_app
from homologation.fakes.secure_proxy import FakeSecureProxy
from homologation.fakes.secure_proxy import create_app as proxy_app
from homologation.fakes.server import serve
from tests import payloads
from tests.load import bench_authorize as base

SCENARIOS = ("throughput", "slow-core")
CORE_API_KEY = "bench-core-key"
TOKENIZED_CARDS = 8
SLOW_CORE_SECONDS = 30.0
STALE_SECONDS = 5.0
RECONCILE_INTERVAL_SECONDS = 0.5
CALLBACK_DELAY_SECONDS = 1.0
OVER_BUDGET_MARGIN_SECONDS = 0.5
CALLBACK_DEADLINE_SECONDS = 60.0
DUPLICATE_GRACE_SECONDS = 2.0  # after the last callback, how long a duplicate may take to show
REQUEST_WRITTEN = "http11.send_request_headers.started"  # httpx's trace event
ANSWER_TIMEOUT_SECONDS = 60.0  # the client's own limit: far beyond the budget, so it is measured
# Everything here is plain HTTP, but httpx builds (and loads CA files into) a TLS context for
# every client unless given one, about 20 ms each: the burst opens one client per request.
UNUSED_TLS_CONTEXT = ssl.create_default_context()


# ----------------------------------------------------------------------------- results


@dataclass
class ThroughputRow:
    database: str
    mode: str
    concurrency: int
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    error_samples: list[str] = field(default_factory=list)


@dataclass
class SlowCoreRow:
    database: str
    burst: int
    budget_seconds: float
    undefined: int
    over_budget: int
    answer_p50_ms: float
    answer_p95_ms: float
    answer_p99_ms: float
    answer_max_ms: float
    called_back: int
    duplicates: int
    callback_p50_ms: float
    callback_p99_ms: float
    callback_max_ms: float
    core_authorizations: int
    send_delay_max_ms: float  # the load generator's own queueing, excluded from the above
    problems: list[str] = field(default_factory=list)


def milliseconds(seconds: Sequence[float], fraction: float) -> float:
    """A percentile in ms, rounded for the table; NaN when nothing was measured."""
    if not seconds:
        return float("nan")
    return round(base.percentile(sorted(seconds), fraction) * 1000, 1)


# ----------------------------------------------------------------------------- deployment


@dataclass(frozen=True)
class Connector:
    """A running `connector serve` and the headers of its merchant."""

    base_url: str
    headers: dict[str, str]

    def client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            limits=limits,
            timeout=ANSWER_TIMEOUT_SECONDS,
            verify=UNUSED_TLS_CONTEXT,
        )


@contextlib.asynccontextmanager
async def fresh_database(database: str, workdir: Path) -> AsyncIterator[str]:
    """bench_authorize's `database_url`, whose set-up runs its own event loop: in a thread."""
    manager = base.database_url(database, workdir)
    url = await asyncio.to_thread(manager.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def running_connector(database: str, settings: dict[str, str]) -> AsyncIterator[Connector]:
    """`connector serve` on a fresh database with these CONNECTOR_* settings (names unprefixed);
    the blocking steps run in threads so that the fakes in this loop keep answering."""
    with tempfile.TemporaryDirectory(prefix=f"bench-acquirer-{database}-") as tmp:
        workdir = Path(tmp)  # also the working directory: no `.env` of the checkout leaks in
        async with fresh_database(database, workdir) as url:
            env = base.server_environment(url)
            env.update({f"CONNECTOR_{name}": value for name, value in settings.items()})
            await asyncio.to_thread(base.run_connector, env, workdir, "migrate")
            issued = await asyncio.to_thread(
                base.run_connector, env, workdir, "merchants", "add", "bench"
            )
            credentials = json.loads(issued)
            port = base.free_port()
            base_url = f"http://{base.HOST}:{port}"
            log_path = workdir / "server.log"
            process = base.start_server(env, workdir, port, 1, log_path)
            try:
                await asyncio.to_thread(base.wait_until_live, process, base_url, log_path)
                yield Connector(base_url, merchant_headers(credentials))
                if process.poll() is not None:
                    raise base.BenchmarkError(
                        f"server exited with {process.returncode} during the run:\n"
                        f"{base.log_tail(log_path)}"
                    )
            finally:
                await asyncio.to_thread(base.stop_server, process)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C cancels the running scenario, whose clean-up then runs. The fakes' uvicorn servers
    take SIGINT over while they run, to stop themselves; without this they would swallow it and
    leave the scenario waiting on stopped fakes. Enter it once the fakes are serving."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(task.cancel)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def merchant_headers(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "X-VTEX-API-AppKey": credentials["appKey"],
        "X-VTEX-API-AppToken": credentials["appToken"],
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def http_acquirer_settings(core_url: str) -> dict[str, str]:
    """The `http` acquirer pointed at the fake core, loopback proxy URLs allowed."""
    return {
        "ACQUIRER": "http",
        "ACQUIRER_URL": core_url,
        "ACQUIRER_API_KEY": CORE_API_KEY,
        "SECURE_PROXY_ALLOW_LOOPBACK": "true",
    }


def slow_core_settings(core_url: str, budget: float) -> dict[str, str]:
    return http_acquirer_settings(core_url) | {
        "ACQUIRER_TIMEOUT_SECONDS": str(budget),
        # Stale must exceed both budgets (the Test Suite's is 4 s by default).
        "ATTEMPT_STALE_SECONDS": str(max(STALE_SECONDS, budget + 1)),
        "RECONCILE_INTERVAL_SECONDS": str(RECONCILE_INTERVAL_SECONDS),
        "CALLBACK_ALLOW_LOOPBACK": "true",
        "CALLBACK_DELAY_SECONDS": str(CALLBACK_DELAY_SECONDS),
    }


def new_core(*, dedupe: bool = True) -> FakeAcquirer:
    # public_url only appears in the instruments of non-card flows, which are not sent here.
    return FakeAcquirer(api_key=CORE_API_KEY, public_url=f"http://{base.HOST}", dedupe=dedupe)


# ----------------------------------------------------------------------------- throughput


def plain_card_bodies(count: int) -> list[bytes]:
    return base.build_bodies(count)


def tokenized_bodies(count: int, cards: list[dict[str, Any]], proxy_url: str) -> list[bytes]:
    return [
        json.dumps(payloads.tokenized_payment(cards[index % len(cards)], proxy_url)).encode()
        for index in range(count)
    ]


async def vault_cards(tokens_url: str, count: int) -> list[dict[str, Any]]:
    """Tokens for `count` copies of the approved test card, as VTEX's checkout would vault them."""
    async with httpx.AsyncClient(timeout=10, verify=UNUSED_TLS_CONTEXT) as client:
        cards = []
        for index in range(count):
            card = {"number": payloads.APPROVED_CARD, "holder": f"Bench {index}", "csc": "123"}
            response = await client.post(tokens_url, json=card)
            response.raise_for_status()
            cards.append(response.json())
        return cards


async def closed_loop(
    connector: Connector, mode: str, database: str, args: argparse.Namespace, bodies: list[bytes]
) -> ThroughputRow:
    """Warm-up, then the measured closed loop, with bench_authorize's `fire`."""
    warmup, measured = bodies[: args.warmup], bodies[args.warmup :]
    async with connector.client(args.concurrency) as client:
        if warmup:
            warmup_errors: list[str] = []
            await base.fire(client, warmup, args.concurrency, warmup_errors)
            for sample in warmup_errors:
                print(f"[{database} {mode}] warm-up error: {sample}", file=sys.stderr)
        error_samples: list[str] = []
        samples, duration = await base.fire(client, measured, args.concurrency, error_samples)
    latencies = [sample.latency_seconds for sample in samples]
    return ThroughputRow(
        database=database,
        mode=mode,
        concurrency=args.concurrency,
        requests=len(samples),
        errors=sum(1 for s in samples if s.http_status != 200 or s.payment_status != "approved"),
        throughput=round(len(samples) / duration, 1) if duration > 0 else 0.0,
        p50_ms=milliseconds(latencies, 0.50),
        p95_ms=milliseconds(latencies, 0.95),
        p99_ms=milliseconds(latencies, 0.99),
        max_ms=milliseconds(latencies, 1.0),
        error_samples=error_samples,
    )


Deployment = tuple[dict[str, str], list[bytes]]  # the connector's settings, the request bodies


async def throughput(database: str, args: argparse.Namespace) -> list[ThroughputRow]:
    core = new_core()
    async with serve(core_app(core)) as core_url, secure_proxy(core_url) as proxy_url:
        with interruptible():
            total = args.warmup + args.requests
            deployments = await throughput_deployments(core_url, proxy_url, total)
            rows = []
            for mode, (settings, bodies) in deployments.items():
                async with running_connector(database, settings) as connector:
                    rows.append(await closed_loop(connector, mode, database, args, bodies))
            return rows


@contextlib.asynccontextmanager
async def secure_proxy(core_url: str) -> AsyncIterator[str]:
    """The fake Secure Proxy, allowed to forward to the core; yields its base URL."""
    proxy = FakeSecureProxy(allowed_prefixes=[f"{core_url}/"])
    try:
        async with serve(proxy_app(proxy)) as proxy_url:
            yield proxy_url
    finally:
        await proxy.aclose()


async def throughput_deployments(
    core_url: str, proxy_url: str, count: int
) -> dict[str, Deployment]:
    """Each mode's settings and `count` bodies, built before anything is timed."""
    cards = await vault_cards(f"{proxy_url}/tokens", TOKENIZED_CARDS)
    http_acquirer = http_acquirer_settings(core_url)
    return {
        "direct": (http_acquirer, plain_card_bodies(count)),
        "proxy": (http_acquirer, tokenized_bodies(count, cards, f"{proxy_url}/proxy")),
        "sandbox": ({"ACQUIRER": "sandbox"}, plain_card_bodies(count)),
    }


# ----------------------------------------------------------------------------- slow core


@dataclass
class Callbacks:
    """VTEX's callback endpoint: when each payment's callbacks arrived, and with what status."""

    arrivals: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.json()
            entry = (time.perf_counter(), str(body.get("status")))
            self.arrivals.setdefault(str(body.get("paymentId")), []).append(entry)
            self.arrived.set()
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/callback", receive, methods=["POST"])])

    def approved(self, payment_id: str) -> float | None:
        """When the first `approved` callback of this payment arrived."""
        times = [at for at, status in self.arrivals.get(payment_id, []) if status == "approved"]
        return times[0] if times else None

    async def wait_for_all(self, payment_ids: Sequence[str], deadline: float) -> bool:
        """True once every payment was called back approved; False at the deadline."""
        while any(self.approved(payment_id) is None for payment_id in payment_ids):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return True


@dataclass(frozen=True)
class Answer:
    payment_id: str
    sent: float  # time.perf_counter() when the request was written to its connection
    latency: float  # from `sent` to the full answer
    send_delay: float  # from the request's creation to `sent`: the load generator's own queue
    http_status: int  # 0: no answer
    payment_status: str | None
    text: str


async def authorize_once(client: httpx.AsyncClient, payment_id: str, body: bytes) -> Answer:
    """One authorization, timed from the moment its request was written to the connection
    (httpx's trace hook): with B requests created at once, the last ones wait for the load
    generator to send the first ones, which is not the connector's time."""
    created = time.perf_counter()
    written: list[float] = []

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == REQUEST_WRITTEN and not written:
            written.append(time.perf_counter())

    outcome: tuple[int, str | None, str]
    try:
        response = await client.post(base.AUTHORIZE_PATH, content=body, extensions={"trace": trace})
        finished = time.perf_counter()
        outcome = (response.status_code, payment_status(response), response.text[:500])
    except httpx.HTTPError as error:
        finished = time.perf_counter()
        outcome = (0, None, repr(error))
    sent = written[0] if written else created
    return Answer(payment_id, sent, finished - sent, sent - created, *outcome)


def payment_status(response: httpx.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    status = document.get("status") if isinstance(document, dict) else None
    return str(status) if status is not None else None


async def burst(connector: Connector, callback_url: str, count: int) -> list[Answer]:
    """`count` authorizations at once, each with a callbackUrl, each from its own client whose
    keep-alive connection is opened beforehand. One client with a pool of `count` connections
    would be slower than the server: httpcore 1.0 scans its whole pool, polling every idle
    socket, on each request and response, so a burst costs it O(count²), and that showed up
    as hundreds of milliseconds of answer latency that the connector did not cause."""
    bodies = [payloads.create_payment(callbackUrl=callback_url) for _ in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connector.client(1)) for _ in bodies]
        connected = await asyncio.gather(*(client.get("/health/live") for client in clients))
        if any(response.status_code != 200 for response in connected):
            raise base.BenchmarkError("the server did not answer /health/live before the burst")
        return await asyncio.gather(
            *(
                authorize_once(client, body["paymentId"], json.dumps(body).encode())
                for client, body in zip(clients, bodies, strict=True)
            )
        )


async def warm_up(connector: Connector, args: argparse.Namespace, database: str) -> None:
    """Prompt authorizations first, so the burst does not also pay for a cold server."""
    if not args.warmup:
        return
    errors: list[str] = []
    async with connector.client(args.concurrency) as client:
        await base.fire(client, plain_card_bodies(args.warmup), args.concurrency, errors)
    for sample in errors:
        print(f"[{database} slow-core] warm-up error: {sample}", file=sys.stderr)


async def slow_core(database: str, args: argparse.Namespace) -> SlowCoreRow:
    core = new_core(dedupe=False)  # a re-sent authorization counts as a second one
    callbacks = Callbacks()
    async with serve(core_app(core)) as core_url, serve(callbacks.app()) as receiver_url:
        settings = slow_core_settings(core_url, args.budget)
        callback_url = f"{receiver_url}/callback?X-VTEX-signature=bench"
        try:
            with interruptible():
                async with running_connector(database, settings) as connector:
                    await warm_up(connector, args, database)
                    core.inject(Fault("authorize", latency_after=SLOW_CORE_SECONDS, times=None))
                    before = core.effect_count("authorize")
                    answers = await burst_and_callbacks(connector, callbacks, callback_url, args)
                    core_authorizations = core.effect_count("authorize") - before
        finally:
            core.release()  # wakes the core's 30 s sleeps, so that every server stops at once
    return slow_core_row(database, args, answers, callbacks, core_authorizations)


async def burst_and_callbacks(
    connector: Connector, callbacks: Callbacks, callback_url: str, args: argparse.Namespace
) -> list[Answer]:
    """The burst, then the wait for every approved callback (and for any duplicate)."""
    deadline = time.perf_counter() + CALLBACK_DEADLINE_SECONDS
    answers = await burst(connector, callback_url, args.burst)
    if await callbacks.wait_for_all([answer.payment_id for answer in answers], deadline):
        await asyncio.sleep(DUPLICATE_GRACE_SECONDS)
    return answers


def slow_core_row(
    database: str,
    args: argparse.Namespace,
    answers: list[Answer],
    callbacks: Callbacks,
    core_authorizations: int,
) -> SlowCoreRow:
    latencies = [answer.latency for answer in answers]
    limit = args.budget + OVER_BUDGET_MARGIN_SECONDS
    delays = [
        arrived - answer.sent
        for answer in answers
        if (arrived := callbacks.approved(answer.payment_id)) is not None
    ]
    duplicates = sum(max(0, len(times) - 1) for times in callbacks.arrivals.values())
    row = SlowCoreRow(
        database=database,
        burst=len(answers),
        budget_seconds=args.budget,
        undefined=sum(
            1 for a in answers if a.http_status == 200 and a.payment_status == "undefined"
        ),
        over_budget=sum(1 for latency in latencies if latency > limit),
        answer_p50_ms=milliseconds(latencies, 0.50),
        answer_p95_ms=milliseconds(latencies, 0.95),
        answer_p99_ms=milliseconds(latencies, 0.99),
        answer_max_ms=milliseconds(latencies, 1.0),
        called_back=len(delays),
        duplicates=duplicates,
        callback_p50_ms=milliseconds(delays, 0.50),
        callback_p99_ms=milliseconds(delays, 0.99),
        callback_max_ms=milliseconds(delays, 1.0),
        core_authorizations=core_authorizations,
        send_delay_max_ms=milliseconds([answer.send_delay for answer in answers], 1.0),
    )
    row.problems = slow_core_problems(row, answers, limit)
    return row


def slow_core_problems(row: SlowCoreRow, answers: list[Answer], limit: float) -> list[str]:
    problems = [
        f"answer {answer.payment_id}: HTTP {answer.http_status}: {answer.text}"
        for answer in answers
        if answer.http_status != 200 or answer.payment_status != "undefined"
    ][: base.MAX_ERROR_SAMPLES]
    expectations = (
        (row.over_budget, 0, f"answers slower than {limit:g} s"),
        (row.called_back, row.burst, "payments called back approved"),
        (row.duplicates, 0, "duplicate callbacks"),
        (row.core_authorizations, row.burst, "authorizations at the core"),
    )
    problems.extend(
        f"{what}: {actual}, expected {expected}"
        for actual, expected, what in expectations
        if actual != expected
    )
    return problems


# ----------------------------------------------------------------------------- output


def throughput_table(rows: Sequence[ThroughputRow]) -> str:
    return base.render_table(
        ("database", "mode", "conc", "requests", "errors", "req/s")
        + ("p50 ms", "p95 ms", "p99 ms", "max ms"),
        [
            (r.database, r.mode, r.concurrency, r.requests, r.errors, f"{r.throughput:.1f}")
            + (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms)
            for r in rows
        ],
        text=2,
    )


def slow_core_tables(rows: Sequence[SlowCoreRow]) -> str:
    margin = f"over {rows[0].budget_seconds + OVER_BUDGET_MARGIN_SECONDS:g} s"
    answers = base.render_table(
        ("database", "burst", "budget s", "undefined", margin)
        + ("p50 ms", "p95 ms", "p99 ms", "max ms"),
        [
            (r.database, r.burst, f"{r.budget_seconds:g}", r.undefined, r.over_budget)
            + (r.answer_p50_ms, r.answer_p95_ms, r.answer_p99_ms, r.answer_max_ms)
            for r in rows
        ],
        text=1,
    )
    callbacks = base.render_table(
        ("database", "burst", "called back", "duplicates", "p50 ms", "p99 ms", "max ms")
        + ("at the core",),
        [
            (r.database, r.burst, r.called_back, r.duplicates)
            + (r.callback_p50_ms, r.callback_p99_ms, r.callback_max_ms, r.core_authorizations)
            for r in rows
        ],
        text=1,
    )
    return f"slow core: answers\n{answers}\n\nslow core: callbacks\n{callbacks}"


def print_json(scenario: str, row: ThroughputRow | SlowCoreRow) -> None:
    document = {"scenario": scenario, **asdict(row)}
    document |= {"machine": base.machine_description(), "command": base.command_line()}
    print(json.dumps(document), flush=True)


# ----------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The http acquirer against the fake core: throughput, and a slow core.",
    )
    parser.add_argument(
        "--database",
        action="append",
        choices=base.DATABASES,
        help="database to benchmark; repeat for several (default: sqlite)",
    )
    parser.add_argument("--scenario", choices=(*SCENARIOS, "both"), default="both")
    parser.add_argument("--requests", type=int, default=1500, help="measured requests per mode")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first")
    parser.add_argument("--burst", type=int, default=200, help="authorizations sent at once")
    parser.add_argument(
        "--budget", type=float, default=2.0, help="CONNECTOR_ACQUIRER_TIMEOUT_SECONDS (slow-core)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "burst"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if not 0 < args.budget <= 15:
        parser.error("--budget must be above 0 and at most 15 (the connector's own limit)")
    args.database = list(dict.fromkeys(args.database or ["sqlite"]))
    args.scenarios = list(SCENARIOS) if args.scenario == "both" else [args.scenario]
    return args


def run_scenario(
    scenario: str, database: str, args: argparse.Namespace
) -> list[ThroughputRow] | list[SlowCoreRow]:
    try:
        if scenario == "throughput":
            return asyncio.run(throughput(database, args))
        return [asyncio.run(slow_core(database, args))]
    except asyncio.CancelledError:  # by `interruptible`
        raise KeyboardInterrupt from None


def report_problems(row: ThroughputRow | SlowCoreRow) -> bool:
    """Prints what went wrong in this row to stderr; True if anything did."""
    if isinstance(row, ThroughputRow):
        label, problems = f"[{row.database} {row.mode}]", row.error_samples
        failed = row.errors > 0
    else:
        label, problems = f"[{row.database} slow-core]", row.problems
        failed = bool(problems)
    for problem in problems:
        print(f"{label} {problem}", file=sys.stderr)
    return failed


def not_run(
    args: argparse.Namespace, scenario: str, database: str, why: str, reason: Exception
) -> None:
    print(f"[{database} {scenario}] {why}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps({"scenario": scenario, "database": database, why: str(reason)}))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    results: dict[str, list[Any]] = {scenario: [] for scenario in SCENARIOS}
    failed = False
    for scenario in args.scenarios:
        for database in args.database:
            try:
                rows = run_scenario(scenario, database, args)
            except base.Skipped as reason:
                not_run(args, scenario, database, "skipped", reason)
                continue
            except base.BenchmarkError as error:
                not_run(args, scenario, database, "failed", error)
                failed = True
                continue
            for row in rows:
                failed = report_problems(row) or failed
                if args.json:
                    print_json(scenario, row)
            results[scenario].extend(rows)
    if not args.json:
        if results["throughput"]:
            print(throughput_table(results["throughput"]), end="\n\n")
        if results["slow-core"]:
            print(slow_core_tables(results["slow-core"]), end="\n\n")
        print(f"machine: {base.machine_description()}")
        print(f"command: {base.command_line()}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
