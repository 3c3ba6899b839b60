"""Two `connector serve` processes sharing the test database, as behind a load balancer."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ENCRYPTION_KEY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} not ready after {timeout} s")


@pytest.fixture(scope="module")
def two_servers(
    migrated_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    tmp_path: Path = tmp_path_factory.mktemp("servers")
    env = {
        **os.environ,
        "CONNECTOR_DATABASE_URL": migrated_database,
        "CONNECTOR_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        # Slow enough that every duplicate arrives while the first authorization is in flight.
        "CONNECTOR_SANDBOX_LATENCY_MS": "300",
        "CONNECTOR_LOG_LEVEL": "WARNING",
        "CONNECTOR_CALLBACK_ALLOWED_HOSTS": "*.example.com",
        "CONNECTOR_RUN_BACKGROUND_WORKERS": "false",
    }
    processes, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "connector.cli", "serve", "--port", str(port)],
                    env=env,
                    cwd=tmp_path,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_ready(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


async def fire(
    urls: list[str], path: str, bodies: Sequence[dict[str, Any]], headers: dict[str, str]
) -> list[httpx.Response]:
    """POST every body at once, spread over the servers in turn."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await asyncio.gather(
            *(
                http.post(f"{urls[i % len(urls)]}{path}", json=body, headers=headers)
                for i, body in enumerate(bodies)
            )
        )
