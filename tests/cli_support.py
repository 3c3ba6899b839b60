"""Running `connector ...` commands in tests, as from a shell, against the test's database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.cli import main
from tests.conftest import ENCRYPTION_KEY


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The environment a command reads its settings from: this test's database and key."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", database_url)
    monkeypatch.setenv("CONNECTOR_ENCRYPTION_KEYS", ENCRYPTION_KEY)
    return tmp_path


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command in a thread: it runs its own event loop, as from a shell."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
