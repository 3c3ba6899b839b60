"""Load benchmark for authorization: `POST /payment-provider/payments` against a real server.

What it measures
    For each database (SQLite and/or PostgreSQL) the script builds a throw-away deployment: a
    temporary SQLite file or a fresh PostgreSQL database, `connector migrate`, one merchant from
    `connector merchants add bench`, and `connector serve` as a subprocess on a free loopback
    port. After a warm-up it sends N create-payment requests, each with its own paymentId and the
    approved test card, from a closed-loop pool of C concurrent tasks sharing one keep-alive
    `httpx.AsyncClient`: every task sends its next request as soon as the previous one answered,
    so at most C requests are in flight and the server is never offered more than it can take.
    Every authorization is a real one: the merchant lookup, the encrypted payment row, the sandbox
    acquirer call and its audit row all hit the database.

How to read the table
    errors      requests that did not answer 200 with "status": "approved" (any non-zero value
                means the numbers below are not a clean measurement; sample bodies go to stderr)
    req/s       N divided by the wall-clock time of the measured phase (warm-up excluded)
    p50..max    per-request latency seen by the client (send to full response), in milliseconds;
                with a closed loop, latency is roughly C / throughput, so the percentiles show
                queueing inside the server (event loop, connection pool, SQLite's single writer)
    RSS MiB     resident memory of the server after the run, summed over its worker processes

    The load generator runs on the same machine as the server and competes with it for CPU;
    on a small machine the client can be a sizeable share of the cost, so compare runs made on
    the same machine with the same options, not absolute numbers across machines.

Usage
    python tests/load/bench_authorize.py [--database sqlite|postgresql ...] [--requests 2000]
        [--concurrency 32] [--workers 1] [--warmup 100] [--port 0] [--json]

PostgreSQL comes from CONNECTOR_BENCH_POSTGRES_URL (default: CONNECTOR_TEST_POSTGRES_URL, then
postgresql+asyncpg://postgres@127.0.0.1:5432/test); the script creates `bench_<random>` there
and drops it at the end. Everything it sends goes to 127.0.0.1, and it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
DATABASES = ("sqlite", "postgresql")
POSTGRES_ADMIN_URL = os.environ.get(
    "CONNECTOR_BENCH_POSTGRES_URL",
    os.environ.get(
        "CONNECTOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
)
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_ERROR_SAMPLES = 5
AUTHORIZE_PATH = "/payment-provider/payments"


class BenchmarkError(RuntimeError):
    """A step of the set-up failed; the message says which and why."""


class Skipped(Exception):
    """This database cannot be benchmarked here (e.g. PostgreSQL is unreachable)."""


# ----------------------------------------------------------------------------- results


@dataclass
class Sample:
    latency_seconds: float
    http_status: int  # 0 when no response arrived (connection error, timeout)
    payment_status: str | None


@dataclass
class Result:
    database: str
    workers: int
    concurrency: int
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rss_mib: float
    duration_seconds: float
    error_samples: list[str] = field(default_factory=list)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(
    database: str,
    args: argparse.Namespace,
    samples: list[Sample],
    duration: float,
    rss: int,
    error_samples: list[str],
) -> Result:
    latencies = sorted(sample.latency_seconds * 1000 for sample in samples)
    errors = sum(
        1 for sample in samples if sample.http_status != 200 or sample.payment_status != "approved"
    )
    return Result(
        database=database,
        workers=args.workers,
        concurrency=args.concurrency,
        requests=len(samples),
        errors=errors,
        throughput=len(samples) / duration if duration > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1],
        rss_mib=rss / 2**20,
        duration_seconds=duration,
        error_samples=error_samples,
    )


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def connector_command(*arguments: str) -> list[str]:
    """`connector ...` through this interpreter, so any virtualenv works."""
    return [sys.executable, "-m", "connector.cli", *arguments]


def run_connector(env: dict[str, str], cwd: Path, *arguments: str) -> str:
    completed = subprocess.run(
        connector_command(*arguments),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(
            f"`connector {' '.join(arguments)}` exited with {completed.returncode}:\n"
            f"{completed.stdout}{completed.stderr}"
        )
    return completed.stdout


def start_server(
    env: dict[str, str], cwd: Path, port: int, workers: int, log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        # Its own session: Ctrl-C reaches only this script, which then stops the server itself.
        return subprocess.Popen(
            connector_command(
                "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)
            ),
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn drains and stops its workers), SIGKILL to the group after a grace."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_GRACE_SECONDS)
    # Workers that outlived their parent share its process group; none should remain.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def log_tail(log_path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def wait_until_live(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, path: str = "/health/live"
) -> None:
    """Until `path` answers 200 (`/health/ready`: the server also sees the migrated schema)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last_problem = "no answer yet"
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchmarkError(
                    f"server exited with {process.returncode} during start-up:\n"
                    f"{log_tail(log_path)}"
                )
            try:
                response = client.get(path)
                if response.status_code == 200:
                    return
                last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as error:
                last_problem = repr(error)
            time.sleep(0.1)
    raise BenchmarkError(
        f"server not up ({path}) after {STARTUP_TIMEOUT_SECONDS:.0f} s ({last_problem}):\n"
        f"{log_tail(log_path)}"
    )


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: parse after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (the uvicorn supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of one process, 0 when it is gone or /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return 0


def server_rss_bytes(process: subprocess.Popen[bytes], workers: int) -> int:
    pids = process_tree(process.pid) if workers > 1 else [process.pid]
    return sum(rss_bytes(pid) for pid in pids)


# ----------------------------------------------------------------------------- databases


async def _postgres_admin(statement: str) -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.postgres import run_admin_statement

    await run_admin_statement(POSTGRES_ADMIN_URL, statement)


@contextlib.contextmanager
def database_url(database: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database of the given kind; PostgreSQL's is dropped on the way out."""
    if database == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(asyncio.wait_for(_postgres_admin(f'CREATE DATABASE "{name}"'), 10))
    except Exception as error:  # unreachable server, refused login, missing driver
        safe = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        raise Skipped(f"PostgreSQL not reachable at {safe}: {error!r}") from error
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as error:  # report, but never hide the benchmark's own outcome
            print(f"warning: could not drop database {name}: {error!r}", file=sys.stderr)


# ----------------------------------------------------------------------------- load


def load_payloads() -> ModuleType:
    """`tests.payloads`, importable whatever the current directory is."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("tests.payloads")


def build_bodies(count: int) -> list[bytes]:
    """Serialised create-payment bodies, each with a fresh paymentId, built before timing."""
    payloads = load_payloads()
    return [
        json.dumps(payloads.create_payment(card_number=payloads.APPROVED_CARD)).encode()
        for _ in range(count)
    ]


async def fire(
    client: httpx.AsyncClient, bodies: list[bytes], concurrency: int, error_samples: list[str]
) -> tuple[list[Sample], float]:
    """Send every body with `concurrency` closed-loop tasks; samples and wall-clock seconds."""
    samples: list[Sample] = []
    queue = iter(bodies)  # shared: each task takes the next body when its previous one answered

    async def one_loop() -> None:
        for body in queue:
            started = time.perf_counter()
            payment_status: str | None = None
            try:
                response = await client.post(AUTHORIZE_PATH, content=body)
                http_status = response.status_code
                try:
                    document: Any = response.json()
                    if isinstance(document, dict):
                        payment_status = document.get("status")
                except ValueError:
                    document = None
                elapsed = time.perf_counter() - started
                if (http_status != 200 or payment_status != "approved") and len(
                    error_samples
                ) < MAX_ERROR_SAMPLES:
                    error_samples.append(f"HTTP {http_status}: {response.text[:500]}")
            except httpx.HTTPError as error:
                elapsed = time.perf_counter() - started
                http_status = 0
                if len(error_samples) < MAX_ERROR_SAMPLES:
                    error_samples.append(f"no response: {error!r}")
            samples.append(Sample(elapsed, http_status, payment_status))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(bodies))):
            group.create_task(one_loop())
    return samples, time.perf_counter() - started


async def drive(
    base_url: str, credentials: dict[str, str], args: argparse.Namespace
) -> tuple[list[Sample], float, list[str]]:
    warmup_bodies = build_bodies(args.warmup)
    bodies = build_bodies(args.requests)
    headers = {
        "X-VTEX-API-AppKey": credentials["appKey"],
        "X-VTEX-API-AppToken": credentials["appToken"],
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        if warmup_bodies:
            warmup_errors: list[str] = []
            await fire(client, warmup_bodies, args.concurrency, warmup_errors)
            for sample in warmup_errors:
                print(f"warm-up error: {sample}", file=sys.stderr)
        error_samples: list[str] = []
        samples, duration = await fire(client, bodies, args.concurrency, error_samples)
    return samples, duration, error_samples


# ----------------------------------------------------------------------------- one run


def server_environment(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CONNECTOR_DATABASE_URL"] = url
    env["CONNECTOR_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    env["CONNECTOR_LOG_LEVEL"] = "WARNING"
    # The bodies call back to example.com; authorizations here are synchronous, so nothing is sent.
    env["CONNECTOR_CALLBACK_ALLOWED_HOSTS"] = "*.example.com"
    # Run from source too: the repository root first on the path (harmless when installed).
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


def benchmark(database: str, args: argparse.Namespace) -> Result:
    if database == "sqlite" and args.workers > 1:
        raise Skipped("SQLite has one writer: `connector serve` allows only 1 worker on it")
    with tempfile.TemporaryDirectory(prefix=f"bench-{database}-") as tmp:
        # The temporary directory is the working directory, so no `.env` of the checkout leaks in.
        workdir = Path(tmp)
        with database_url(database, workdir) as url:
            env = server_environment(url)
            run_connector(env, workdir, "migrate")
            credentials = json.loads(run_connector(env, workdir, "merchants", "add", "bench"))
            port = args.port or free_port()
            base_url = f"http://{HOST}:{port}"
            log_path = workdir / "server.log"
            process = start_server(env, workdir, port, args.workers, log_path)
            try:
                wait_until_live(process, base_url, log_path)
                samples, duration, error_samples = asyncio.run(drive(base_url, credentials, args))
                if process.poll() is not None:
                    raise BenchmarkError(
                        f"server exited with {process.returncode} during the run:\n"
                        f"{log_tail(log_path)}"
                    )
                rss = server_rss_bytes(process, args.workers)
            finally:
                stop_server(process)
            result = summarise(database, args, samples, duration, rss, error_samples)
            if result.errors:
                server_log = log_tail(log_path)
                if server_log.strip():
                    print(f"[{database}] server log (last lines):\n{server_log}", file=sys.stderr)
            return result


# ----------------------------------------------------------------------------- output

COLUMNS = (
    ("database", "{:<10}"),
    ("workers", "{:>7}"),
    ("conc", "{:>5}"),
    ("requests", "{:>8}"),
    ("errors", "{:>6}"),
    ("req/s", "{:>8}"),
    ("p50 ms", "{:>8}"),
    ("p95 ms", "{:>8}"),
    ("p99 ms", "{:>8}"),
    ("max ms", "{:>8}"),
    ("RSS MiB", "{:>8}"),
)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], text: int) -> str:
    """A plain-text table; the first `text` columns are left-aligned, the rest right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) if index < text else value.rjust(width)
            for index, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    header = line(headers)
    return "\n".join([header, "-" * len(header), *(line(row) for row in cells)])


def table_row(result: Result) -> str:
    values = (
        result.database,
        result.workers,
        result.concurrency,
        result.requests,
        result.errors,
        f"{result.throughput:.1f}",
        f"{result.p50_ms:.1f}",
        f"{result.p95_ms:.1f}",
        f"{result.p99_ms:.1f}",
        f"{result.max_ms:.1f}",
        f"{result.rss_mib:.1f}",
    )
    return "  ".join(fmt.format(value) for (_, fmt), value in zip(COLUMNS, values, strict=True))


def table_header() -> str:
    header = "  ".join(fmt.format(name) for name, fmt in COLUMNS)
    return f"{header}\n{'-' * len(header)}"


def machine_description() -> str:
    return (
        f"{os.cpu_count()} CPUs, {platform.platform()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Authorization throughput and latency against a local `connector serve`.",
    )
    parser.add_argument(
        "--database",
        action="append",
        choices=DATABASES,
        help="database to benchmark; repeat for several (default: both)",
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first")
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument("--json", action="store_true", help="one JSON object per database")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or not 0 <= args.port <= 65535:
        parser.error("--warmup must be >= 0 and --port between 0 and 65535")
    args.database = list(dict.fromkeys(args.database or DATABASES))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    machine, command = machine_description(), command_line()
    results: list[Result] = []
    failed = False
    for database in args.database:
        try:
            result = benchmark(database, args)
        except Skipped as reason:
            print(f"[{database}] skipped: {reason}", file=sys.stderr)
            if args.json:
                print(json.dumps({"database": database, "skipped": str(reason)}), flush=True)
            continue
        except BenchmarkError as error:
            print(f"[{database}] failed: {error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"database": database, "failed": str(error)}), flush=True)
            failed = True
            continue
        for sample in result.error_samples:
            print(f"[{database}] error: {sample}", file=sys.stderr)
        results.append(result)
        if args.json:
            document = asdict(result) | {"machine": machine, "command": command}
            print(json.dumps(document), flush=True)
    if not args.json:
        if results:
            print(table_header())
            for result in results:
                print(table_row(result))
        print(f"machine: {machine}")
        print(f"command: {command}")
    return 1 if failed or any(result.errors for result in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
