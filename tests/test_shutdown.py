"""`connector serve` and `connector worker` stop gracefully on SIGTERM (what Kubernetes sends).

serve: no new connection is accepted, every request in flight gets its whole answer and its
effect is in the database (the engine is disposed only after the last request), and the process
exits 0 within the grace period (`timeout_graceful_shutdown`, 20 s). worker: exits 0 at once.
Both run as real processes, on a SQLite file of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from homologation.local import free_port, wait_ready
from tests import payloads
from tests.conftest import ENCRYPTION_KEY

pytestmark = pytest.mark.slow

IN_FLIGHT = 6
GRACE_SECONDS = 20  # connector.cli.serve's timeout_graceful_shutdown


def _environment(directory: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONNECTOR_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'connector.db'}",
        "CONNECTOR_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "CONNECTOR_CALLBACK_ALLOWED_HOSTS": "*.example.com",
        **extra,
    }


def _connector(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _start(
    processes: list[subprocess.Popen[bytes]], env: dict[str, str], cwd: Path, *args: str
) -> subprocess.Popen[bytes]:
    log = (cwd / f"{args[0]}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    processes.append(process)
    return process


def _payments(database: Path) -> dict[str, str]:
    with sqlite3.connect(database) as connection:
        return dict(connection.execute("SELECT payment_id, status FROM payments").fetchall())


async def test_serve_answers_requests_in_flight_then_exits_0(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # Each authorization spends 1.5 s at the sandbox acquirer: SIGTERM arrives mid-call.
    env = _environment(tmp_path, CONNECTOR_SANDBOX_LATENCY_MS="1500")
    _connector(env, tmp_path, "migrate")
    merchant = json.loads(_connector(env, tmp_path, "merchants", "add", "acme"))
    headers = {"X-VTEX-API-AppKey": merchant["appKey"], "X-VTEX-API-AppToken": merchant["appToken"]}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(processes, env, tmp_path, "serve", "--port", str(port))
    await asyncio.to_thread(wait_ready, url, server)

    bodies = [payloads.create_payment() for _ in range(IN_FLIGHT)]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        in_flight = [
            asyncio.create_task(http.post("/payment-provider/payments", json=b, headers=headers))
            for b in bodies
        ]
        # Every payment row is written before its acquirer call: all are in flight now.
        deadline = time.monotonic() + 10
        while len(_payments(tmp_path / "connector.db")) < IN_FLIGHT:
            assert time.monotonic() < deadline, "the requests never reached the acquirer"
            await asyncio.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # the listening socket is closed at once
            async with httpx.AsyncClient(timeout=2) as late:
                await late.get(f"{url}/health/live")
        answers = await asyncio.gather(*in_flight)

    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json()["paymentId"] == body["paymentId"]
        assert answer.json()["status"] == "approved"
    code = await asyncio.to_thread(server.wait, GRACE_SECONDS + 10)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert time.monotonic() - signalled < GRACE_SECONDS
    assert _payments(tmp_path / "connector.db") == {b["paymentId"]: "approved" for b in bodies}
    log = (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


def test_worker_exits_0_promptly(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    env = _environment(tmp_path, CONNECTOR_OUTBOX_POLL_SECONDS="0.5")
    _connector(env, tmp_path, "migrate")
    port = free_port()
    worker = _start(processes, env, tmp_path, "worker", "--metrics-port", str(port))
    deadline = time.monotonic() + 30
    while True:  # its metrics endpoint answers once it runs
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, "the worker never started"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    time.sleep(0.5)  # its loops are running
    worker.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert worker.wait(timeout=10) == 0, (tmp_path / "worker.log").read_text()
    assert time.monotonic() - signalled < 3
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
