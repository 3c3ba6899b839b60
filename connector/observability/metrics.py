"""Prometheus metrics: what each process counts as it works, and what the database holds,
read at each scrape.

Process metrics (HTTP requests, acquirer calls, callback deliveries) are module-level
`prometheus_client` objects. Under `connector serve --workers N` every worker counts its own;
with `PROMETHEUS_MULTIPROC_DIR` set (serve sets it itself for N > 1) they write to files there,
and a scrape of any worker reads every worker's files (`MultiProcessCollector`).

Database gauges (payments waiting for a decision, the callback outbox, gift card holds, the
review queue) are facts about the shared database, not about a process: the worker that answers
a scrape reads them in one short transaction and renders them next to the process metrics, never
through the multi-process files, so they are never summed over workers or left stale by a dead
one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from pydantic import SecretStr

from connector import __version__
from connector.db.engine import Database
from connector.db.tables import utcnow
from connector.observability.repository import MetricsRepository
from connector.payments.states import UNDECIDED
from connector.security import same_secret

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Up to VTEX's 20 s: the acquirer budget is 15 s, the Test Suite's 4 s.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0)
# How long a scrape may wait for the database before answering without its gauges.
DATABASE_TIMEOUT_SECONDS = 2.0
OUTBOX_BACKLOG = ("pending", "dead")
# Outbox kinds always reported (as 0 when none waits), so that an alert sees a series.
OUTBOX_KINDS = ("payment_callback", "antifraud_hook")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["method", "route"],
    buckets=BUCKETS,
)
ACQUIRER_DURATION = Histogram(
    "connector_acquirer_request_duration_seconds",
    "Calls to the acquirer, by operation and outcome.",
    ["acquirer", "operation", "outcome"],
    buckets=BUCKETS,
)
CALLBACK_DELIVERIES = Counter(
    "connector_callback_deliveries_total",
    "Outbox delivery attempts (payment callbacks, anti-fraud hooks), by outcome: delivered, "
    "retry (failed, tried again later) or dead (failed past its deadline).",
    ["kind", "outcome"],
)

# Children by label values: `labels()` validates and locks at every call, this is one lookup.
_request_counters: dict[tuple[str, str, int], Counter] = {}
_request_durations: dict[tuple[str, str], Histogram] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    counter = _request_counters.get((method, route, status))
    if counter is None:
        counter = HTTP_REQUESTS.labels(method, route, str(status))
        _request_counters[(method, route, status)] = counter
    counter.inc()
    duration = _request_durations.get((method, route))
    if duration is None:
        duration = _request_durations[(method, route)] = HTTP_DURATION.labels(method, route)
    duration.observe(seconds)


def observe_acquirer_call(acquirer: str, operation: str, outcome: str, seconds: float) -> None:
    ACQUIRER_DURATION.labels(acquirer, operation, outcome).observe(seconds)


def count_callback_delivery(kind: str, outcome: str) -> None:
    CALLBACK_DELIVERIES.labels(kind, outcome).inc()


# ----------------------------------------------------------------------------- database gauges


@dataclass
class DatabaseGauges(Collector):
    """One scrape's reading of the database, as metric families."""

    payments: dict[str, int] = field(default_factory=dict)
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_oldest: dict[str, datetime] = field(default_factory=dict)
    giftcard_holds: int = 0
    antifraud_reviews: int = 0
    read_at: datetime = field(default_factory=utcnow)
    up: bool = True

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "connector_build_info", "The running version (always 1).", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "connector_database_up",
            "1 when this scrape could read the database gauges below, else 0 (they are absent).",
            value=1 if self.up else 0,
        )
        if not self.up:
            return
        payments = GaugeMetricFamily(
            "connector_payments",
            "Payments not decided yet (received: at the acquirer; pending: waiting for an "
            "asynchronous outcome), by status.",
            labels=["status"],
        )
        for status in sorted(UNDECIDED):
            payments.add_metric([status], self.payments.get(status, 0))
        yield payments
        pending = GaugeMetricFamily(
            "connector_outbox_pending",
            "Callbacks and hooks not delivered yet (retries included), by kind.",
            labels=["kind"],
        )
        dead = GaugeMetricFamily(
            "connector_outbox_dead_letters",
            "Callbacks and hooks given up after their deadline (`connector outbox list --status "
            "dead`), by kind.",
            labels=["kind"],
        )
        age = GaugeMetricFamily(
            "connector_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered callback or hook (0 when none), by kind.",
            labels=["kind"],
        )
        for kind in sorted({*OUTBOX_KINDS, *(kind for _, kind in self.outbox)}):
            pending.add_metric([kind], self.outbox.get(("pending", kind), 0))
            dead.add_metric([kind], self.outbox.get(("dead", kind), 0))
            oldest = self.outbox_oldest.get(kind)
            age.add_metric([kind], (self.read_at - oldest).total_seconds() if oldest else 0.0)
        yield from (pending, age, dead)
        yield GaugeMetricFamily(
            "connector_giftcard_open_holds",
            "Gift card debits holding money not yet settled or released.",
            value=self.giftcard_holds,
        )
        yield GaugeMetricFamily(
            "connector_antifraud_reviews_waiting",
            "Anti-fraud analyses waiting in the manual review queue.",
            value=self.antifraud_reviews,
        )


