"""The `connector` command: merchants, migrations, keys."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connector.cli import main
from tests.conftest import ENCRYPTION_KEY


@pytest.fixture
def environment(migrated_database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> str:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", migrated_database)
    monkeypatch.setenv("CONNECTOR_ENCRYPTION_KEYS", ENCRYPTION_KEY)
    return migrated_database


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_merchants_add_list_rotate(environment: str, capsys: pytest.CaptureFixture[str]):
    name = f"shop-{uuid.uuid4().hex[:8]}"
    code, out = run(capsys, "merchants", "add", name)
    assert code == 0
    issued = json.loads(out)
    assert issued["name"] == name and issued["appKey"] and len(issued["appToken"]) >= 32

    code, out = run(capsys, "merchants", "list")
    listed = {m["name"]: m for m in json.loads(out)}
    assert listed[name]["appKey"] == issued["appKey"] and "appToken" not in listed[name]

    code, out = run(capsys, "merchants", "rotate-token", name)
    rotated = json.loads(out)
    assert rotated["appKey"] == issued["appKey"] and rotated["appToken"] != issued["appToken"]


def test_merchants_add_with_given_credentials(environment: str, capsys: pytest.CaptureFixture[str]):
    name, key = f"given-{uuid.uuid4().hex[:8]}", f"key-{uuid.uuid4().hex}"
    code, out = run(capsys, "merchants", "add", name, "--app-key", key, "--app-token", "tok")
    assert code == 0 and json.loads(out) == {"name": name, "appKey": key, "appToken": "tok"}
    code = main(["merchants", "add", name])
    assert code == 1
    assert "exists" in capsys.readouterr().err


def test_rotate_unknown_merchant_fails_cleanly(
    environment: str, capsys: pytest.CaptureFixture[str]
):
    assert main(["merchants", "rotate-token", "nobody-here"]) == 1
    assert "no merchant" in capsys.readouterr().err


def test_demo_merchant_gets_fresh_credentials_each_time(
    environment: str, capsys: pytest.CaptureFixture[str]
):
    name = f"demo-{uuid.uuid4().hex[:8]}"
    first = json.loads(run(capsys, "merchants", "demo", "--name", name)[1])
    second = json.loads(run(capsys, "merchants", "demo", "--name", name)[1])
    assert first["appKey"] == second["appKey"] and first["appToken"] != second["appToken"]


def test_keys_generate_prints_a_usable_key(capsys: pytest.CaptureFixture[str]):
    from cryptography.fernet import Fernet

    code, out = run(capsys, "keys", "generate")
    assert code == 0
    Fernet(out.strip().encode())


def test_migrate_is_idempotent_and_reversible(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", url)
    assert run(capsys, "migrate")[0] == 0
    assert run(capsys, "migrate")[0] == 0
    from connector.db.migrate import downgrade

    downgrade(url, "base")

    import asyncio

    async def tables() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT name FROM sqlite_master"))
            names = {row[0] for row in rows}
        await engine.dispose()
        return names

    assert "payments" not in asyncio.run(tables())
    assert run(capsys, "migrate")[0] == 0
    assert "payments" in asyncio.run(tables())
