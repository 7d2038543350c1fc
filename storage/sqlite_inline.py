"""SQLite for the async engine without a thread hop per call.

SQLAlchemy's aiosqlite driver runs every SQLite call on a helper thread: each statement costs four
round trips (cursor, execute, fetch, close), each a queue put, a thread wake-up and a loop wake-up
(`call_soon_threadsafe`).  Measured on the bot's hot path that was about 75 µs of CPU per hop, some
0.3 ms per statement, while SQLite itself answers a keyed look-up in under 10 µs.  So this module
hands SQLAlchemy an object with aiosqlite's connection interface that runs the call right away on
the event loop's thread.

What keeps that safe:
- Within one process the writers already queue on `storage.db`'s asyncio write lock, so SQLite's
  own lock is free whenever a write transaction starts here; WAL readers never wait for writers.
- Another process (a second worker, `frontdesk` commands) can hold the write lock.  The inline call
  runs with a zero busy timeout, so it fails at once with SQLITE_BUSY instead of freezing the loop;
  that call is then repeated on a worker thread with the full busy timeout, and the loop goes on.
- With `synchronous=NORMAL` in WAL mode a commit does not wait for the disk; only the periodic
  checkpoint does (a few milliseconds, once per thousand pages written).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorname", "") == "SQLITE_BUSY" or "database is locked" in str(error)


class InlineSQLiteConnection:
    """The subset of `aiosqlite.Connection` that SQLAlchemy's aiosqlite dialect uses, run inline."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_s: float) -> None:
        self._conn = connection
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._tx = _InlineQueue(self)  # the dialect's isolation_level setter puts work here

    # -- running one call -----------------------------------------------------------------------
    async def _run(self, function: Callable[[], _T]) -> _T:
        try:
            return function()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        # Another process holds the lock: wait for it off the loop, as SQLite's busy handler would.
        return await asyncio.to_thread(self._run_waiting, function)

    def _run_waiting(self, function: Callable[[], _T]) -> _T:
        self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        try:
            return function()
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")

    # -- aiosqlite.Connection's interface -------------------------------------------------------
    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def cursor(self) -> InlineSQLiteCursor:
        return InlineSQLiteCursor(self, self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> InlineSQLiteCursor:
        cursor = await self.cursor()
        await cursor.execute(sql, parameters)
        return cursor

    async def commit(self) -> None:
        await self._run(self._conn.commit)

    async def rollback(self) -> None:
        await self._run(self._conn.rollback)

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


class InlineSQLiteCursor:
    """The subset of `aiosqlite.Cursor` that the dialect uses."""

    def __init__(self, connection: InlineSQLiteConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def execute(self, sql: str, parameters: Any = None) -> InlineSQLiteCursor:
        if parameters is None:
            await self._connection._run(lambda: self._cursor.execute(sql))
        else:
            await self._connection._run(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Any) -> InlineSQLiteCursor:
        rows = list(parameters)  # a generator could not be replayed after a busy retry
        await self._connection._run(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size) if size is not None else self._cursor.fetchmany()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _InlineQueue:
    """Stands in for aiosqlite's request queue: the dialect puts `(future, function)` pairs on it."""

    def __init__(self, connection: InlineSQLiteConnection) -> None:
        self._connection = connection

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as error:  # noqa: BLE001 - handed to the awaiting caller, as aiosqlite does
            future.set_exception(error)
        else:
            future.set_result(result)


def inline_connector(database: str, *, busy_timeout_s: float, uri: bool = False) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: opens `database` as an inline connection."""

    async def connect() -> InlineSQLiteConnection:
        # check_same_thread=False: a busy call is finished on a worker thread (one call at a time).
        connection = sqlite3.connect(database, timeout=0, uri=uri, check_same_thread=False)
        return InlineSQLiteConnection(connection, busy_timeout_s)

    return connect
