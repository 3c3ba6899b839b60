"""Several `connector worker` processes deliver each callback once; a killed one loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.app import Services
from connector.db.tables import OutboxMessage, utcnow
from connector.outbox.repository import OutboxRepository
from tests.conftest import ENCRYPTION_KEY
from tests.receiver import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def start_worker(
    database_url: str, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(**settings: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "CONNECTOR_DATABASE_URL": database_url,
            "CONNECTOR_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "CONNECTOR_CALLBACK_ALLOW_LOOPBACK": "true",
            "CONNECTOR_OUTBOX_POLL_SECONDS": "0.05",
            "CONNECTOR_LOG_LEVEL": "WARNING",
            **{f"CONNECTOR_{key.upper()}": value for key, value in settings.items()},
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "worker"], env=env, cwd=tmp_path
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


async def enqueue(services: Services, receiver: Receiver, count: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(count)]
    now = utcnow()
    async with services.database.writer() as session:
        repository = OutboxRepository(session)
        for marker in ids:
            await repository.enqueue(
                kind="payment_callback",
                payment_pk=None,
                url=receiver.url(f"/cb?X-VTEX-signature={marker}"),
                payload={"paymentId": marker, "status": "approved"},
                available_at=now,
                deadline=now + timedelta(hours=1),
            )
    return ids


async def statuses(services: Services, settle_within: float = 5) -> Counter[str]:
    """Row statuses once nothing is pending any more (or after `settle_within` seconds): the
    receiver records a callback a moment before the worker hears the 2xx and marks it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_within
    while True:
        async with services.database.reader() as session:
            found = Counter(m.status for m in await session.scalars(select(OutboxMessage)))
        if "pending" not in found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_three_workers_deliver_each_callback_exactly_once(
    services: Services,
    receiver: Receiver,
    start_worker: Callable[..., subprocess.Popen[bytes]],
):
    ids = await enqueue(services, receiver, 60)
    for _ in range(3):
        start_worker()
    received = await receiver.wait_for(60, timeout=30)
    await asyncio.sleep(0.5)
    delivered = Counter(r.body["paymentId"] for r in received)
    assert set(delivered) == set(ids) and max(delivered.values()) == 1
    assert receiver.attempts == 60
    assert await statuses(services) == {"delivered": 60}


async def test_a_worker_killed_mid_delivery_loses_nothing(
    services: Services,
    receiver: Receiver,
    start_worker: Callable[..., subprocess.Popen[bytes]],
):
    receiver.delay_seconds = 5  # the first worker is still waiting for the answer when it dies
    (marker,) = await enqueue(services, receiver, 1)
    first = start_worker(outbox_lease_seconds="1")
    while receiver.attempts == 0:
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    receiver.delay_seconds = 0
    start_worker(outbox_lease_seconds="1")
    (callback,) = await receiver.wait_for(1, timeout=20)
    assert callback.body["paymentId"] == marker
    assert receiver.attempts == 2
    assert await statuses(services) == {"delivered": 1}
