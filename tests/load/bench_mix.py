"""Load benchmark of a production-like deployment under a realistic mix of VTEX traffic.

The deployment
    For each database the script builds a throw-away deployment, as `bench_authorize.py` does: a
    temporary SQLite file or a fresh PostgreSQL database (`bench_<random>` on the server of
    CONNECTOR_BENCH_POSTGRES_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test,
    dropped at the end), `connector migrate`, one merchant (`connector merchants add bench`) and
    `--giftcards` gift cards (`connector giftcards issue --csv`). It then runs what production
    runs: `connector serve --workers N` with CONNECTOR_RUN_BACKGROUND_WORKERS=false, and one
    `connector worker` process for the callbacks, the reconciler, hold expiry and review
    deadlines. PostgreSQL gets `--workers` (default: the number of CPUs); SQLite gets 1, since
    `connector serve` refuses more on it. Callbacks go to a receiver this script serves on
    loopback (CONNECTOR_CALLBACK_ALLOW_LOOPBACK=true).

The mix (per order, roughly what VTEX's gateway, the Gift Card Hub and the anti-fraud gateway
send for one checkout; drawn from shuffled decks of 20 orders, so every 20 orders hold exactly)
    16 of 20 (80 %)  card orders: `POST /payment-provider/payments` (approved test card, answered
                     at once), then `POST /antifraud/transactions` (the analysis of the order, a
                     buyer from a pool of 20,000, so the velocity rules count real rows), then
                       13 of them  `POST .../settlements` of the full value
                        2 of them  settlement, then `POST .../refunds` of the full value
                        1 of them  `POST .../cancellations` instead of a settlement
                     and 2 of the 16 (10 % of orders) also pay 5.00 with a gift card, before the
                     card: `POST /giftcard/giftcards/_search` by the owner's email, `GET
                     /giftcard/giftcards/{id}` (for the redemption token), a `Debit` (`POST
                     .../transactions`), and the Debit's settlement (or cancellation, when the
                     order is cancelled) next to the card's
     4 of 20 (20 %)  asynchronous orders, 2 Pix and 2 BankInvoice: the authorization answers
                     `undefined`; the sandbox decides `approved` `--async-decision` seconds later
                     (CONNECTOR_SANDBOX_ASYNC_DECISION_SECONDS), the reconciler in `connector
                     worker` finds the decision, and the dispatcher calls the order's
                     `callbackUrl` on the receiver; the receiver then settles the payment, as VTEX
                     does once it hears `approved` (while the measured window is open)
    That is 3.3 requests per order: 0.8 analyses, 1 authorization, 0.95 settlements, 0.1 refunds,
    0.05 cancellations, 0.4 gift card requests; plus 0.2 callbacks the other way.

The modes (both by default, one after the other on the same deployment)
    fixed       open loop: orders start at `--rate` per second (default 40, about 130 requests
                a second; VTEX's whole platform peaked around 77 orders a second in 2024) for
                `--duration` seconds, whatever the answers do. Each order's first request is
                timed from its scheduled start, not from when it was sent, so a server (or a
                generator) that falls behind shows up as latency (no coordinated omission); the
                order's later requests are timed from the previous answer.
    saturation  closed loop: `--concurrency` order-runners (default 64), each starting its next
                order as soon as the previous one finished, for `--duration` seconds.
    Each is preceded by `--warmup` seconds of the same load, card orders only, not measured. After
    the window, requests in flight are answered (their latency counts, their throughput does not)
    and the script waits up to `--callback-timeout` seconds for every callback it expects.

The ceiling
    In the same run, `tests/load/bare_app.py` (one Starlette route answering a small JSON) is
    served by uvicorn with the same number of workers and hit by the same generator, in
    saturation and at the connector's fixed request rate: the distance between the two rows is
    the connector's own cost (and its database's), the rest is framework, server and client.

How to read the tables
    orders/s, req/s  orders (every synchronous request answered) and requests completed inside
                     the measured window, divided by its length; callbacks not counted
    errors           answers that were not the expected status and body (a non-2xx, a refused
                     settlement, a missing id...); samples go to stderr
    p50..max         latency in ms seen by the client, per operation and for all requests;
                     `order` is an order's synchronous steps from its (scheduled) start to its
                     last answer
    callbacks        expected (`undefined` answers in the window), received, missing after the
                     wait, received twice; `lag` is from the state change (the decision committed
                     by the reconciler, read back from the outbox row, which is written in the same
                     transaction) to the receipt, so it includes CONNECTOR_CALLBACK_DELAY_SECONDS
                     (1 s, the deliberate floor) and the dispatcher's poll; `e2e` is from the
                     `undefined` answer to the receipt, so it adds the sandbox's decision time and
                     the reconciler's schedule
    processes        RSS at the end of the window and its peak (sampled every 0.5 s) and CPU used
                     during the window, in cores (1.00 = one CPU busy all the time): the uvicorn
                     master, each uvicorn worker, `connector worker`, the load generator (this
                     process, the callback receiver included), the PostgreSQL server (every
                     `postgres` process on the machine), and the machine as a whole (busy cores
                     from /proc/stat; `others` is what none of the above used)
    generator lag    how late a 50 ms timer fires in the generator's event loop (p99, max): when
                     it grows, the generator itself is short of CPU and latencies are inflated
    PostgreSQL       from pg_stat_activity every 0.5 s: connections to the bench database (max),
                     active ones (mean, max), and what the active ones were waiting for

    The generator runs on the same machine as the server and competes with it for CPU: compare
    runs made on the same machine with the same options, and read the CPU lines before the
    latencies. `--profile DIR` also records py-spy profiles (when `py-spy` is installed) of the
    serving workers, `connector worker` and the generator during every measured window, and
    prints the hottest functions.

Usage
    python -m tests.load.bench_mix [--database sqlite postgresql] [--workers 2] [--rate 40]
        [--duration 30] [--concurrency 64] [--modes fixed saturation] [--warmup 3]
        [--json FILE] [--markdown] [--quick] [--no-ceiling] [--profile DIR]

    `--quick` is a run of a few seconds (for the smoke test, tests/load/test_bench_mix.py). The
    script exits with 1 when a request failed, a callback is missing, or a set-up step failed.
    Everything it sends goes to 127.0.0.1, and it stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import json
import math
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from sqlalchemy import select
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from connector.antifraud.geo import BINS_PATH  # noqa: E402
from connector.db.engine import Database  # noqa: E402
from connector.db.tables import OutboxMessage, Payment  # noqa: E402
from tests import payloads  # noqa: E402
from tests.load import bare_app  # noqa: E402
from tests.load import bench_authorize as base  # noqa: E402

HOST = base.HOST
DATABASES = base.DATABASES
MODES = ("fixed", "saturation")
MERCHANT = "bench"
PAYMENTS = "/payment-provider/payments"
ANTIFRAUD = "/antifraud/transactions"
GIFTCARDS = "/giftcard/giftcards"
VENDOR_JSON = "application/vnd.vtex.giftcards.v1+json"
HOOK_URL = "https://hook.example.com/antifraud/notify?accountName=bench"
ANTIFRAUD_ANSWERS = ("approved", "denied", "received")
CALLBACK_DELAY_SECONDS = 1.0  # the service's default, set explicitly: the lag is computed with it
GIFT_VALUE = 5.00
GIFT_BALANCE = "100000.00"
BUYERS = 20_000
REQUEST_TIMEOUT = httpx.Timeout(30.0, pool=60.0)
KEEPALIVE_EXPIRY_SECONDS = 4.0
SAMPLE_SECONDS = 0.5
LAG_PROBE_SECONDS = 0.05
MAX_ERROR_SAMPLES = 3  # per operation and run
WORKER_STARTUP_SECONDS = 1.5
PROFILE_RATE = 67  # py-spy samples a second: cheap, and enough for a few thousand per window

# One deck of 20 orders, shuffled before each use: the mix holds exactly in every 20 orders.
DECK = (
    [("card", "settle")] * 13
    + [("card", "refund")] * 2
    + [("card", "cancel")] * 1
    + [("Pix", "async")] * 2
    + [("BankInvoice", "async")] * 2
)
GIFT_ORDERS_PER_DECK = 2  # card orders of each deck that also pay with a gift card
WARMUP_DECK = [entry for entry in DECK if entry[0] == "card"]  # no callbacks during a warm-up

# Per operation: method and what it is, in the order the tables list them.
OPERATIONS = {
    "authorize": "POST /payment-provider/payments (card, approved)",
    "antifraud": "POST /antifraud/transactions",
    "settle": "POST /payment-provider/payments/{id}/settlements",
    "refund": "POST /payment-provider/payments/{id}/refunds",
    "cancel": "POST /payment-provider/payments/{id}/cancellations",
    "authorize-async": "POST /payment-provider/payments (Pix or BankInvoice, undefined)",
    "settle-async": "POST .../settlements after the approved callback",
    "gc-search": "POST /giftcard/giftcards/_search",
    "gc-get": "GET /giftcard/giftcards/{id}",
    "gc-debit": "POST /giftcard/giftcards/{id}/transactions (Debit)",
    "gc-settle": "POST .../transactions/{tid}/settlements",
    "gc-cancel": "POST .../transactions/{tid}/cancellations",
    "ping": f"GET {bare_app.PATH} (bare Starlette)",
}


def requests_per_order() -> float:
    """The mean number of requests of an order of the mix (callbacks not counted)."""
    total = 0
    for method, outcome in DECK:
        if method == "card":
            total += 2 + (2 if outcome == "refund" else 1)  # authorize, analysis, settle...
        else:
            total += 2  # authorization, then the settlement after the callback
    total += GIFT_ORDERS_PER_DECK * 4
    return total / len(DECK)


# ----------------------------------------------------------------------------- the orders


@dataclass(frozen=True, slots=True)
class Buyer:
    email: str
    document: str
    device: str
    ip: str
    bin: str
    last4: str


@dataclass(frozen=True, slots=True)
class GiftCard:
    card_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class Order:
    method: str  # "card", "Pix" or "BankInvoice"
    outcome: str  # "settle", "refund", "cancel" or "async"
    gift: bool
    payment_id: str
    transaction_id: str
    order_id: str
    value: float


# The shipping address of VTEX's sample order (tests/payloads.py).
ADDRESS = payloads.create_payment()["miniCart"]["shippingAddress"]
BRAZILIAN_IPV4_BLOCKS = (177, 179, 186, 187, 189, 191, 200, 201)


def brazilian_bins() -> list[str]:
    """Six-digit Brazilian BINs from the table the anti-fraud rules read (no country mismatch)."""
    found: list[str] = []
    with gzip.open(BINS_PATH, "rt", newline="") as source:
        for row in csv.DictReader(source):
            if len(row["prefix"]) == 6 and row["country"] == "BR":
                found.append(row["prefix"])
    return found or ["486902"]


def make_buyers(count: int, rng: random.Random) -> list[Buyer]:
    bins = brazilian_bins()
    return [
        Buyer(
            email=f"buyer{number:06d}@bench.example",
            document=f"{rng.randrange(10**11):011d}",
            device=f"{rng.getrandbits(60):015x}",
            ip=".".join(
                str(octet)
                for octet in (
                    rng.choice(BRAZILIAN_IPV4_BLOCKS),
                    rng.randrange(256),
                    rng.randrange(256),
                    rng.randrange(1, 255),
                )
            ),
            bin=rng.choice(bins),
            last4=f"{rng.randrange(10**4):04d}",
        )
        for number in range(count)
    ]


class Orders:
    """Endless orders from shuffled decks of the mix."""

    def __init__(self, deck: Sequence[tuple[str, str]], rng: random.Random) -> None:
        self._deck = list(deck)
        self._rng = rng
        self._pending: list[Order] = []

    def __next__(self) -> Order:
        if not self._pending:
            self._refill()
        return self._pending.pop()

    def __iter__(self) -> Iterator[Order]:
        return self

    def _refill(self) -> None:
        rng = self._rng
        entries = self._deck[:]
        rng.shuffle(entries)
        cards = [index for index, (method, _) in enumerate(entries) if method == "card"]
        gifts = set(rng.sample(cards, min(GIFT_ORDERS_PER_DECK, len(cards))))
        for index, (method, outcome) in enumerate(entries):
            minor = rng.randrange(20_00, 800_00)
            if minor % 100 == 51:  # the sandbox denies amounts ending in 51
                minor += 1
            self._pending.append(
                Order(
                    method=method,
                    outcome=outcome,
                    gift=index in gifts,
                    payment_id=uuid.uuid4().hex.upper(),
                    transaction_id=uuid.uuid4().hex.upper(),
                    order_id=f"v{rng.randrange(10**9)}bch-01",
                    value=minor / 100,
                )
            )


def payment_body(order: Order, callback_url: str | None) -> bytes:
    if order.method == "card":
        body = payloads.create_payment(card_number=payloads.APPROVED_CARD, value=order.value)
    else:
        body = payloads.create_payment(card_number=None, value=order.value)
        body["card"] = None
        body["paymentMethod"] = order.method
    body.update(
        paymentId=order.payment_id,
        transactionId=order.transaction_id,
        orderId=order.order_id,
        reference=order.order_id,
        referenceValue=order.value,
        installmentsValue=order.value,
    )
    if callback_url is not None:
        body["callbackUrl"] = callback_url
    return json.dumps(body).encode()


def antifraud_body(order: Order, buyer: Buyer) -> bytes:
    """VTEX's anti-fraud order (the shape of its test suite's body) for this order and buyer."""
    shipping = 10.0
    body = {
        "id": order.transaction_id,
        "reference": order.order_id,
        "value": order.value,
        "ip": buyer.ip,
        "deviceFingerprint": buyer.device,
        "transactionStartDate": datetime.now(UTC).isoformat(timespec="seconds"),
        "hook": HOOK_URL,
        "miniCart": {
            "buyer": {
                "id": buyer.email.split("@")[0],
                "firstName": "Ana",
                "lastName": "Souza",
                "document": buyer.document,
                "documentType": "CPF",
                "email": buyer.email,
                "phone": "+5521987654321",
                "address": ADDRESS,
            },
            "shipping": {
                "value": shipping,
                "estimatedDate": "2027-08-02T14:46:47",
                "address": ADDRESS,
            },
            "items": [
                {
                    "id": "132981",
                    "name": "Some useful product",
                    "price": round(max(order.value - shipping, 0.01), 2),
                    "quantity": 1,
                    "deliveryType": "Normal",
                    "categoryId": "111",
                    "discount": 0,
                }
            ],
            "taxValue": 0,
        },
        "payments": [
            {
                "id": order.payment_id,
                "method": "CreditCard",
                "name": "Visa",
                "value": order.value,
                "installments": 1,
                "details": {
                    "bin": buyer.bin,
                    "lastDigits": buyer.last4,
                    "holder": "Ana Souza",
                    "address": ADDRESS,
                },
            }
        ],
    }
    return json.dumps(body).encode()


# ----------------------------------------------------------------------------- measurements


@dataclass
class OperationResult:
    operation: str
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class CallbackResult:
    expected: int
    received: int
    missing: int
    duplicates: int
    unexpected: int
    not_approved: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    waited_s: float


@dataclass
class ProcessResult:
    role: str
    pid: int
    rss_end_mib: float
    rss_peak_mib: float
    cpu_cores: float


@dataclass
class RunResult:
    target: str  # "connector" or "bare-starlette"
    database: str  # "sqlite", "postgresql", or "-" for the ceiling
    workers: int
    mode: str  # "fixed" or "saturation"
    load: str  # "40 orders/s", "64 in flight"
    offered_requests_per_s: float | None  # fixed mode: what the schedule asked for
    duration_s: float
    orders_started: int
    orders_per_s: float
    requests_per_s: float
    requests: int
    errors: int
    error_rate: float
    overall: OperationResult
    order: OperationResult | None
    operations: list[OperationResult]
    callbacks: CallbackResult | None
    processes: list[ProcessResult]
    generator_cpu_cores: float
    generator_lag_p99_ms: float
    generator_lag_max_ms: float
    postgres_cpu_cores: float | None
    machine_busy_cores: float
    other_cpu_cores: float
    postgres_activity: dict[str, Any] | None
    profiles: dict[str, list[str]] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], fraction: float) -> float:
    return base.percentile(values, fraction) if values else float("nan")


def operation_result(name: str, latencies: list[float], errors: int) -> OperationResult:
    ordered = sorted(latency * 1000 for latency in latencies)
    return OperationResult(
        operation=name,
        requests=len(ordered),
        errors=errors,
        p50_ms=percentile(ordered, 0.50),
        p95_ms=percentile(ordered, 0.95),
        p99_ms=percentile(ordered, 0.99),
        max_ms=ordered[-1] if ordered else float("nan"),
    )


class Recorder:
    """Every answer of one phase: latency (seconds), completion time and verdict, per operation."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.done: list[float] = []  # perf_counter of every answer, for the window's throughput
        self.errors: Counter[str] = Counter()
        self.error_samples: dict[str, list[str]] = defaultdict(list)
        self.orders: list[float] = []  # order latencies
        self.orders_done: list[float] = []
        self.orders_started = 0

    def answer(self, operation: str, latency: float, done: float, problem: str | None) -> None:
        self.latencies[operation].append(latency)
        self.done.append(done)
        if problem is not None:
            self.errors[operation] += 1
            if len(self.error_samples[operation]) < MAX_ERROR_SAMPLES:
                self.error_samples[operation].append(f"{operation}: {problem}")

    def order(self, latency: float, done: float) -> None:
        self.orders.append(latency)
        self.orders_done.append(done)


