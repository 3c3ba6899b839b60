"""Fixtures: every test that touches the database runs on SQLite and on PostgreSQL.

PostgreSQL comes from CONNECTOR_TEST_POSTGRES_URL (default: the local server, database `test`);
each test session creates its own database there and drops it at the end. Without a reachable
server the PostgreSQL half skips, saying why, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from connector.app import Services, create_app
from connector.db.migrate import upgrade
from connector.settings import Settings
from tests.postgres import run_admin_statement

# `two_servers`: two `connector serve` processes on the test database; `environment`: settings
# for `connector ...` commands run in a test.
pytest_plugins = ["tests.servers", "tests.cli_support"]

POSTGRES_ADMIN_URL = os.environ.get(
    "CONNECTOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TABLES = (
    "giftcard_entries",
    "giftcard_operations",
    "giftcard_transactions",
    "giftcards",
    "outbox",
    "antifraud_analyses",
    "antifraud_subjects",
    "antifraud_rulesets",
    "payment_operations",
    "payments",
    "merchants",
    "sandbox_acquirer_calls",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ----------------------------------------------------------------------------- databases


async def _postgres_admin(statement: str) -> None:
    await run_admin_statement(POSTGRES_ADMIN_URL, statement)


def _postgres_database() -> Iterator[str]:
    name = f"connector_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # unreachable server, refused login, missing driver
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true requires it)")
        pytest.skip(reason)
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database URL for the whole session, one per backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "connector.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)
        yield url
        return
    for url in _postgres_database():
        upgrade(url)
        yield url


@pytest.fixture
async def database_url(migrated_database: str) -> AsyncIterator[str]:
    """The session's database, emptied before each test."""
    engine = create_async_engine(migrated_database)
    try:
        async with engine.begin() as connection:
            for table in TABLES:
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    finally:
        await engine.dispose()
    yield migrated_database


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def sqlite_file(database_url: str) -> Path:
    return Path(make_url(database_url).database or "")


# ----------------------------------------------------------------------------- the service

ENCRYPTION_KEY = Fernet.generate_key().decode()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "encryption_keys": [SecretStr(ENCRYPTION_KEY)],
        "acquirer_timeout_seconds": 2.0,
        "test_suite_acquirer_timeout_seconds": 2.0,
        "attempt_stale_seconds": 5.0,
        "duplicate_wait_seconds": 3.0,
        # Test payloads call back to example.com (never contacted: background workers are off
        # unless a test turns them on with a loopback receiver).
        "callback_allowed_hosts": ["*.example.com", "example.com"],
        "callback_allow_loopback": True,
        "run_background_workers": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# Short budgets for tests of timeouts and take-overs: an attempt is stale after 0.8 s.
FAST = {
    "acquirer_timeout_seconds": 0.5,
    "test_suite_acquirer_timeout_seconds": 0.5,
    "attempt_stale_seconds": 0.8,
    "duplicate_wait_seconds": 0.5,
}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for one test: `@pytest.mark.parametrize("settings_overrides", [...],
    indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def settings(database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    return make_settings(database_url, **settings_overrides)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def services(app: Starlette) -> Services:
    found: Services = app.state.services
    return found


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver/payment-provider"
    ) as http:
        yield http


@dataclass(frozen=True)
class MerchantCredentials:
    name: str
    app_key: str
    app_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-VTEX-API-AppKey": self.app_key, "X-VTEX-API-AppToken": self.app_token}


@pytest.fixture
async def merchant(services: Services) -> MerchantCredentials:
    issued = await services.merchants.add("acme")
    return MerchantCredentials(issued.name, issued.app_key, issued.app_token)


@pytest.fixture
async def other_merchant(services: Services) -> MerchantCredentials:
    issued = await services.merchants.add("globex")
    return MerchantCredentials(issued.name, issued.app_key, issued.app_token)
