"""PostgreSQL administration shared by the test fixtures and the benchmarks."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def run_admin_statement(admin_url: str, statement: str) -> None:
    """CREATE or DROP DATABASE, which PostgreSQL refuses inside a transaction."""
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()
