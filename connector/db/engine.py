"""Engines and transactions for both dialects.

SQLite (embedded default) allows one writer at a time. A transaction that reads and then writes
can fail with SQLITE_BUSY when another writer got in between, so writing transactions start with
`BEGIN IMMEDIATE` (take the write lock first) and read-only ones with a plain `BEGIN`. On
PostgreSQL both are ordinary transactions; row-level invariants come from constraints and
conditional updates in the repositories.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_engine(url: str, begin_statement: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module's legacy mode (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin_statement)

    return engine


class Database:
    """Owns the engines; `writer()` and `reader()` open one transaction each."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, "BEGIN")
        else:
            self.write_engine = create_async_engine(url, pool_size=10, max_overflow=20)
            self.read_engine = self.write_engine
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._sqlite_write_lock = asyncio.Lock() if self.is_sqlite else None
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncSession]:
        """One read-write transaction: committed on success, rolled back on any exception."""
        async with self._write_turn(), self._writer() as session, session.begin():
            yield session

    def _write_turn(self) -> AbstractAsyncContextManager[object]:
        """On SQLite, this process's writers queue for the one write lock in arrival order.
        Left to SQLite's busy handler they retry with back-off, newcomers overtake the early
        ones, and a burst of debits had multi-second tails (tests/load/bench_giftcards.py).
        Other processes still meet at the busy handler."""
        if self._sqlite_write_lock is None:
            return nullcontext()
        return self._sqlite_write_lock

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
