"""The service as the homologation suite sees it: a `connector serve` process on a fresh
database (SQLite and PostgreSQL), and deliberately broken builds of it."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from homologation.client import Target
from homologation.local import LocalService, free_port, local_service
from homologation.runner import RunOptions
from homologation.scenarios.base import Limits
from tests.conftest import _postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest) -> Iterator[LocalService]:
    if request.param == "sqlite":
        with local_service() as running:
            yield running
        return
    for url in _postgres_database():
        with local_service(url) as running:
            yield running


@pytest.fixture(scope="module")
def sqlite_service() -> Iterator[LocalService]:
    with local_service() as running:
        yield running


def options(service: LocalService, url: str | None = None, **overrides: Any) -> RunOptions:
    """Scenarios only (Schemathesis has tests of its own), against `url` (default: the service)."""
    target = Target(url or service.url, service.app_key, service.app_token)
    settings: dict[str, Any] = {
        "target": target,
        "callback_app_key": service.vtex_app_key,
        "fuzzing": None,
        **overrides,
    }
    return RunOptions(**settings)


# (method, path, request JSON, status, response JSON) -> the status and JSON to answer instead.
Rewrite = Callable[[str, str, Any, int, Any], tuple[int, Any]]


def serve_in_thread(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def broken(upstream: str, rewrite: Rewrite) -> Iterator[str]:
    """A broken build: the service at `upstream`, but for what `rewrite` changes in its JSON
    answers."""

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}
        }
        # The path as sent (percent-encoded), not as decoded: fuzzed paths hold anything.
        raw = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        target = upstream + raw.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.request(request.method, target, content=body, headers=headers)
        status, content = answer.status_code, answer.content
        if answer.headers.get("content-type", "").startswith("application/json"):
            try:
                sent = json.loads(body) if body else None
            except ValueError:
                sent = None
            status, changed = rewrite(
                request.method, request.url.path, sent, answer.status_code, answer.json()
            )
            content = json.dumps(changed).encode()
        passed = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in {"content-length", "content-encoding", "transfer-encoding"}
        }
        return Response(content, status, headers=passed)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    yield from serve_in_thread(Starlette(routes=[Route("/{path:path}", forward, methods=methods)]))


def new_tid_on_replay() -> Rewrite:
    """A connector that forgets it answered: a repeated payment gets a new tid."""
    seen: set[str] = set()

    def rewrite(method: str, path: str, sent: Any, status: int, answer: Any) -> tuple[int, Any]:
        if path.endswith("/payments") and status == 200 and isinstance(answer, dict):
            payment_id = str(answer.get("paymentId"))
            if payment_id in seen:
                return status, {**answer, "tid": f"TID-{secrets.token_hex(6).upper()}"}
            seen.add(payment_id)
        return status, answer

    return rewrite


def fast_limits() -> Limits:
    """Short waits, for builds whose callbacks never come."""
    return Limits(max_response_time=5.0, callback_timeout=4.0, hook_timeout=4.0)
