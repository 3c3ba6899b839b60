"""A production-shaped deployment on one machine, for fault tests: two `connector serve`
processes and a `connector worker` sharing one PostgreSQL, a fake provider core and a VTEX-side
callback receiver, each of which a test can kill, restart or take down.

The core and the receiver run in the test's own event loop, so that a test reads what they
recorded (`FakeAcquirer.effects`, `CallbackReceiver.received`) directly. The connector runs as
separate processes, exactly as deployed, so that `kill -9` is a real one.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import ENCRYPTION_KEY

VTEX_APP_KEY = "vtexappkey-faults"
VTEX_APP_TOKEN = "faults-app-token"
ACQUIRER_API_KEY = "faults-acquirer-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary directory), so that a test
    can crash and restart it without touching the machine's server other tests use."""

    directory: Path
    port: int
    bindir: Path

    @classmethod
    def available(cls) -> str | None:
        """Why one cannot be made here, or None."""
        if _postgres_bindir() is None:
            return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root without runuser: PostgreSQL refuses to run as root"
        return None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses root; its own account runs it
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            log = (self.directory / "server.log").read_text() if self.started_once else ""
            raise RuntimeError(f"{' '.join(args)} failed: {completed.stderr}\n{log[-2000:]}")

    started_once: bool = False

    @classmethod
    def create(cls) -> PrivatePostgres:
        """In a new directory of its own: pytest's are private to root, which PostgreSQL's
        account cannot enter. `remove()` deletes it."""
        bindir = _postgres_bindir()
        assert bindir is not None
        directory = Path(tempfile.mkdtemp(prefix="connector-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres")
        server = cls(directory, free_port(), bindir)
        server._run("initdb", "-D", str(directory), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return server

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.directory), "-l", str(self.directory / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started_once = True

    def crash(self) -> None:
        """Stops the server as a power cut would (no shutdown checkpoint): recovery on start."""
        self._run("pg_ctl", "-D", str(self.directory), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


# ----------------------------------------------------------------------------- callbacks


@dataclass
class Callback:
    at: float
    path: str
    body: dict[str, Any]


@dataclass
class CallbackReceiver:
    """VTEX's side of callbacks: records every POST, and can be down (port closed) for a while.
    One path per payment (`/callbacks/{paymentId}`) tells them apart."""

    port: int = field(default_factory=free_port)
    received: list[Callback] = field(default_factory=list)
    delay_seconds: float = 0.0  # a slow receiver keeps deliveries in flight
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, payment_id: str) -> str:
        return f"{self.base_url}/callbacks/{payment_id}?X-VTEX-signature=sig-{payment_id[:8]}"

    def for_payment(self, payment_id: str) -> list[Callback]:
        return [c for c in self.received if c.path == f"/callbacks/{payment_id}"]

    async def _receive(self, request: Request) -> Response:
        await asyncio.sleep(self.delay_seconds)
        try:
            body = await request.json()
        except ClientDisconnect:  # the sender died mid-request (a killed worker)
            return Response(status_code=400)
        self.received.append(Callback(time.monotonic(), request.url.path, body))
        return JSONResponse({"received": True})

    async def up(self) -> None:
        app = Starlette(routes=[Route("/callbacks/{payment_id}", self._receive, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def down(self) -> None:
        """Closes the port: deliveries meet `connection refused`, as with a receiver down."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


# ----------------------------------------------------------------------------- the connector


@dataclass
class Process:
    name: str
    args: list[str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    """Two serve processes (as behind a load balancer) and one worker on one database."""

    database_url: str
    acquirer_url: str
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)
    serves: list[Process] = field(default_factory=list)
    worker: Process | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONNECTOR_DATABASE_URL": self.database_url,
            "CONNECTOR_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "CONNECTOR_LOG_LEVEL": "INFO",
            "CONNECTOR_ACQUIRER": "http",
            "CONNECTOR_ACQUIRER_URL": self.acquirer_url,
            "CONNECTOR_ACQUIRER_API_KEY": ACQUIRER_API_KEY,
            "CONNECTOR_PAYMENT_METHODS": "Visa,Mastercard,BankInvoice",
            "CONNECTOR_CALLBACK_ALLOW_LOOPBACK": "true",
            "CONNECTOR_VTEX_APP_KEY": VTEX_APP_KEY,
            "CONNECTOR_VTEX_APP_TOKEN": VTEX_APP_TOKEN,
            # Production's timings, scaled down so that a test sees every recovery path in
            # seconds: the acquirer budget, when an attempt counts as abandoned, the callback
            # back-off, a dispatcher's lease.
            "CONNECTOR_ACQUIRER_TIMEOUT_SECONDS": "2",
            "CONNECTOR_TEST_SUITE_ACQUIRER_TIMEOUT_SECONDS": "1",
            "CONNECTOR_ATTEMPT_STALE_SECONDS": "4",
            "CONNECTOR_DUPLICATE_WAIT_SECONDS": "1",
            "CONNECTOR_CALLBACK_DELAY_SECONDS": "0.2",
            "CONNECTOR_CALLBACK_BACKOFF_BASE_SECONDS": "0.2",
            "CONNECTOR_CALLBACK_BACKOFF_MAX_SECONDS": "2",
            "CONNECTOR_CALLBACK_TIMEOUT_SECONDS": "2",
            "CONNECTOR_OUTBOX_LEASE_SECONDS": "3",
            "CONNECTOR_OUTBOX_POLL_SECONDS": "0.2",
            "CONNECTOR_RECONCILE_INTERVAL_SECONDS": "0.5",
            "CONNECTOR_RECONCILE_MAX_INTERVAL_SECONDS": "2",
            **self.settings,
        }

    def cli(self, *args: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "connector.cli", *args],
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"connector {' '.join(args)} failed:\n{completed.stderr}")
        return completed.stdout

    def _spawn(self, process: Process, env: dict[str, str]) -> None:
        with process.log.open("ab") as log:
            process.popen = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", *process.args],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self, serves: int = 2) -> None:
        for index in range(serves):
            port = free_port()
            self.serves.append(
                Process(
                    f"serve-{index}",
                    ["serve", "--port", str(port)],
                    self.workdir / f"serve-{index}.log",
                    port,
                )
            )
        self.worker = Process("worker", ["worker"], self.workdir / "worker.log")
        for process in self.serves:
            await self.restart(process)
        await self.restart(self.worker)

    async def restart(self, process: Process) -> None:
        env = self.env()
        if process is not self.worker:
            env["CONNECTOR_RUN_BACKGROUND_WORKERS"] = "false"  # the worker does that work
        self._spawn(process, env)
        if process.port is not None:
            await wait_ready(process)
        else:
            await asyncio.sleep(0.5)
            assert process.running, f"{process.name} exited:\n{tail(process.log)}"

    def kill(self, process: Process) -> None:
        """`kill -9`: no shutdown, no cleanup, connections cut mid-request."""
        assert process.popen is not None
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait()

    def stop_all(self) -> None:
        processes = [*self.serves, *([self.worker] if self.worker else [])]
        for process in processes:
            if process.running:
                assert process.popen is not None
                process.popen.terminate()
        for process in processes:
            if process.popen is not None:
                try:
                    process.popen.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()

    def logs(self) -> str:
        processes = [*self.serves, *([self.worker] if self.worker else [])]
        return "\n".join(f"----- {p.name}\n{tail(p.log)}" for p in processes)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def wait_ready(process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if not process.running:
                raise RuntimeError(f"{process.name} exited:\n{tail(process.log)}")
            try:
                if (await client.get(f"{process.url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{process.name} not ready after {timeout} s:\n{tail(process.log)}")


@asynccontextmanager
async def running_receiver() -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    await receiver.up()
    try:
        yield receiver
    finally:
        await receiver.down()
