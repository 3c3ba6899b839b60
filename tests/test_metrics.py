"""`GET /metrics` and what feeds it.

- HTTP requests are labelled by route template (mount prefix joined with the route's path),
  `unmatched` for what no route serves, never by the path (ids) nor by an unknown method;
- the database gauges read at each scrape count what waits (undecided payments, the outbox with
  its oldest message's age and its dead letters, gift card holds, the review queue), and a scrape
  still answers, without them, when the database does not;
- acquirer calls are timed by acquirer, operation and outcome, callback deliveries counted by
  kind and outcome;
- `CONNECTOR_METRICS_TOKEN` closes `/metrics` (and the worker's) to callers without it;
- `connector serve --workers 2` shares every worker's counters through PROMETHEUS_MULTIPROC_DIR
  (a directory it creates and removes itself), and the database gauges are not multiplied.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from connector.acquirers.base import (
    AuthorizationOutcome,
    AuthorizationRequest,
    AuthorizationResult,
    InboundAnswer,
    ObservedAcquirer,
    OperationRequest,
    OperationResult,
)
from connector.app import Services
from connector.db.tables import AntifraudAnalysis, OutboxMessage, utcnow
from connector.errors import AcquirerUnavailable
from connector.giftcards.cards import IssueOrder
from connector.observability import metrics
from connector.observability.middleware import route_templates
from connector.outbox.dispatcher import Dispatcher
from connector.outbox.repository import OutboxRepository
from connector.settings import Settings
from homologation.local import free_port, wait_ready
from tests import payloads
from tests.conftest import ENCRYPTION_KEY, MerchantCredentials

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    answer = await http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


# ----------------------------------------------------------------------------- HTTP metrics


def test_route_templates_join_mount_prefixes() -> None:
    async def endpoint(request: object) -> PlainTextResponse:
        return PlainTextResponse("")

    leaf = Route("/payments/{payment_id}/settlements", endpoint)
    slash = Route("/cards/{card_id}/", endpoint)
    nested = Route("/z/{n:int}", endpoint)
    inner_mount = Mount("/y", routes=[nested])
    whole_app = Mount("/app", app=PlainTextResponse("x"))
    top = Route("/health/live", endpoint)
    templates = route_templates(
        [
            Mount("/payment-provider", routes=[leaf, slash]),
            Mount("/x", routes=[inner_mount]),
            whole_app,
            top,
        ]
    )
    assert templates == {
        id(leaf): "/payment-provider/payments/{payment_id}/settlements",
        id(slash): "/payment-provider/cards/{card_id}",
        id(nested): "/x/y/z/{n}",
        id(whole_app): "/app",
        id(top): "/health/live",
    }


async def test_requests_are_counted_by_route_template_never_by_path(
    http: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    before = await scrape(http)
    body = payloads.create_payment()
    payment = body["paymentId"]
    headers = merchant.headers
    assert (await http.post("/payment-provider/payments", json=body, headers=headers)).is_success
    settle = payloads.settlement(payment, 31.9)
    path = f"/payment-provider/payments/{payment}/settlements"
    assert (await http.post(path, json=settle, headers=headers)).is_success
    assert (await http.get("/payment-provider/no-such-route")).status_code == 404
    assert (await http.get(f"/nothing/{payment}")).status_code == 404
    assert (await http.delete("/payment-provider/payments")).status_code == 405
    assert (await http.request("BREW", "/health/live")).status_code == 405
    answer = await http.get("/metrics")
    after = parse(answer.text)

    def counted(method: str, route: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        return value(after, "http_requests_total", **labels) - value(
            before, "http_requests_total", **labels
        )

    settlements = "/payment-provider/payments/{payment_id}/settlements"
    assert counted("POST", "/payment-provider/payments", "200") == 1
    assert counted("POST", settlements, "200") == 1
    assert counted("GET", "unmatched", "404") == 2
    assert counted("DELETE", "/payment-provider/payments", "405") == 1
    assert counted("other", "/health/live", "405") == 1
    durations = value(
        after, "http_request_duration_seconds_count", method="POST", route=settlements
    ) - value(before, "http_request_duration_seconds_count", method="POST", route=settlements)
    assert durations == 1
    assert payment not in answer.text  # no id ever becomes a label


# ----------------------------------------------------------------------------- database gauges


async def _review(services: Services, merchant: MerchantCredentials) -> None:
    found = await services.merchants.by_name(merchant.name)
    assert found is not None
    async with services.database.writer() as session:
        session.add(
            AntifraudAnalysis(
                merchant_id=found.id,
                transaction_id=uuid.uuid4().hex,
                tid=uuid.uuid4().hex,
                status="undefined",
                analysis_type="manual",
                score=60,
                responses={},
                amount_minor=1000,
                currency="BRL",
                deadline=utcnow() + timedelta(hours=1),
            )
        )


async def _outbox(services: Services, kind: str, age: timedelta, status: str = "pending") -> None:
    created = utcnow() - age
    async with services.database.writer() as session:
        await OutboxRepository(session).enqueue(
            kind=kind,
            url="https://x.example.com/cb",
            payload={},
            available_at=created,
            deadline=created + timedelta(days=1),
        )
        if status != "pending":
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.kind == kind).values(status=status)
            )


async def test_database_gauges_count_what_waits(
    http: httpx.AsyncClient, services: Services, merchant: MerchantCredentials
) -> None:
    pending = payloads.create_payment(card_number=payloads.ASYNC_APPROVED_CARD)
    answer = await http.post("/payment-provider/payments", json=pending, headers=merchant.headers)
    assert answer.json()["status"] == "undefined"
    approved = payloads.create_payment()
    await http.post("/payment-provider/payments", json=approved, headers=merchant.headers)
    await _outbox(services, "payment_callback", timedelta(seconds=120))
    await _outbox(services, "payment_callback", timedelta(seconds=5))
    await _outbox(services, "antifraud_hook", timedelta(days=2), status="dead")
    await _review(services, merchant)
    found = await services.merchants.by_name(merchant.name)
    assert found is not None
    card = await services.giftcards.issue(found, IssueOrder(amount=Decimal(100)), actor="test")
    hold = await http.post(
        f"/giftcard/giftcards/{card.card.card_id}/transactions",
        json={
            "operation": "Debit",
            "value": 10,
            "redemptionToken": card.card.redemption_token,
            "redemptionCode": card.redemption_code,
            "requestId": "debit-1",
        },
        headers={
            "X-PROVIDER-API-AppKey": merchant.app_key,
            "X-PROVIDER-API-AppToken": merchant.app_token,
        },
    )
    assert hold.status_code == 200, hold.text

    answer = await http.get("/metrics")
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(answer.text)
    assert value(samples, "connector_database_up") == 1
    assert value(samples, "connector_build_info", version="0.1.0") == 1
    assert value(samples, "connector_payments", status="pending") == 1
    assert ("connector_payments", frozenset({("status", "received")})) in samples
    assert value(samples, "connector_payments", status="received") == 0
    assert value(samples, "connector_outbox_pending", kind="payment_callback") == 2
    assert value(samples, "connector_outbox_pending", kind="antifraud_hook") == 0
    age = value(samples, "connector_outbox_oldest_pending_age_seconds", kind="payment_callback")
    assert 120 <= age < 180
    assert value(samples, "connector_outbox_oldest_pending_age_seconds", kind="antifraud_hook") == 0
    assert value(samples, "connector_outbox_dead_letters", kind="antifraud_hook") == 1
    assert value(samples, "connector_outbox_dead_letters", kind="payment_callback") == 0
    assert value(samples, "connector_giftcard_open_holds") == 1
    assert value(samples, "connector_antifraud_reviews_waiting") == 1


async def test_a_scrape_answers_without_the_database_gauges_when_the_database_hangs(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    @asynccontextmanager
    async def hanging() -> AsyncIterator[None]:
        await asyncio.sleep(60)
        yield

    monkeypatch.setattr(metrics, "DATABASE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(services.database, "reader", hanging)
    samples = await scrape(http)
    assert value(samples, "connector_database_up") == 0
    assert not any(name == "connector_payments" for name, _ in samples)
    assert any(name == "http_requests_total" for name, _ in samples)  # the process metrics


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": "s3cret"}], indirect=True)
async def test_the_metrics_token_closes_metrics_to_callers_without_it(
    http: httpx.AsyncClient,
) -> None:
    for authorization in (None, "Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cret2"):
        headers = {} if authorization is None else {"Authorization": authorization}
        answer = await http.get("/metrics", headers=headers)
        assert answer.status_code == 401, authorization
        assert answer.json() == {
            "status": "error",
            "code": "invalid-metrics-token",
            "message": "missing or wrong metrics bearer token",
        }
    for authorization in ("Bearer s3cret", "bearer  s3cret "):  # as the admin token is read
        answer = await http.get("/metrics", headers={"Authorization": authorization})
        assert answer.status_code == 200 and "connector_database_up" in answer.text
    assert (await http.get("/health/live")).status_code == 200  # probes stay open


# ----------------------------------------------------------------------------- acquirer calls


class FakeAcquirer:
    name = "fake"

    def __init__(self) -> None:
        self.next: Callable[[], Awaitable[Any]] | None = None

    async def _answer(self, default: Any) -> Any:
        return default if self.next is None else await self.next()

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        result: AuthorizationResult = await self._answer(_result(AuthorizationOutcome.APPROVED))
        return result

    async def capture(self, request: OperationRequest) -> OperationResult:
        return OperationResult(True, "c", None, None)

    async def refund(self, request: OperationRequest) -> OperationResult:
        return OperationResult(False, None, "no", "refused")

    async def void(self, request: OperationRequest) -> OperationResult:
        return OperationResult(True, "v", None, None)

    async def inbound(self, action: str, authorization_key: str, body: str) -> InboundAnswer | None:
        return None if action == "unknown" else InboundAnswer(200, "application/json", "{}")

    async def query(self, idempotency_key: str) -> AuthorizationResult | None:
        return None

    async def query_operation(self, idempotency_key: str) -> OperationResult | None:
        return OperationResult(True, "c", None, None)


def _result(outcome: AuthorizationOutcome) -> AuthorizationResult:
    return AuthorizationResult(outcome, "A", "N", "0000", "ok")


async def test_every_acquirer_call_is_observed_with_its_outcome() -> None:
    seen: list[tuple[str, str, str]] = []
    fake = FakeAcquirer()
    acquirer = ObservedAcquirer(fake, lambda a, op, outcome, s: seen.append((a, op, outcome)))
    authorization = AuthorizationRequest("k", 100, "BRL", "Visa", 1, None, False)
    operation = OperationRequest("k2", "k", 100, "BRL")

    await acquirer.authorize(authorization)
    for outcome in (AuthorizationOutcome.DENIED, AuthorizationOutcome.PENDING):

        async def decided(outcome: AuthorizationOutcome = outcome) -> AuthorizationResult:
            return _result(outcome)

        fake.next = decided
        await acquirer.authorize(authorization)

    async def unavailable() -> None:
        raise AcquirerUnavailable("down", acquirer="fake")

    async def slow() -> None:
        await asyncio.sleep(10)

    async def broken() -> None:
        raise RuntimeError("bug")

    fake.next = unavailable
    with pytest.raises(AcquirerUnavailable):
        await acquirer.authorize(authorization)
    fake.next = slow
    with pytest.raises(TimeoutError):  # cut short as connector.payments.common.Budget does
        await asyncio.wait_for(acquirer.authorize(authorization), 0.05)
    fake.next = broken
    with pytest.raises(RuntimeError):
        await acquirer.authorize(authorization)
    await acquirer.capture(operation)
    await acquirer.refund(operation)
    await acquirer.void(operation)
    await acquirer.inbound("status", "k", "{}")
    await acquirer.inbound("unknown", "k", "{}")
    await acquirer.query("k")
    await acquirer.query_operation("k2")

    assert acquirer.name == "fake"
    assert [(op, outcome) for _, op, outcome in seen] == [
        ("authorize", "approved"),
        ("authorize", "denied"),
        ("authorize", "pending"),
        ("authorize", "unavailable"),
        ("authorize", "timeout"),
        ("authorize", "error"),
        ("capture", "succeeded"),
        ("refund", "refused"),
        ("void", "succeeded"),
        ("inbound", "answered"),
        ("inbound", "no-action"),
        ("query", "unknown"),
        ("query_operation", "found"),
    ]


async def test_the_services_acquirer_calls_reach_the_histogram(
    http: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    before = await scrape(http)
    for card in (payloads.APPROVED_CARD, payloads.DENIED_CARD):
        body = payloads.create_payment(card_number=card)
        await http.post("/payment-provider/payments", json=body, headers=merchant.headers)
    after = await scrape(http)
    name = "connector_acquirer_request_duration_seconds_count"
    for outcome in ("approved", "denied"):
        labels = {"acquirer": "sandbox", "operation": "authorize", "outcome": outcome}
        assert value(after, name, **labels) - value(before, name, **labels) == 1


# ----------------------------------------------------------------------------- callbacks


async def test_callback_deliveries_are_counted_by_kind_and_outcome(services: Services) -> None:
    def receiver(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.url.host == "ok.example.com" else 500)

    now = utcnow()
    async with services.database.writer() as session:
        for url, deadline in (
            ("https://ok.example.com/cb", now + timedelta(hours=1)),
            ("https://down.example.com/cb", now + timedelta(hours=1)),
            ("https://down.example.com/late", now),
        ):
            await OutboxRepository(session).enqueue(
                kind="payment_callback", url=url, payload={}, available_at=now, deadline=deadline
            )

    def count(outcome: str) -> float:
        labels = {"kind": "payment_callback", "outcome": outcome}
        return REGISTRY.get_sample_value("connector_callback_deliveries_total", labels) or 0.0

    before = {outcome: count(outcome) for outcome in ("delivered", "retry", "dead")}
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        assert await Dispatcher(services.database, services.settings, client).dispatch_once() == 3
    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "delivered": 1,
        "retry": 1,
        "dead": 1,
    }


# ----------------------------------------------------------------------------- worker endpoint


async def test_the_workers_metrics_endpoint_takes_the_same_token() -> None:
    port = free_port()
    server = metrics.start_metrics_server("127.0.0.1", port, SecretStr("tok"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            refused = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            served = await client.get("/metrics", headers={"Authorization": "Bearer tok"})
            elsewhere = await client.get("/", headers={"Authorization": "Bearer tok"})
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
    assert refused.status_code == wrong.status_code == 401
    assert refused.json()["code"] == "invalid-metrics-token"
    assert served.status_code == 200
    assert "connector_callback_deliveries_total" in served.text
    assert elsewhere.status_code == 404


# ----------------------------------------------------------------------------- several workers


def _serve(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "serve", *args], env=env, cwd=cwd
    )


@pytest.mark.slow
async def test_several_workers_share_their_counters_and_not_the_database_gauges(
    database_url: str, is_postgres: bool, services: Services, tmp_path: Path
) -> None:
    if not is_postgres:
        pytest.skip("SQLite has one writer: serve allows one worker on it")
    for _ in range(3):
        await _outbox(services, "payment_callback", timedelta(seconds=1))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {
        **os.environ,
        "CONNECTOR_DATABASE_URL": database_url,
        "CONNECTOR_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "CONNECTOR_RUN_BACKGROUND_WORKERS": "false",
        "CONNECTOR_LOG_LEVEL": "WARNING",
        "TMPDIR": str(temporary),
    }
    env.pop(metrics.MULTIPROC_ENV, None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(env, tmp_path, "--port", str(port), "--workers", "2")
    try:
        await asyncio.to_thread(wait_ready, url, server)
        (directory,) = temporary.iterdir()  # PROMETHEUS_MULTIPROC_DIR, made by serve
        sent = 40
        for _ in range(sent):  # a new connection each: the two workers share them
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{url}/health/live")).status_code == 200
        counts = set()
        for _ in range(6):
            async with httpx.AsyncClient() as client:
                samples = parse((await client.get(f"{url}/metrics")).text)
            labels = {"method": "GET", "route": "/health/live", "status": "200"}
            counts.add(value(samples, "http_requests_total", **labels))
            assert value(samples, "connector_outbox_pending", kind="payment_callback") == 3
        assert counts == {sent}  # whichever worker answered, every worker's requests
        assert len(list(directory.glob("counter_*.db"))) == 2  # both workers served
        server.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait, 30) == 0
        assert list(temporary.iterdir()) == []  # serve removed its directory
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_defaults_json_logs_and_open_metrics() -> None:
    assert Settings.model_fields["log_format"].default == "json"
    assert Settings.model_fields["metrics_token"].default is None