async def read_database_gauges(database: Database) -> DatabaseGauges:
    """The gauges, read in one transaction; `up=False` when the database did not answer
    within DATABASE_TIMEOUT_SECONDS."""
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS), database.reader() as session:
            repository = MetricsRepository(session)
            gauges = DatabaseGauges(payments=await repository.payments_by_status(UNDECIDED))
            for row in await repository.outbox_backlog(OUTBOX_BACKLOG):
                gauges.outbox[(row.status, row.kind)] = row.count
                if row.status == "pending" and row.oldest_created_at is not None:
                    gauges.outbox_oldest[row.kind] = row.oldest_created_at
            gauges.giftcard_holds = await repository.open_giftcard_holds()
            gauges.antifraud_reviews = await repository.antifraud_reviews_waiting()
            return gauges
    except Exception as error:  # a scrape still answers, with what the process knows
        log.warning("metrics: the database gauges could not be read: %r", error)
        return DatabaseGauges(up=False)


# ----------------------------------------------------------------------------- exposition


class _Together(Collector):
    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def process_metrics() -> Collector:
    """This process's metrics; every worker's when `PROMETHEUS_MULTIPROC_DIR` is set."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def exposition(database_gauges: DatabaseGauges) -> bytes:
    """The text format (version 0.0.4) of the process metrics and the database gauges."""
    return generate_latest(_Together(process_metrics(), database_gauges))


def clear_multiprocess_directory(directory: Path) -> None:
    """Remove what earlier runs left in a `PROMETHEUS_MULTIPROC_DIR` (prometheus_client asks for
    an empty one at start); only its own files, whatever else the directory holds."""
    for kind in ("counter", "gauge", "histogram", "summary"):
        for path in directory.glob(f"{kind}_*.db"):
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- worker endpoint


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = json.dumps({"status": "error", "code": code, "message": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
    return [body]


def start_metrics_server(host: str, port: int, token: SecretStr | None) -> WSGIServer:
    """`GET /metrics` of a process that serves no HTTP otherwise (`connector worker`), on a
    daemon thread: its process metrics only (the database gauges come from `serve`'s, once), the
    same bearer token as `serve`'s. Stop it with `shutdown()` and `server_close()`."""
    exposition_app = make_wsgi_app(process_metrics())

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _error(start_response, "404 Not Found", "not-found", "only /metrics is here")
        if token is not None:
            scheme, _, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
            if scheme.lower() != "bearer" or not same_secret(
                presented.strip(), token.get_secret_value()
            ):
                return _error(
                    start_response,
                    "401 Unauthorized",
                    "invalid-metrics-token",
                    "missing or wrong metrics bearer token",
                )
        result: Iterable[bytes] = exposition_app(environ, start_response)
        return result

    server = make_server(host, port, app, _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