class LagProbe:
    """How late a short timer fires in this event loop: the generator's own congestion."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self.lags.append(time.perf_counter() - started - LAG_PROBE_SECONDS)

    def start(self) -> None:
        self.lags = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> tuple[float, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        lags = sorted(lag * 1000 for lag in self.lags)
        return percentile(lags, 0.99), (lags[-1] if lags else float("nan"))


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


def _postgres_cpu_seconds() -> float:
    """Every `postgres` process, plus what the postmaster's reaped children used: a backend that
    disconnected during the window (SQLAlchemy closes overflow connections) still counts."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info.get("name") == "postgres":
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    return total


class Monitor:
    """RSS (peak, every 0.5 s, in a thread) and CPU between `mark()` and `read()` of the
    processes under test: each root, and its children when asked (uvicorn's workers)."""

    def __init__(self, roots: Sequence[tuple[str, int, bool]], postgres: bool) -> None:
        self._roots = list(roots)
        self._postgres = postgres
        self._known: dict[int, tuple[str, psutil.Process]] = {}
        self._peaks: dict[int, int] = {}
        self._cpu_start: dict[int, float] = {}
        self._machine_start = (0.0, 0.0)
        self._postgres_start = 0.0
        self._started = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)

    def processes(self) -> dict[int, tuple[str, psutil.Process]]:
        found: dict[int, tuple[str, psutil.Process]] = {}
        for role, pid, children in self._roots:
            try:
                root = psutil.Process(pid)
                kids = root.children(recursive=True) if children else []
            except psutil.Error:
                continue
            workers = []
            for kid in sorted(kids, key=lambda process: process.pid):
                with contextlib.suppress(psutil.Error):
                    if "resource_tracker" in " ".join(kid.cmdline()):
                        found[kid.pid] = (f"{role} resource tracker", kid)
                    else:
                        workers.append(kid)
            found[pid] = (f"{role} master" if workers else role, root)
            for number, kid in enumerate(workers, start=1):
                found[kid.pid] = (f"{role} worker {number}", kid)
        # Keep the psutil objects (and so their identity) from one sample to the next.
        for pid, (role, process) in found.items():
            known = self._known.get(pid)
            self._known[pid] = (role, known[1] if known else process)
        return {pid: self._known[pid] for pid in found}

    def _sample(self) -> None:
        for pid, (_, process) in self.processes().items():
            with contextlib.suppress(psutil.Error):
                rss = process.memory_info().rss
                with self._lock:
                    self._peaks[pid] = max(self._peaks.get(pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def mark(self) -> None:
        """The measured window starts: CPU counters and RSS peaks from here."""
        with self._lock:
            self._peaks = {}
        self._cpu_start = {}
        for pid, (_, process) in self.processes().items():
            with contextlib.suppress(psutil.Error):
                self._cpu_start[pid] = _cpu_seconds(process)
        self._machine_start = _machine_busy_seconds()
        self._postgres_start = _postgres_cpu_seconds() if self._postgres else 0.0
        self._started = time.perf_counter()
        self._sample()

    def read(self) -> tuple[list[ProcessResult], float | None, float, float]:
        """Per process, the PostgreSQL server's CPU, the machine's busy cores and the rest."""
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._sample()
        results = []
        ours = 0.0
        for pid, (role, process) in sorted(self.processes().items(), key=_role_order):
            try:
                rss = process.memory_info().rss
                cpu = _cpu_seconds(process) - self._cpu_start.get(pid, 0.0)
            except psutil.Error:
                continue
            with self._lock:
                peak = max(self._peaks.get(pid, 0), rss)
            ours += cpu
            results.append(ProcessResult(role, pid, rss / 2**20, peak / 2**20, cpu / elapsed))
        postgres = None
        if self._postgres:
            postgres_seconds = _postgres_cpu_seconds() - self._postgres_start
            ours += postgres_seconds
            postgres = postgres_seconds / elapsed
        busy, total = _machine_busy_seconds()
        cpus = psutil.cpu_count() or 1
        # /proc/stat counts every CPU: busy seconds over the wall time of one of them.
        machine_busy = (busy - self._machine_start[0]) / max(total - self._machine_start[1], 1e-9)
        machine_busy *= cpus
        return results, postgres, machine_busy, max(machine_busy - ours / elapsed, 0.0)


def _role_order(item: tuple[int, tuple[str, psutil.Process]]) -> tuple[int, str]:
    role = item[1][0]
    rank = 0 if "master" in role else 1 if "worker " in role else 2
    if role.startswith("connector worker"):
        rank = 3
    if role.startswith("generator"):
        rank = 4
    return rank, role


class PostgresActivity:
    """pg_stat_activity of the bench database every 0.5 s, in a thread with its own loop."""

    QUERY = """
        SELECT state, wait_event_type, wait_event, count(*)
        FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid()
        GROUP BY 1, 2, 3
    """
    # Counters, flushed by the backends about once a second: sessions ended, transactions.
    COUNTERS = """
        SELECT sessions, xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._connect = {
            "user": parsed.username,
            "password": parsed.password,
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 5432,
            "database": parsed.database,
        }
        self._database = parsed.database
        self._samples: list[list[tuple[str | None, str | None, str | None, int]]] = []
        self._counters: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-pg-activity", daemon=True)
        self.problem: str | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._loop())
        except Exception as error:  # the benchmark goes on without these figures
            self.problem = repr(error)

    async def _loop(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(**self._connect)
        try:
            while not self._stop.is_set():
                rows = await connection.fetch(self.QUERY, self._database)
                self._samples.append([(r[0], r[1], r[2], int(r[3])) for r in rows])
                counters = await connection.fetchrow(self.COUNTERS, self._database)
                if counters is not None:
                    sessions, commits, rollbacks = (int(value or 0) for value in counters)
                    self._counters.append((time.monotonic(), sessions, commits, rollbacks))
                await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            await connection.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def mark(self) -> None:
        self._samples = []
        self._counters = self._counters[-1:]  # the last reading before the window

    def read(self) -> dict[str, Any]:
        samples = list(self._samples)
        counters = list(self._counters)
        rates = {"sessions_per_s": float("nan"), "commits_per_s": float("nan"),
                 "rollbacks_per_s": float("nan")}  # fmt: skip
        if len(counters) >= 2 and counters[-1][0] > counters[0][0]:
            span = counters[-1][0] - counters[0][0]
            for index, name in enumerate(rates, start=1):
                rates[name] = (counters[-1][index] - counters[0][index]) / span
        if not samples:
            return {"samples": 0, "problem": self.problem}
        totals = [sum(row[3] for row in sample) for sample in samples]
        active = [sum(row[3] for row in sample if row[0] == "active") for sample in samples]
        in_transaction = [
            sum(row[3] for row in sample if row[0] == "idle in transaction") for sample in samples
        ]
        waits: Counter[str] = Counter()
        for sample in samples:
            for state, kind, event, count in sample:
                if state == "active":
                    waits[f"{kind}:{event}" if kind else "CPU (no wait)"] += count
        active_total = sum(active) or 1
        return {
            "samples": len(samples),
            "connections_max": max(totals),
            "connections_mean": sum(totals) / len(samples),
            "active_mean": sum(active) / len(samples),
            "active_max": max(active),
            "idle_in_transaction_mean": sum(in_transaction) / len(samples),
            "active_waits": {
                name: round(count / active_total, 3) for name, count in waits.most_common(6)
            },
            **rates,
        }


# ----------------------------------------------------------------------------- callbacks


@dataclass
class Expected:
    mode: str
    value: float
    answered_at: float  # wall clock of the `undefined` answer
    received_at: float | None = None
    status: str | None = None
    times: int = 0


class CallbackReceiver:
    """VTEX's side of the callbacks: a loopback uvicorn server in this process's loop."""

    def __init__(self, on_approved: Callable[[str], None]) -> None:
        self.expected: dict[str, Expected] = {}
        self.unexpected = 0
        self.missing_app_key = 0
        self.arrived = asyncio.Event()
        self._on_approved = on_approved
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    def url(self, payment_id: str) -> str:
        return f"{self.base_url}/callbacks/{payment_id}?X-VTEX-signature=bench-{payment_id[:8]}"

    async def _callback(self, request: Request) -> Response:
        at = time.time()
        payment_id = request.path_params["payment_id"]
        try:
            body = await request.json()
        except ValueError:
            body = {}
        if request.headers.get("x-vtex-api-appkey") is None:
            self.missing_app_key += 1
        expected = self.expected.get(payment_id)
        if expected is None:
            self.unexpected += 1
        else:
            expected.times += 1
            if expected.received_at is None:
                expected.received_at = at
                expected.status = body.get("status") if isinstance(body, dict) else None
                if expected.status == "approved":
                    self._on_approved(payment_id)
        self.arrived.set()
        return JSONResponse({"ok": True})

    async def start(self) -> None:
        app = Starlette(routes=[Route("/callbacks/{payment_id}", self._callback, methods=["POST"])])
        port = base.free_port()
        config = uvicorn.Config(
            app, host=HOST, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
            await asyncio.sleep(0.01)
        self.base_url = f"http://{HOST}:{port}"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def of_mode(self, mode: str) -> list[tuple[str, Expected]]:
        return [(pid, item) for pid, item in self.expected.items() if item.mode == mode]

    async def wait_for(self, mode: str, timeout: float) -> float:
        """Until every callback of `mode` arrived or `timeout` passed; the seconds waited."""
        started = time.perf_counter()
        deadline = started + timeout
        while any(item.received_at is None for _, item in self.of_mode(mode)):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 1.0))
        return time.perf_counter() - started


async def state_changes(url: str, payment_ids: Sequence[str]) -> dict[str, float]:
    """When each payment's decision was committed, from its callback's outbox row (written in the
    same transaction, `created_at` = the decision + CONNECTOR_CALLBACK_DELAY_SECONDS)."""
    found: dict[str, float] = {}
    database = Database(url)
    try:
        async with database.reader() as session:
            for first in range(0, len(payment_ids), 500):
                chunk = list(payment_ids[first : first + 500])
                rows = await session.execute(
                    select(Payment.payment_id, OutboxMessage.created_at)
                    .join(Payment, OutboxMessage.payment_pk == Payment.id)
                    .where(OutboxMessage.kind == "payment_callback")
                    .where(Payment.payment_id.in_(chunk))
                )
                for payment_id, created_at in rows:
                    found[payment_id] = created_at.timestamp() - CALLBACK_DELAY_SECONDS
    finally:
        await database.dispose()
    return found


def callback_result(
    receiver: CallbackReceiver, mode: str, changed: dict[str, float], waited: float
) -> CallbackResult:
    items = receiver.of_mode(mode)
    received = [(pid, item) for pid, item in items if item.received_at is not None]
    lags = sorted(
        (item.received_at - changed[pid]) * 1000
        for pid, item in received
        if item.received_at is not None and pid in changed
    )
    e2e = sorted(
        (item.received_at - item.answered_at) * 1000
        for _, item in received
        if item.received_at is not None
    )
    return CallbackResult(
        expected=len(items),
        received=len(received),
        missing=len(items) - len(received),
        duplicates=sum(max(item.times - 1, 0) for _, item in items),
        unexpected=receiver.unexpected,
        not_approved=sum(1 for _, item in received if item.status != "approved"),
        lag_p50_ms=percentile(lags, 0.50),
        lag_p99_ms=percentile(lags, 0.99),
        lag_max_ms=lags[-1] if lags else float("nan"),
        e2e_p50_ms=percentile(e2e, 0.50),
        e2e_p99_ms=percentile(e2e, 0.99),
        waited_s=waited,
    )


# ----------------------------------------------------------------------------- the generator


Check = Callable[[Any], bool]


def has(key: str, *values: Any) -> Check:
    """A JSON object whose `key` is set (to one of `values`, when given)."""
    if not values:
        return lambda document: isinstance(document, dict) and bool(document.get(key))
    return lambda document: isinstance(document, dict) and document.get(key) in values


def lists_card(card_id: str) -> Check:
    return lambda document: (
        isinstance(document, list)
        and any(isinstance(item, dict) and item.get("id") == card_id for item in document)
    )


class Generator:
    """One keep-alive `httpx.AsyncClient`; orders at a fixed rate or from closed-loop runners.

    Requests beyond the pool's connections wait here, in a FIFO semaphore, not in httpcore's
    pool: its bookkeeping scans every queued request against every connection at each event, so
    an overloaded open loop with a thousand waiting requests made the generator, not the server,
    the bottleneck (0.8 CPU at 36 req/s, its event loop seconds late)."""

    def __init__(self, client: httpx.AsyncClient, connections: int) -> None:
        self.client = client
        self.slots = asyncio.Semaphore(connections)
        self.recorder = Recorder()
        self.in_flight: set[asyncio.Task[Any]] = set()

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        intended: float,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        check: Check | None = None,
    ) -> tuple[Any, float]:
        """One request, timed from `intended`; (the parsed answer or None on error, done time)."""
        problem: str | None = None
        document: Any = None
        try:
            async with self.slots:
                response = await self.client.request(method, path, content=body, headers=headers)
            done = time.perf_counter()
            try:
                document = response.json()
            except ValueError:
                document = None
            if response.status_code != 200:
                problem = f"HTTP {response.status_code}: {response.text[:400]}"
            elif check is not None and not check(document):
                problem = f"unexpected answer: {response.text[:400]}"
        except httpx.HTTPError as error:
            done = time.perf_counter()
            problem = f"no answer: {error!r}"
        self.recorder.answer(operation, done - intended, done, problem)
        return (None if problem else document), done

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def drain(self) -> None:
        while self.in_flight:
            await asyncio.gather(*list(self.in_flight), return_exceptions=True)

    async def fixed_rate(
        self, rate: float, duration: float, start_one: Callable[[float], Awaitable[None]]
    ) -> tuple[float, float]:
        """Orders at `rate` a second for `duration` seconds, each started at its scheduled time
        (late ones at once) and timed from it; the window, once every order is answered."""
        count = max(1, round(rate * duration))
        start = time.perf_counter() + 0.05
        for index in range(count):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.recorder.orders_started += 1
            self.spawn(start_one(scheduled))
        end = start + duration
        if (remaining := end - time.perf_counter()) > 0:
            await asyncio.sleep(remaining)
        return start, end

    async def saturation(
        self, concurrency: int, duration: float, start_one: Callable[[float], Awaitable[None]]
    ) -> tuple[float, float]:
        """`concurrency` runners, each starting an order when its previous one is done."""
        start = time.perf_counter()
        end = start + duration

        async def runner() -> None:
            while (now := time.perf_counter()) < end:
                self.recorder.orders_started += 1
                await start_one(now)

        for _ in range(concurrency):
            self.spawn(runner())
        if (remaining := end - time.perf_counter()) > 0:
            await asyncio.sleep(remaining)
        return start, end


class ConnectorLoad:
    """The mix, against `connector serve`."""

    def __init__(
        self,
        generator: Generator,
        credentials: dict[str, str],
        cards: list[GiftCard],
        buyers: list[Buyer],
        rng: random.Random,
    ) -> None:
        self.generator = generator
        self.cards = cards
        self.buyers = buyers
        self.rng = rng
        self.receiver = CallbackReceiver(self._approved)
        self.mode = ""
        self.settle_after_callback = False
        self.vtex = {
            "X-VTEX-API-AppKey": credentials["appKey"],
            "X-VTEX-API-AppToken": credentials["appToken"],
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        provider = {
            "X-PROVIDER-API-AppKey": credentials["appKey"],
            "X-PROVIDER-API-AppToken": credentials["appToken"],
        }
        self.antifraud = {
            **provider,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.hub = {**provider, "Content-Type": VENDOR_JSON, "Accept": VENDOR_JSON}

    def _approved(self, payment_id: str) -> None:
        """VTEX heard `approved` for an asynchronous payment: it settles it."""
        if self.settle_after_callback:
            value = self.receiver.expected[payment_id].value
            self.generator.spawn(self._settle_async(payment_id, value, time.perf_counter()))

    async def _settle_async(self, payment_id: str, value: float, intended: float) -> None:
        body = json.dumps(payloads.settlement(payment_id, value)).encode()
        await self.generator.call(
            "settle-async",
            "POST",
            f"{PAYMENTS}/{payment_id}/settlements",
            intended,
            body=body,
            headers=self.vtex,
            check=has("settleId"),
        )

    async def order(self, order: Order, scheduled: float) -> None:
        call = self.generator.call
        at = scheduled
        if order.outcome == "async":
            body = payment_body(order, self.receiver.url(order.payment_id))
            answer, at = await call(
                "authorize-async",
                "POST",
                PAYMENTS,
                at,
                body=body,
                headers=self.vtex,
                check=has("status", "undefined"),
            )
            if answer is not None:
                self.receiver.expected[order.payment_id] = Expected(
                    self.mode, order.value, time.time()
                )
                self.generator.recorder.order(at - scheduled, at)
            return
        gift: tuple[str, str] | None = None  # (card path, Debit transaction id)
        if order.gift:
            gift = await self._gift_card_debit(order, at)
            if gift is None:
                return
            at = time.perf_counter()
        body = payment_body(order, None)
        answer, at = await call(
            "authorize",
            "POST",
            PAYMENTS,
            at,
            body=body,
            headers=self.vtex,
            check=has("status", "approved"),
        )
        if answer is None:
            return
        buyer = self.rng.choice(self.buyers)
        _, at = await call(
            "antifraud",
            "POST",
            ANTIFRAUD,
            at,
            body=antifraud_body(order, buyer),
            headers=self.antifraud,
            check=has("status", *ANTIFRAUD_ANSWERS),
        )
        path = f"{PAYMENTS}/{order.payment_id}"
        hold = json.dumps({"value": GIFT_VALUE, "requestId": uuid.uuid4().hex}).encode()
        if order.outcome == "cancel":
            body = json.dumps(payloads.cancellation(order.payment_id)).encode()
            answer, at = await call(
                "cancel",
                "POST",
                f"{path}/cancellations",
                at,
                body=body,
                headers=self.vtex,
                check=has("cancellationId"),
            )
            if gift is not None:
                _, at = await call(
                    "gc-cancel",
                    "POST",
                    f"{gift[0]}/transactions/{gift[1]}/cancellations",
                    at,
                    body=hold,
                    headers=self.hub,
                    check=has("oid"),
                )
        else:
            body = json.dumps(payloads.settlement(order.payment_id, order.value)).encode()
            answer, at = await call(
                "settle",
                "POST",
                f"{path}/settlements",
                at,
                body=body,
                headers=self.vtex,
                check=has("settleId"),
            )
            if gift is not None:
                _, at = await call(
                    "gc-settle",
                    "POST",
                    f"{gift[0]}/transactions/{gift[1]}/settlements",
                    at,
                    body=hold,
                    headers=self.hub,
                    check=has("oid"),
                )
            if answer is not None and order.outcome == "refund":
                body = json.dumps(payloads.refund(order.payment_id, order.value)).encode()
                _, at = await call(
                    "refund",
                    "POST",
                    f"{path}/refunds",
                    at,
                    body=body,
                    headers=self.vtex,
                    check=has("refundId"),
                )
        self.generator.recorder.order(at - scheduled, at)

    async def _gift_card_debit(self, order: Order, at: float) -> tuple[str, str] | None:
        """The Hub at checkout: the shopper's cards, the card (for its token), a Debit."""
        call = self.generator.call
        card = self.rng.choice(self.cards)
        search = {
            "client": {
                "id": uuid.uuid4().hex[:8],
                "email": card.owner,
                "document": str(self.rng.randrange(10**10, 10**11)),
            },
            "cart": {
                "grandTotal": order.value + GIFT_VALUE,
                "relationName": None,
                "redemptionCode": None,
                "discounts": 0,
                "shipping": 10,
                "taxes": 0,
                "items": [],
                "itemsTotal": order.value,
            },
        }
        found, at = await call(
            "gc-search",
            "POST",
            f"{GIFTCARDS}/_search",
            at,
            body=json.dumps(search).encode(),
            headers=self.hub,
            check=lists_card(card.card_id),
        )
        if found is None:
            return None
        card_path = f"{GIFTCARDS}/{card.card_id}"
        shown, at = await call(
            "gc-get",
            "GET",
            f"{card_path}?ts={self.rng.randrange(10**13)}",
            at,
            headers=self.hub,
            check=has("redemptionToken"),
        )
        if shown is None:
            return None
        debit = {
            "operation": "Debit",
            "value": GIFT_VALUE,
            "description": "GiftCardHub",
            "redemptionToken": shown["redemptionToken"],
            "redemptionCode": shown.get("redemptionCode"),
            "requestId": uuid.uuid4().hex.upper(),
            "orderInfo": {
                "orderId": order.order_id,
                "sequence": 1,
                "clientProfile": {"email": card.owner, "isCorporate": False},
            },
        }
        made, at = await call(
            "gc-debit",
            "POST",
            f"{card_path}/transactions",
            at,
            body=json.dumps(debit).encode(),
            headers=self.hub,
            check=has("id"),
        )
        if made is None:
            return None
        return card_path, str(made["id"])


class CeilingLoad:
    """One GET of the bare app per "order"."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    async def order(self, scheduled: float) -> None:
        _, done = await self.generator.call(
            "ping", "GET", bare_app.PATH, scheduled, check=has("status", "ok")
        )
        self.generator.recorder.order(done - scheduled, done)


# ----------------------------------------------------------------------------- profiles


class Profiles:
    """py-spy, attached to the processes under test for one measured window."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.executable = self._find() if directory is not None else None
        self._running: list[tuple[str, Path, asyncio.subprocess.Process]] = []
        if directory is not None and self.executable is None:
            print(
                "warning: --profile needs py-spy (pip install py-spy); no profiles", file=sys.stderr
            )

    @staticmethod
    def _find() -> str | None:
        beside = Path(sys.executable).with_name("py-spy")
        return str(beside) if beside.exists() else shutil.which("py-spy")

    async def start(self, label: str, pids: dict[str, int], seconds: float) -> None:
        if self.executable is None or self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for role, pid in pids.items():
            path = self.directory / f"{label}-{role.replace(' ', '-')}.txt"
            process = await asyncio.create_subprocess_exec(
                self.executable,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, math.ceil(seconds))),
                "--rate",
                str(PROFILE_RATE),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(path),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            self._running.append((role, path, process))

    async def finish(self) -> dict[str, list[str]]:
        summaries: dict[str, list[str]] = {}
        for role, path, process in self._running:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
            if path.exists():
                summaries[role] = summarise_profile(path)
        self._running = []
        return summaries


def summarise_profile(path: Path, top: int = 12) -> list[str]:
    """The hottest functions of a py-spy raw profile: own time, and time under each
    function of the service (connector/, protocol/)."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[_short_frame(frames[-1])] += count
        for frame in dict.fromkeys(_short_frame(frame) for frame in frames):
            if "connector/" in frame or "protocol/" in frame:
                inside[frame] += count
    if not total:
        return [f"{path.name}: no samples"]
    lines = [f"{path} ({total} samples while busy)", "  own time:"]
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines.append("  under (inclusive), service code:")
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in inside.most_common(top)]
    return lines


def _short_frame(frame: str) -> str:
    """`function (/long/path/site-packages/pkg/mod.py:123)` -> `function (pkg/mod.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO_ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


# ----------------------------------------------------------------------------- one run


@dataclass
class Target:
    """What a measured window runs against."""

    name: str  # "connector" or "bare-starlette"
    database: str
    workers: int
    monitor: Monitor
    postgres: PostgresActivity | None
    profile_pids: dict[str, int]


async def measure(
    target: Target,
    generator: Generator,
    mode: str,
    args: argparse.Namespace,
    rate: float,
    start_one: Callable[[float], Awaitable[None]],
    warm_one: Callable[[float], Awaitable[None]],
    profiles: Profiles,
    after: Callable[[], Awaitable[CallbackResult | None]] | None = None,
    on_window_end: Callable[[], None] | None = None,
    on_window_start: Callable[[], None] | None = None,
) -> RunResult:
    """Warm-up, then one measured window of `mode`, then what it left in flight."""
    concurrency = args.concurrency
    if args.warmup > 0:
        generator.recorder = Recorder()
        if mode == "fixed":
            await generator.fixed_rate(rate, args.warmup, warm_one)
        else:
            await generator.saturation(concurrency, args.warmup, warm_one)
        await generator.drain()
        for samples in generator.recorder.error_samples.values():
            for sample in samples:
                print(f"[{target.name} {target.database}] warm-up error: {sample}", file=sys.stderr)
    generator.recorder = Recorder()
    probe = LagProbe()
    probe.start()
    target.monitor.mark()
    if target.postgres is not None:
        target.postgres.mark()
    if on_window_start is not None:
        on_window_start()
    label = f"{target.name}-{target.database}-{mode}"
    await profiles.start(label, target.profile_pids, args.duration)
    if mode == "fixed":
        start, end = await generator.fixed_rate(rate, args.duration, start_one)
    else:
        start, end = await generator.saturation(concurrency, args.duration, start_one)
    if on_window_end is not None:
        on_window_end()
    processes, postgres_cpu, machine_busy, others = target.monitor.read()
    activity = target.postgres.read() if target.postgres is not None else None
    lag_p99, lag_max = await probe.stop()
    await generator.drain()
    recorder = generator.recorder
    callbacks = await after() if after is not None else None
    summaries = await profiles.finish()
    duration = end - start
    in_window = sum(1 for done in recorder.done if start <= done <= end)
    orders_in_window = sum(1 for done in recorder.orders_done if start <= done <= end)
    every = [latency for latencies in recorder.latencies.values() for latency in latencies]
    errors = sum(recorder.errors.values())
    operations = [
        operation_result(name, recorder.latencies[name], recorder.errors[name])
        for name in OPERATIONS
        if recorder.latencies.get(name)
    ]
    generator_cpu = next((p.cpu_cores for p in processes if p.role == "generator"), 0.0)
    offered = None
    load = f"{concurrency} in flight"
    if mode == "fixed":
        offered = rate * requests_per_order() if target.name == "connector" else rate
        load = f"{rate:g} orders/s" if target.name == "connector" else f"{rate:.0f} req/s"
    return RunResult(
        target=target.name,
        database=target.database,
        workers=target.workers,
        mode=mode,
        load=load,
        offered_requests_per_s=offered,
        duration_s=duration,
        orders_started=recorder.orders_started,
        orders_per_s=orders_in_window / duration,
        requests_per_s=in_window / duration,
        requests=len(every),
        errors=errors,
        error_rate=errors / len(every) if every else 0.0,
        overall=operation_result("all", every, errors),
        order=operation_result("order", recorder.orders, 0) if target.name == "connector" else None,
        operations=operations,
        callbacks=callbacks,
        processes=processes,
        generator_cpu_cores=generator_cpu,
        generator_lag_p99_ms=lag_p99,
        generator_lag_max_ms=lag_max,
        postgres_cpu_cores=postgres_cpu,
        machine_busy_cores=machine_busy,
        other_cpu_cores=others,
        postgres_activity=activity,
        profiles=summaries,
        error_samples=[s for samples in recorder.error_samples.values() for s in samples],
    )


def new_client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        # Below uvicorn's 5 s keep-alive timeout: a connection the server is closing is never
        # picked for a request (that race answered `ReadError('')` to a settlement).
        keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
    )
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT)


def connections_for(mode: str, args: argparse.Namespace) -> int:
    return args.connections if mode == "fixed" else args.concurrency + 16


async def drive_connector(
    database: str,
    url: str,
    base_url: str,
    credentials: dict[str, str],
    cards: list[GiftCard],
    serve: subprocess.Popen[bytes],
    worker: subprocess.Popen[bytes],
    workers: int,
    args: argparse.Namespace,
) -> list[RunResult]:
    rng = random.Random(args.seed)
    buyers = make_buyers(BUYERS, rng)
    orders, warm_orders = Orders(DECK, rng), Orders(WARMUP_DECK, rng)
    monitor = Monitor(
        [
            ("serve", serve.pid, True),
            ("connector worker", worker.pid, False),
            ("generator", os.getpid(), False),
        ],
        postgres=database == "postgresql",
    )
    postgres = PostgresActivity(url) if database == "postgresql" else None
    profiles = Profiles(args.profile)
    monitor.start()
    if postgres is not None:
        postgres.start()
    results: list[RunResult] = []
    try:
        for mode in args.modes:
            async with new_client(base_url, connections_for(mode, args)) as client:
                generator = Generator(client, connections_for(mode, args))
                load = ConnectorLoad(generator, credentials, cards, buyers, rng)
                await load.receiver.start()
                try:
                    load.mode = mode
                    pids = {
                        role: pid
                        for pid, (role, _) in monitor.processes().items()
                        if "resource tracker" not in role and "master" not in role
                    }
                    target = Target("connector", database, workers, monitor, postgres, pids)

                    def window_open(load: ConnectorLoad = load) -> None:
                        load.settle_after_callback = True

                    def window_closed(load: ConnectorLoad = load) -> None:
                        load.settle_after_callback = False

                    async def callbacks(load: ConnectorLoad = load, mode: str = mode) -> Any:
                        waited = await load.receiver.wait_for(mode, args.callback_timeout)
                        ids = [pid for pid, _ in load.receiver.of_mode(mode)]
                        changed = await state_changes(url, ids)
                        await asyncio.sleep(0.25)  # a duplicate would show itself by now
                        return callback_result(load.receiver, mode, changed, waited)

                    def one(at: float, load: ConnectorLoad = load) -> Awaitable[None]:
                        return load.order(next(orders), at)

                    def warm(at: float, load: ConnectorLoad = load) -> Awaitable[None]:
                        return load.order(next(warm_orders), at)

                    result = await measure(
                        target,
                        generator,
                        mode,
                        args,
                        args.rate,
                        one,
                        warm,
                        profiles,
                        callbacks,
                        window_closed,
                        window_open,
                    )
                    await generator.drain()
                    results.append(result)
                    print(
                        f"[connector {database}] {mode}: {result.requests_per_s:.1f} req/s, "
                        f"{result.errors} errors",
                        file=sys.stderr,
                        flush=True,
                    )
                finally:
                    await load.receiver.stop()
            for problem in (serve.poll(), worker.poll()):
                if problem is not None:
                    raise base.BenchmarkError(f"a server process exited with {problem}")
    finally:
        monitor.close()
        if postgres is not None:
            postgres.close()
    return results


async def drive_ceiling(
    base_url: str, process: subprocess.Popen[bytes], workers: int, args: argparse.Namespace
) -> list[RunResult]:
    monitor = Monitor(
        [("bare", process.pid, True), ("generator", os.getpid(), False)], postgres=False
    )
    monitor.start()
    results = []
    rate = args.rate * requests_per_order()  # the connector's request rate at --rate
    try:
        for mode in args.modes:
            async with new_client(base_url, connections_for(mode, args)) as client:
                generator = Generator(client, connections_for(mode, args))
                load = CeilingLoad(generator)
                target = Target("bare-starlette", "-", workers, monitor, None, {})
                result = await measure(
                    target, generator, mode, args, rate, load.order, load.order, Profiles(None)
                )
                results.append(result)
                print(
                    f"[bare-starlette] {mode}: {result.requests_per_s:.1f} req/s, "
                    f"{result.errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        monitor.close()
    return results


def run_async(work: Coroutine[Any, Any, list[RunResult]]) -> list[RunResult]:
    """The generator's loop: uvloop when installed (as uvicorn uses it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


def event_loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


# ----------------------------------------------------------------------------- deployments


def environment(url: str, args: argparse.Namespace) -> dict[str, str]:
    env = base.server_environment(url)
    env.update(
        {
            "CONNECTOR_BLIND_INDEX_KEY": secrets.token_urlsafe(32),
            "CONNECTOR_CALLBACK_ALLOW_LOOPBACK": "true",
            # Card orders carry VTEX-like callback URLs that are never called (they are decided
            # at once); anti-fraud orders a hook URL that is never called (nothing is reviewed).
            "CONNECTOR_CALLBACK_ALLOWED_HOSTS": "*.example.com",
            "CONNECTOR_CALLBACK_DELAY_SECONDS": str(CALLBACK_DELAY_SECONDS),
            "CONNECTOR_PAYMENT_METHODS": "Visa,Mastercard,BankInvoice,Pix",
            "CONNECTOR_VTEX_APP_KEY": "vtexappkey-bench",
            "CONNECTOR_VTEX_APP_TOKEN": secrets.token_urlsafe(24),
            "CONNECTOR_RUN_BACKGROUND_WORKERS": "false",  # `connector worker` does that work
            "CONNECTOR_SANDBOX_ASYNC_DECISION_SECONDS": str(args.async_decision),
        }
    )
    return env


def issue_cards(env: dict[str, str], workdir: Path, count: int) -> list[GiftCard]:
    """`count` cards of 100,000.00, one per owner, usable many times, with `giftcards issue`."""
    source = workdir / "cards.csv"
    owners = [f"giftcard-owner-{number:05d}@bench.example" for number in range(count)]
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["amount", "profileId", "caption"])
        writer.writerows([GIFT_BALANCE, owner, "Bench"] for owner in owners)
    issued = json.loads(
        base.run_connector(
            env, workdir, "giftcards", "issue", "--merchant", MERCHANT, "--csv", str(source)
        )
    )
    if len(issued) != count:
        raise base.BenchmarkError(f"issued {len(issued)} gift cards, expected {count}")
    return [GiftCard(card["id"], owner) for card, owner in zip(issued, owners, strict=True)]


def start_process(
    command: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        # Its own session: Ctrl-C reaches only this script, which then stops the process itself.
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_worker(process: subprocess.Popen[bytes], log_path: Path, started: float) -> None:
    """`connector worker` has no HTTP: still alive a moment after its start (its schema check
    is done by then) is as ready as it gets."""
    deadline = started + WORKER_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise base.BenchmarkError(
                f"`connector worker` exited with {process.returncode}:\n{base.log_tail(log_path)}"
            )
        time.sleep(0.1)


def benchmark_connector(database: str, args: argparse.Namespace) -> list[RunResult]:
    workers = 1 if database == "sqlite" else args.workers
    with tempfile.TemporaryDirectory(prefix=f"bench-mix-{database}-") as tmp:
        workdir = Path(tmp)
        with base.database_url(database, workdir) as url:
            env = environment(url, args)
            base.run_connector(env, workdir, "migrate")
            credentials = json.loads(base.run_connector(env, workdir, "merchants", "add", MERCHANT))
            cards = issue_cards(env, workdir, args.giftcards)
            port = base.free_port()
            base_url = f"http://{HOST}:{port}"
            serve_log, worker_log = workdir / "serve.log", workdir / "worker.log"
            serve = base.start_server(env, workdir, port, workers, serve_log)
            worker_started = time.monotonic()
            worker = start_process(base.connector_command("worker"), env, workdir, worker_log)
            try:
                base.wait_until_live(serve, base_url, serve_log, "/health/ready")
                wait_worker(worker, worker_log, worker_started)
                results = run_async(
                    drive_connector(
                        database, url, base_url, credentials, cards, serve, worker, workers, args
                    )
                )
            finally:
                base.stop_server(worker)
                base.stop_server(serve)
            for result in results:
                if result.errors or (result.callbacks and result.callbacks.missing):
                    for name, path in (("serve", serve_log), ("worker", worker_log)):
                        tail = base.log_tail(path)
                        if tail.strip():
                            print(f"[{database}] {name} log (last lines):\n{tail}", file=sys.stderr)
                    break
            return results


def benchmark_ceiling(workers: int, args: argparse.Namespace) -> list[RunResult]:
    with tempfile.TemporaryDirectory(prefix="bench-mix-bare-") as tmp:
        workdir = Path(tmp)
        port = base.free_port()
        env = base.server_environment("sqlite://")  # only for PYTHONPATH and a clean environment
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.load.bare_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ]
        log_path = workdir / "bare.log"
        process = start_process(command, env, workdir, log_path)
        try:
            base.wait_until_live(process, f"http://{HOST}:{port}", log_path, bare_app.PATH)
            return run_async(drive_ceiling(f"http://{HOST}:{port}", process, workers, args))
        finally:
            base.stop_server(process)


# ----------------------------------------------------------------------------- output


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def machine_lines() -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"machine: {os.cpu_count()} CPUs ({model}), {memory:.1f} GiB, {platform.platform()}",
        f"python: {platform.python_implementation()} {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__}, httpx {httpx.__version__}, "
        f"generator loop: {event_loop_name()}, load average at start: "
        + " ".join(f"{value:.2f}" for value in os.getloadavg()),
    ]


def detail(result: RunResult) -> str:
    where = result.database if result.target == "connector" else "bare Starlette"
    lines = [
        f"== {result.target} / {where}, {result.workers} worker(s), {result.mode} "
        f"({result.load}, {result.duration_s:.0f} s) ==",
        f"throughput: {result.requests_per_s:.1f} req/s, {result.orders_per_s:.1f} orders/s "
        f"({result.orders_started} orders started, {result.requests} requests answered); "
        f"errors: {result.errors} ({100 * result.error_rate:.2f} %)",
    ]
    if result.offered_requests_per_s and result.orders_started:
        # Orders, not requests: a settlement after a callback may fall after the window.
        share = result.orders_per_s * result.duration_s / result.orders_started
        verdict = "kept up" if share >= 0.9 else "OVERLOADED, the backlog grew all along"
        lines.append(
            f"offered {result.offered_requests_per_s:.1f} req/s; {100 * share:.0f} % of the "
            f"orders started were answered inside the window: {verdict}"
        )
    rows = [
        [
            op.operation,
            op.requests,
            op.errors,
            _ms(op.p50_ms),
            _ms(op.p95_ms),
            _ms(op.p99_ms),
            _ms(op.max_ms),
        ]
        for op in [*result.operations, result.overall, *([result.order] if result.order else [])]
    ]
    lines.append(
        base.render_table(
            ["operation", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows, 1
        )
    )
    if result.callbacks is not None:
        c = result.callbacks
        lines.append(
            f"callbacks: expected {c.expected}, received {c.received}, missing {c.missing}, "
            f"twice {c.duplicates}, unexpected {c.unexpected}, not approved {c.not_approved} "
            f"(waited {c.waited_s:.1f} s); lag from state change p50 {_ms(c.lag_p50_ms)} ms, "
            f"p99 {_ms(c.lag_p99_ms)} ms, max {_ms(c.lag_max_ms)} ms; from the `undefined` "
            f"answer p50 {_ms(c.e2e_p50_ms)} ms, p99 {_ms(c.e2e_p99_ms)} ms"
        )
    rows = [
        [p.role, p.pid, f"{p.rss_end_mib:.0f}", f"{p.rss_peak_mib:.0f}", _cores(p.cpu_cores)]
        for p in result.processes
    ]
    if result.postgres_cpu_cores is not None:
        rows.append(["postgresql server (all)", "-", "-", "-", _cores(result.postgres_cpu_cores)])
    rows.append(["others on the machine", "-", "-", "-", _cores(result.other_cpu_cores)])
    rows.append(["machine busy", "-", "-", "-", _cores(result.machine_busy_cores)])
    lines.append(base.render_table(["process", "pid", "RSS MiB", "peak MiB", "CPU cores"], rows, 1))
    lines.append(
        f"generator: {_cores(result.generator_cpu_cores)} cores, event loop lag p99 "
        f"{_ms(result.generator_lag_p99_ms)} ms, max {_ms(result.generator_lag_max_ms)} ms"
    )
    if result.postgres_activity:
        a = result.postgres_activity
        if a.get("samples"):
            waits = ", ".join(
                f"{name} {100 * share:.0f} %" for name, share in a["active_waits"].items()
            )
            lines.append(
                f"postgresql: connections max {a['connections_max']}, mean "
                f"{a['connections_mean']:.1f}; active mean {a['active_mean']:.1f}, max "
                f"{a['active_max']}; idle in transaction mean "
                f"{a['idle_in_transaction_mean']:.1f}; active backends were: {waits or 'none seen'}"
            )
            lines.append(
                f"postgresql: {a['commits_per_s']:.0f} commits/s, {a['rollbacks_per_s']:.1f} "
                f"rollbacks/s, {a['sessions_per_s']:.1f} sessions ended/s (connection churn)"
            )
        else:
            lines.append(f"postgresql: no activity samples ({a.get('problem')})")
    for role, summary in result.profiles.items():
        lines.append(f"profile of {role}:")
        lines.extend(summary)
    return "\n".join(lines)


SUMMARY_HEADERS = [
    "target",
    "database",
    "workers",
    "mode",
    "load",
    "orders/s",
    "req/s",
    "errors",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "callbacks",
    "cb lag p50/p99 ms",
    "RSS serve MiB",
    "RSS worker MiB",
    "CPU serve",
    "CPU worker",
    "CPU PG",
    "CPU gen",
    "CPU others",
]


def summary_row(result: RunResult) -> list[str]:
    serving = [p for p in result.processes if p.role.startswith(("serve", "bare"))]
    worker = [p for p in result.processes if p.role == "connector worker"]
    callbacks = "-"
    lag = "-"
    if result.callbacks is not None:
        c = result.callbacks
        callbacks = f"{c.received}/{c.expected}"
        lag = f"{_ms(c.lag_p50_ms)}/{_ms(c.lag_p99_ms)}"
    connector = result.target == "connector"
    return [
        result.target,
        result.database,
        str(result.workers),
        result.mode,
        result.load,
        f"{result.orders_per_s:.1f}" if connector else "-",
        f"{result.requests_per_s:.1f}",
        str(result.errors),
        _ms(result.overall.p50_ms),
        _ms(result.overall.p95_ms),
        _ms(result.overall.p99_ms),
        _ms(result.overall.max_ms),
        callbacks,
        lag,
        f"{sum(p.rss_end_mib for p in serving):.0f} ({sum(p.rss_peak_mib for p in serving):.0f})",
        f"{sum(p.rss_end_mib for p in worker):.0f}" if worker else "-",
        _cores(sum(p.cpu_cores for p in serving)),
        _cores(sum(p.cpu_cores for p in worker)) if worker else "-",
        _cores(result.postgres_cpu_cores),
        _cores(result.generator_cpu_cores),
        _cores(result.other_cpu_cores),
    ]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: Sequence[RunResult]) -> str:
    """README-ready tables: the summary, then the connector's operations per run."""
    headers = [
        "database",
        "workers",
        "mode",
        "load",
        "orders/s",
        "req/s",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "callbacks",
        "callback lag p50/p99 ms",
        "RSS MiB (serve, worker)",
        "CPU cores (serve, worker, PG, generator)",
    ]
    rows = []
    for r in results:
        row = summary_row(r)
        database = "bare Starlette" if r.target != "connector" else r.database
        rows.append(
            [
                database,
                r.workers,
                r.mode,
                r.load,
                row[5],
                row[6],
                row[7],
                row[8],
                row[9],
                row[10],
                row[12],
                row[13],
                f"{row[14]}, {row[15]}",
                f"{row[16]}, {row[17]}, {row[18]}, {row[19]}",
            ]
        )
    parts = [markdown_table(headers, rows)]
    connector = [r for r in results if r.target == "connector"]
    if connector:
        names = [
            name
            for name in OPERATIONS
            if any(op.operation == name for r in connector for op in r.operations)
        ]
        headers = ["operation", *(f"{r.database} {r.mode} p50/p99 ms" for r in connector)]
        rows = []
        for name in [*names, "all", "order"]:
            row: list[object] = [name]
            for r in connector:
                ops = {op.operation: op for op in [*r.operations, r.overall, r.order] if op}
                op = ops.get(name)
                row.append(f"{_ms(op.p50_ms)} / {_ms(op.p99_ms)}" if op else "-")
            rows.append(row)
        parts.append(markdown_table(headers, rows))
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- main


QUICK = {
    "duration": 1.5,
    "rate": 20.0,
    "concurrency": 8,
    "warmup": 0.5,
    "giftcards": 20,
    "async_decision": 1.0,
    "callback_timeout": 20.0,
}
DEFAULTS = {
    "duration": 30.0,
    "rate": 40.0,
    "concurrency": 64,
    "warmup": 3.0,
    "giftcards": 200,
    "async_decision": 3.0,
    "callback_timeout": 60.0,
}


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A production-like deployment under a realistic mix of VTEX traffic.",
    )
    parser.add_argument(
        "--database",
        nargs="+",
        choices=DATABASES,
        action="extend",
        help="databases to benchmark (default: both)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn workers on PostgreSQL (SQLite: always 1); default: CPUs",
    )
    parser.add_argument("--rate", type=float, help="fixed mode: orders a second (40)")
    parser.add_argument("--duration", type=float, help="seconds of each measured window (30)")
    parser.add_argument("--concurrency", type=int, help="saturation mode: order-runners (64)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--warmup", type=float, help="seconds of unmeasured load first (3)")
    parser.add_argument("--giftcards", type=int, help="gift cards issued up front (200)")
    parser.add_argument(
        "--async-decision",
        type=float,
        help="seconds until the sandbox decides Pix and BankInvoice (3)",
    )
    parser.add_argument(
        "--callback-timeout",
        type=float,
        help="seconds to wait for the callbacks after a window (60)",
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="fixed mode: the client's connection pool"
    )
    parser.add_argument("--seed", type=int, default=None, help="the mix's random seed")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare Starlette runs")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy profiles of every measured connector window into DIR",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="also print README tables")
    parser.add_argument("--quick", action="store_true", help="a run of a few seconds (tests)")
    args = parser.parse_args(argv)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else default)
    args.database = list(dict.fromkeys(args.database or DATABASES))
    args.modes = list(dict.fromkeys(args.modes))
    if args.workers < 1 or args.concurrency < 1 or args.giftcards < 1 or args.connections < 1:
        parser.error("--workers, --concurrency, --giftcards and --connections must be >= 1")
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rate and --duration must be > 0, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    header = machine_lines()
    print("\n".join(header), file=sys.stderr, flush=True)
    results: list[RunResult] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    ceilings_done: set[int] = set()
    for database in args.database:
        try:
            results.extend(benchmark_connector(database, args))
        except base.Skipped as reason:
            skipped[database] = str(reason)
            print(f"[{database}] skipped: {reason}", file=sys.stderr)
            continue
        except base.BenchmarkError as error:
            failed[database] = str(error)
            print(f"[{database}] failed: {error}", file=sys.stderr)
            continue
        workers = 1 if database == "sqlite" else args.workers
        if not args.no_ceiling and workers not in ceilings_done:
            ceilings_done.add(workers)
            try:
                results.extend(benchmark_ceiling(workers, args))
            except base.BenchmarkError as error:
                failed[f"bare-{workers}"] = str(error)
                print(f"[bare Starlette] failed: {error}", file=sys.stderr)
    for result in results:
        for sample in result.error_samples:
            print(
                f"[{result.target} {result.database} {result.mode}] error: {sample}",
                file=sys.stderr,
            )
    print("\n".join(header))
    print(f"mix: {requests_per_order():.2f} requests an order (README of tests/load/bench_mix.py)")
    for result in results:
        print()
        print(detail(result))
    if results:
        print()
        print(base.render_table(SUMMARY_HEADERS, [summary_row(r) for r in results], 5))
    if args.markdown and results:
        print()
        print(markdown(results))
    print(f"command: {base.command_line()}")
    if args.json is not None:
        document = {
            "machine": header,
            "command": base.command_line(),
            "requests_per_order": requests_per_order(),
            "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "skipped": skipped,
            "failed": failed,
            "runs": [asdict(result) for result in results],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
    bad = any(
        r.errors or (r.callbacks is not None and (r.callbacks.missing or r.callbacks.not_approved))
        for r in results
    )
    return 1 if failed or bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
