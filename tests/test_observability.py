"""Logs, request ids and health probes.

- The configured handler writes one JSON object per line (timestamp, level, logger, message,
  request id, extra fields, exception), or text; card data is masked in the message, its
  arguments, `extra=` fields (nested too), exception tracebacks and stacks, in what the handler
  actually writes and in what any other handler (pytest's) receives.
- Every request gets an id (the caller's `X-Request-Id` when it is a sane token), echoed on the
  answer, even a 500, and stamped on every record logged while it is served; one access line per
  request names the route template, never the path or its query string.
- `/health/ready` answers 503 with a reason when the schema is behind, the database is
  unreachable or hangs (within its 2 s bound); `/health/live` needs nothing. Each answer is the
  one `openapi.yaml` documents.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

import connector.app as app_module
from connector.app import Services, create_app
from connector.db.migrate import upgrade
from connector.observability import configure_logging
from connector.observability.logs import REQUEST_ID
from homologation.local import free_port
from tests import payloads
from tests.conftest import MerchantCredentials, make_settings
from tests.schemathesis_support import operations_by_id

PANS = ("4444333322221111", "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111")
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the handler `configure_logging` installs writes, JSON; removed afterwards."""
    output = io.StringIO()
    configure_logging("DEBUG", "json", stream=output)
    yield output
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "connector"]:
        root.removeHandler(handler)


