"""The async engine and session factory, with the per-dialect settings that make concurrency safe.

SQLite: WAL, calls run on the loop's thread (`storage/sqlite_inline.py`), a busy timeout for other
processes, and `BEGIN IMMEDIATE` for every transaction, so concurrent writers queue on the database lock
instead of failing halfway with "database is locked".  Within one process the writers also queue on an
asyncio lock first: SQLite's busy handler waits by sleeping (1, 2, 5 … 100 ms), so twenty coroutines
racing for the lock left it idle most of the time; the asyncio queue hands it over at once.  Reads
(`Database.session`) begin a deferred transaction, which in WAL mode never waits for a writer.
PostgreSQL: asyncpg, READ COMMITTED, and row-level atomic updates in the actions.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from storage.sqlite_inline import inline_connector

SQLITE_BUSY_TIMEOUT_S = 30
# A pooled PostgreSQL connection idle for longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_S = 10.0
PREPARED_STATEMENT_CACHE_SIZE = 500  # per PostgreSQL connection (see make_engine)
_READ_ONLY = "frontdesk_read_only"  # execution option: this connection's transactions only read


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite://) and pick the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite+aiosqlite:///path.db "
            "or postgresql+asyncpg://user@host:5432/db"
        )
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url, **kwargs)
    # asyncpg prepares every statement once per connection and keeps 100 of them (SQLAlchemy's default).
    # The ingest lookups' IN lists render one statement per page size, so with the others they pushed
    # statements out of the cache, and each miss is a Parse/Describe round trip: keep more.
    parsed = make_url(url)
    if "prepared_statement_cache_size" not in parsed.query:
        url = parsed.update_query_dict({"prepared_statement_cache_size": str(PREPARED_STATEMENT_CACHE_SIZE)}) \
            .render_as_string(hide_password=False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    ping_after_idle_s = kwargs.pop("ping_after_idle_s", PING_AFTER_IDLE_S)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle_s)
    return engine


def _ping_when_idle(engine: AsyncEngine, after_s: float) -> None:
    """Ping a pooled connection before use only if it sat idle, instead of before every use.

    `pool_pre_ping` costs three round trips per transaction (BEGIN, the ping, ROLLBACK): under load that
    was 7% of the bot's CPU, spent on connections that had been in use a millisecond earlier.  A
    connection that waited in the pool (where a database restart, a failover or an idle timeout can
    kill it) is still checked, and a dead one is replaced before the caller sees it.  A connection
    that dies while busy fails that one transaction, as it would with pre-ping, and SQLAlchemy then
    drops the pool's other connections.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["frontdesk_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("frontdesk_idle_since")
        if idle_since is None or time.monotonic() - idle_since < after_s:
            return  # new, or just used
        try:
            dbapi_connection.ping()
        except Exception as error:  # noqa: BLE001 - any failure means: do not hand this connection out
            # The pool discards the connection and checks out another (SQLAlchemy's disconnect recipe).
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _make_sqlite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    database = parsed.database or ":memory:"
    uri = str(parsed.query.get("uri", "")).lower() in ("1", "true")
    if database != ":memory:" and not uri:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # SQLite calls run on the loop's thread (see storage/sqlite_inline.py), not aiosqlite's helper thread.
    connect = inline_connector(database, busy_timeout_s=SQLITE_BUSY_TIMEOUT_S, uri=uri)
    kwargs.setdefault("async_creator", connect)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN IMMEDIATE below is what runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


class _WriteLock:
    """An asyncio lock handed over in arrival order, except that `urgent` waiters go first.

    Recording what customers write is urgent (it is what a webhook request waits for, and nothing may be
    lost while the rest catches up); routing and delivery work through their backlog behind it.
    """

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    async def acquire(self, *, urgent: bool) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed to us just as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # ownership passes straight to the next waiter
                    return
        self._held = False


class Database:
    """One engine and its session factory.  `async with db.transaction() as s:` is the unit of work."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        read_options: dict[str, Any] = {_READ_ONLY: True}
        if self.dialect == "postgresql":
            # Under READ COMMITTED every statement reads its own snapshot, so a read-only transaction adds
            # nothing but a BEGIN and a ROLLBACK round trip: reads run in autocommit instead.
            read_options["isolation_level"] = "AUTOCOMMIT"
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(**read_options), expire_on_commit=False, class_=AsyncSession
        )
        # One asyncio lock per event loop (tests run several loops over one Database).
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _WriteLock] | None = (
            weakref.WeakKeyDictionary() if self.dialect == "sqlite" else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed on success and rolled back on any error: all or nothing.

        `urgent`: on SQLite, go ahead of the other writers of this process waiting for the lock
        (recording inbound messages).
        """
        if self._write_locks is None:
            async with self._sessions() as session:
                async with session.begin():
                    yield session
            return
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = _WriteLock()
        await lock.acquire(urgent=urgent)
        try:
            async with self._sessions() as session:
                async with session.begin():
                    yield session
        finally:
            lock.release()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (it never commits; on SQLite it never waits for a writer)."""
        async with self._read_sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
