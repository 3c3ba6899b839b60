"""The service on a temporary database, for `make homologation` and the suite's own tests.

It runs `connector` as a separate process, exactly as a deployment would (the suite only ever
talks HTTP to it), on a fresh SQLite file by default or on a given database URL, with loopback
callbacks allowed so that the suite's receiver on 127.0.0.1 can be called.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

MERCHANT = "homologation"


@dataclass(frozen=True)
class LocalService:
    url: str
    app_key: str
    app_token: str
    admin_token: str
    database_url: str
    vtex_app_key: str  # the provider's key, sent on every callback and hook


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connector(args: list[str], env: Mapping[str, str], cwd: Path) -> str:
    completed = subprocess.run(  # noqa: S603 - our own CLI, arguments built here
        [sys.executable, "-m", "connector.cli", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"connector {' '.join(args)} failed:\n{completed.stderr}")
    return completed.stdout


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} was not ready after {timeout} s")


@contextmanager
def local_service(
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
) -> Iterator[LocalService]:
    """Migrate a database, add a merchant, serve on a free loopback port; stop on exit."""
    with tempfile.TemporaryDirectory(prefix="homologation-") as directory:
        workdir = Path(directory)
        database = database_url or f"sqlite+aiosqlite:///{workdir / 'connector.db'}"
        admin_token = secrets.token_urlsafe(32)
        vtex_app_key = f"vtexappkey-homologation-{secrets.token_hex(4)}"
        env = {
            **os.environ,
            "CONNECTOR_DATABASE_URL": database,
            "CONNECTOR_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CONNECTOR_BLIND_INDEX_KEY": secrets.token_urlsafe(32),
            "CONNECTOR_ADMIN_TOKEN": admin_token,
            "CONNECTOR_CALLBACK_ALLOW_LOOPBACK": "true",
            "CONNECTOR_VTEX_APP_KEY": vtex_app_key,
            "CONNECTOR_VTEX_APP_TOKEN": secrets.token_urlsafe(24),
            "CONNECTOR_REDIRECT_PAYMENT_METHODS": "RedirectPay",
            "CONNECTOR_PAYMENT_METHODS": "Visa,Mastercard,BankInvoice,Pix,RedirectPay",
            "CONNECTOR_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        _connector(["migrate"], env, workdir)
        issued = json.loads(_connector(["merchants", "add", MERCHANT], env, workdir))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env["CONNECTOR_PUBLIC_BASE_URL"] = url
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
        log = log_file.open("ab") if log_file is not None else subprocess.DEVNULL
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "connector.cli", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=log,
        )
        try:
            wait_ready(url, process)
            yield LocalService(
                url=url,
                app_key=issued["appKey"],
                app_token=issued["appToken"],
                admin_token=admin_token,
                database_url=database,
                vtex_app_key=vtex_app_key,
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if log_file is not None and hasattr(log, "close"):
                log.close()
