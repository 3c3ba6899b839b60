"""Alembic, driven from code: the URL comes from settings, never from an ini file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations (blocking; runs its own event loop inside env.py)."""
    command.upgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


class SchemaState(StrEnum):
    CURRENT = "current"  # at this release's head
    AHEAD = "ahead"  # at a revision this release does not know: a newer release migrated it
    BEHIND = "behind"  # at an older revision of this release: `connector migrate` is due
    EMPTY = "empty"  # never migrated


def schema_state(current: str | None) -> SchemaState:
    """Where a database at revision `current` stands for this release.

    A rollout migrates first (the migration Job), then replaces the pods: for a while the old
    release runs on the new schema. Migrations are written to allow that (expand, then contract
    a release later), so the old release keeps serving a schema that is ahead of it; only a
    schema that is behind, or absent, stops a process."""
    if current == head_revision():
        return SchemaState.CURRENT
    if current is None:
        return SchemaState.EMPTY
    known = {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    return SchemaState.BEHIND if current in known else SchemaState.AHEAD


def downgrade(database_url: str, revision: str) -> None:
    """Undo migrations down to `revision` ("base" removes every table)."""
    command.downgrade(alembic_config(database_url), revision)