def _records(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


# ----------------------------------------------------------------------------- masking


def test_card_data_is_masked_in_every_part_of_a_json_line(
    json_lines: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("connector.test")
    log.warning("card 4444333322221111 declined")
    log.warning("card %s, %s", "4111 1111 1111 1111", '{"csc": "123", "number": "x"}')
    log.warning(
        "with extra",
        extra={
            "card_number": "4111-1111-1111-1111",
            "cvv": "123",
            "pan": 4111111111111111,
            "payload": {"card": {"number": "4444333322221111", "csc": "987"}, "n": [PANS[0]]},
        },
    )
    try:
        raise ValueError("card 4444333322221111 refused")
    except ValueError:
        log.exception("authorization failed for %s", "4111111111111111")
    log.warning("where", stack_info=True, extra={"note": "4444 3333 2222 1111"})

    output = json_lines.getvalue()
    for pan in PANS:
        assert pan not in output
        assert pan not in caplog.text  # what another handler (pytest's) received
    assert '"csc": "123"' not in caplog.text and "987" not in output

    message, args, extra, exception, stack = _records(json_lines)
    assert message["message"] == "card 444433******1111 declined"
    assert args["message"] == 'card 411111******1111, {"csc": "***", "number": "x"}'
    assert extra["card_number"] == "411111******1111"
    assert extra["cvv"] == "***"
    assert extra["pan"] == "411111******1111"
    assert extra["payload"] == {
        "card": {"number": "444433******1111", "csc": "***"},
        "n": ["444433******1111"],
    }
    assert exception["message"] == "authorization failed for 411111******1111"
    assert "ValueError: card 444433******1111 refused" in exception["exception"]
    assert "Traceback (most recent call last)" in exception["exception"]
    assert "ValueError: card 444433******1111 refused" in caplog.text
    assert stack["note"] == "444433******1111" and "test_observability.py" in stack["stack"]


def test_a_json_line_has_the_documented_fields(json_lines: io.StringIO) -> None:
    token = REQUEST_ID.set("req-42")
    try:
        logging.getLogger("connector.test").info("hello %s", "world", extra={"paymentId": "P1"})
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("connector.test").info("outside a request")
    inside, outside = _records(json_lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", inside["timestamp"])
    assert inside | {"timestamp": "t", "pid": 1} == {
        "timestamp": "t",
        "level": "INFO",
        "logger": "connector.test",
        "pid": 1,
        "message": "hello world",
        "request_id": "req-42",
        "paymentId": "P1",
    }
    assert "request_id" not in outside


def test_text_lines_are_masked_too() -> None:
    output = io.StringIO()
    configure_logging("INFO", "text", stream=output)
    try:
        token = REQUEST_ID.set("req-7")
        try:
            raise RuntimeError("pan 4444333322221111")
        except RuntimeError:
            logging.getLogger("connector.test").exception("card %s", "4111 1111 1111 1111")
        finally:
            REQUEST_ID.reset(token)
    finally:
        configure_logging("INFO", "json")  # puts back no handler of ours under pytest
    first, *traceback = output.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR connector.test \[req-7\] "
        r"card 411111\*{6}1111",
        first,
    )
    assert traceback[-1] == "RuntimeError: pan 444433******1111"


def test_a_message_with_bad_arguments_does_not_break_the_caller(json_lines: io.StringIO) -> None:
    """Making the record never raises (logging reports a bad message when a handler emits it,
    it must not fail the request that logged it)."""
    logger = logging.getLogger("connector.test")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "%d", ("x",), None)
    assert (record.msg, record.args) == ("%d", ("x",))


def test_uvicorn_logs_through_the_root_logger_and_its_access_log_is_off(
    json_lines: io.StringIO,
) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /?token=x HTTP/1.1" 200')
    (line,) = _records(json_lines)
    assert line["logger"] == "uvicorn.error" and line["message"] == "Started server process [1]"


# ----------------------------------------------------------------------------- request ids


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app (every prefix); a 500 comes back as an answer, as a server sends it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_callers_request_id_is_kept_echoed_and_logged(
    http: httpx.AsyncClient, merchant: MerchantCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    headers = {**merchant.headers, "X-Request-Id": "vtex-1.2_3"}
    answer = await http.post(
        "/payment-provider/payments", json=payloads.create_payment(), headers=headers
    )
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "vtex-1.2_3"
    stamped = [r for r in caplog.records if getattr(r, "request_id", None) == "vtex-1.2_3"]
    assert {r.name for r in stamped} >= {"connector.payments.service", "connector.access"}
    assert REQUEST_ID.get() is None  # nothing leaks out of the request


@pytest.mark.parametrize(
    "offered", [None, "", "a" * 129, "has space", "semi;colon", "ünïcode", "new\nline"]
)
async def test_an_insane_or_missing_request_id_is_replaced(
    http: httpx.AsyncClient, offered: str | None
) -> None:
    headers = {} if offered is None else {"X-Request-Id": offered.encode()}
    answers = [await http.get("/health/live", headers=headers) for _ in range(2)]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids), ids
    assert ids[0] != ids[1]


async def test_a_500_carries_the_request_id_and_its_error_log_too(
    http: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("the database melted")

    monkeypatch.setattr(services.merchants, "authenticate", broken)
    answer = await http.post(
        "/payment-provider/payments",
        json=payloads.create_payment(),
        headers={**merchant.headers, "X-Request-Id": "boom-1"},
    )
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "boom-1"
    (error,) = [r for r in caplog.records if r.name == "connector.app" and r.levelno >= 40]
    assert getattr(error, "request_id", None) == "boom-1"
    assert "RuntimeError: the database melted" in (error.exc_text or "")
    (access,) = [r for r in caplog.records if r.name == "connector.access"]
    assert (access.status, access.route) == (500, "/payment-provider/payments")  # type: ignore[attr-defined]


async def test_one_access_line_per_request_with_the_route_and_never_the_query(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await http.get("/payment-provider/manifest?X-VTEX-signature=s3cr3t&token=t0k3n")
    await http.get("/sandbox/pay/capability-key-123")
    await http.get("/health/live")  # a probe that succeeds is not logged
    await http.get("/no/such/path")
    access = [r for r in caplog.records if r.name == "connector.access"]
    assert [(r.method, r.route, r.status) for r in access] == [  # type: ignore[attr-defined]
        ("GET", "/payment-provider/manifest", 200),
        ("GET", "/sandbox/pay/{key}", 404),
        ("GET", "unmatched", 404),
    ]
    assert all(isinstance(r.duration_ms, float) for r in access)  # type: ignore[attr-defined]
    assert "s3cr3t" not in caplog.text and "t0k3n" not in caplog.text
    assert "capability-key-123" not in " ".join(r.getMessage() for r in access)


# ----------------------------------------------------------------------------- health


async def test_ready_and_live_answer_200(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health/live")).json() == {"status": "ok"}
    ready = await http.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


async def test_ready_is_503_when_the_schema_is_behind(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    await asyncio.to_thread(upgrade, url)
    app = create_app(make_settings(url))
    async with app.router.lifespan_context(app):
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        finally:
            await engine.dispose()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            answer = await client.get("/health/ready")
            live = await client.get("/health/live")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    assert "at 0004" in answer.json()["reason"] and "connector migrate" in answer.json()["reason"]
    assert live.status_code == 200  # a process that runs is alive whatever its database does


async def test_ready_is_503_when_the_database_is_unreachable(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = create_async_engine(f"postgresql+asyncpg://connector@127.0.0.1:{free_port()}/x")
    monkeypatch.setattr(services.database, "read_engine", nowhere)
    try:
        started = time.monotonic()
        answer = await http.get("/health/ready")
    finally:
        await nowhere.dispose()
    assert answer.status_code == 503 and answer.json()["status"] == "unavailable"
    assert "connect" in answer.json()["reason"].lower()
    assert time.monotonic() - started < app_module.READY_TIMEOUT_SECONDS + 1


async def test_ready_answers_503_in_bounded_time_when_the_database_hangs(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert app_module.READY_TIMEOUT_SECONDS <= 2  # what a probe's own timeout can rely on

    async def hangs(engine: object) -> str:
        await asyncio.sleep(60)
        return "never"

    monkeypatch.setattr(app_module, "current_revision", hangs)
    monkeypatch.setattr(app_module, "READY_TIMEOUT_SECONDS", 0.3)
    started = time.monotonic()
    answer = await http.get("/health/ready")
    assert time.monotonic() - started < 2
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "reason": "the database did not answer within 0.3 s",
    }


# ----------------------------------------------------------------------------- the document

MONITORING = schemathesis.openapi.from_path(OPENAPI_PATH).include(tag="Monitoring")
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def test_probe_and_metrics_answers_are_the_documented_ones(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    operations = operations_by_id(MONITORING)
    assert set(operations) == {"getLiveness", "getReadiness", "getMetrics"}
    seen: set[tuple[str, int]] = set()

    async def check(operation_id: str, headers: dict[str, str] | None = None) -> None:
        operation = operations[operation_id]
        answer = await http.get(operation.path, headers=headers)
        operation.Case().validate_response(answer, checks=CHECKS)
        seen.add((operation_id, answer.status_code))

    await check("getLiveness")
    await check("getReadiness")
    await check("getMetrics")
    empty = create_async_engine("sqlite+aiosqlite:///:memory:")
    monkeypatch.setattr(services.database, "read_engine", empty)
    try:
        await check("getReadiness")  # 503: an empty database has no schema
    finally:
        await empty.dispose()
    token = SecretStr("t")
    monkeypatch.setattr(
        services, "settings", services.settings.model_copy(update={"metrics_token": token})
    )
    await check("getMetrics", {"Authorization": "Bearer wrong"})
    assert seen == {
        ("getLiveness", 200),
        ("getReadiness", 200),
        ("getReadiness", 503),
        ("getMetrics", 200),
        ("getMetrics", 401),
    }
