"""The migrations build exactly what the table models describe, on SQLite and PostgreSQL: a
model changed without a migration (or the reverse) fails here, not in production."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from connector.db.tables import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(migrated_database: str) -> None:
    engine = create_async_engine(migrated_database)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []


def test_a_schema_is_current_ahead_behind_or_empty() -> None:
    from connector.db.migrate import SchemaState, head_revision, schema_state

    assert schema_state(head_revision()) is SchemaState.CURRENT
    assert schema_state(None) is SchemaState.EMPTY
    assert schema_state("0001") is SchemaState.BEHIND
    # A revision this release has never heard of was written by a newer release.
    assert schema_state("0099") is SchemaState.AHEAD
