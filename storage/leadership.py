"""Poller leadership: exactly one process at a time polls a given X account or Telegram bot.

Every worker may run the pollers; before polling, each asks for the leader lease of its account, and only
the holder polls.  Polling twice would not duplicate messages (the inbox de-duplicates on the platform's
message id), but it would spend the account's rate limit twice and, for Telegram's getUpdates, two
concurrent long polls make the Bot API answer 409 Conflict.  So the lease is about efficiency and
politeness; correctness never depends on it being exclusive to the millisecond.

Two mechanisms, picked by the database:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated connection.
  When the holder dies, its connection closes and the server frees the lock at once; a vanished host is
  noticed by TCP keepalives set to seconds on that connection.  ``pg_stat_activity`` shows the holder
  (``application_name = 'frontdesk-leader:<name>'``).
- SQLite (one machine, but possibly several processes): a row in ``channel_cursors`` named
  ``lease:<name>`` whose value is ``{"owner": ..., "until": <unix time>}``.  The holder renews it every
  few seconds; a holder that dies stops renewing and the lease lapses after ``lease_s``.  No migration
  is needed.  This mechanism also works on PostgreSQL (``strategy="row"``).

Use::

    async with leader_lease(db, f"x:{account_id}") as lease:   # renews / retries in the background
        while True:
            await lease.wait_held()      # returns at once while we lead
            await poll_once()

or drive it by hand with ``try_acquire()``, ``renew()``, ``release()`` and ``held``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.db import Database
from storage.models import ChannelCursor, utcnow

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 15.0
LEASE_ROW_PREFIX = "lease:"
Strategy = Literal["auto", "advisory", "row"]


def default_owner() -> str:
    """host:pid:random, unique per process and per lease object, readable in the database."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock(bigint)``, derived from the lease name."""
    digest = hashlib.blake2b(f"frontdesk-leader:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LeaderLease:
    """The right to act as the single poller for `name`.  Not shared between tasks without care.

    ``held`` is what this process last knew: ``renew()`` refreshes it (and must be called more often
    than every ``lease_s``; the context manager does that).
    """

    def __init__(
        self, db: Database, name: str, *, owner: str | None = None, lease_s: float = DEFAULT_LEASE_S,
        strategy: Strategy = "auto", on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        if strategy not in ("auto", "advisory", "row"):
            raise ValueError(f"unknown leadership strategy {strategy!r}; use 'auto', 'advisory' or 'row'")
        if strategy == "auto":
            strategy = "advisory" if db.dialect == "postgresql" else "row"
        if strategy == "advisory" and db.dialect != "postgresql":
            raise ValueError("advisory-lock leadership needs PostgreSQL; use strategy='row' on SQLite")
        self.db = db
        self.name = name
        self.owner = owner or default_owner()
        self.lease_s = lease_s
        self.strategy: Literal["advisory", "row"] = strategy  # type: ignore[assignment]
        self._held = False
        self._lock_engine: AsyncEngine | None = None
        self._lock_conn: AsyncConnection | None = None
        self._changed = asyncio.Event()
        self._on_change = on_change

    @property
    def held(self) -> bool:
        return self._held

    def __repr__(self) -> str:
        return f"<LeaderLease {self.name!r} owner={self.owner!r} {self.strategy} held={self._held}>"

    # --- the three operations ---------------------------------------------------------------------

    async def try_acquire(self) -> bool:
        """Become the leader if nobody else is; True if we hold the lease now.  Never blocks on the holder."""
        if self._held:
            return await self.renew()
        try:
            acquired = await (self._acquire_advisory() if self.strategy == "advisory" else self._acquire_row())
        except Exception as exc:  # noqa: BLE001 - a database hiccup means "not leader", never a crash
            log.warning("leader lease %s: acquiring failed (%s); will retry", self.name, type(exc).__name__)
            await self._drop_lock_connection()
            acquired = False
        self._set_held(acquired)
        return acquired

    async def renew(self) -> bool:
        """Confirm (and, for the row lease, extend) leadership; False means it was lost: stop polling."""
        if not self._held:
            return False
        try:
            still = await (self._check_advisory() if self.strategy == "advisory" else self._renew_row())
        except Exception as exc:  # noqa: BLE001 - a connection we cannot use is a lease we cannot prove
            log.warning("leader lease %s: renewal failed (%s)", self.name, type(exc).__name__)
            still = False
        if not still:
            await self._drop_lock_connection()
            log.warning("leader lease %s: lost by %s", self.name, self.owner)
        self._set_held(still)
        return still

    async def release(self) -> None:
        """Give the lease up now so another process can take over without waiting for it to lapse."""
        was_held, self._held = self._held, False
        try:
            if self.strategy == "advisory":
                if self._lock_conn is not None and was_held:
                    with suppress(Exception):
                        await self._lock_conn.execute(
                            text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.name)}
                        )
            elif was_held:
                await self._release_row()
        finally:
            await self._drop_lock_connection()
            if self._lock_engine is not None:
                await self._lock_engine.dispose()
                self._lock_engine = None
            if was_held:
                log.info("leader lease %s: released by %s", self.name, self.owner)
                self._notify(False)
            self._changed.set()

    async def wait_held(self) -> None:
        """Return once this process holds the lease (the background keeper acquires it)."""
        while not self._held:
            self._changed.clear()
            await self._changed.wait()

    def _set_held(self, held: bool) -> None:
        if held and not self._held:
            log.info("leader lease %s: acquired by %s", self.name, self.owner)
        if held != self._held:
            self._held = held
            self._changed.set()
            self._notify(held)

    def _notify(self, held: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change(held)
            except Exception:  # noqa: BLE001 - a metrics hook must not break leadership
                log.exception("leader lease %s: on_change hook failed", self.name)

    # --- PostgreSQL advisory lock ------------------------------------------------------------------

    def _engine_for_lock(self) -> AsyncEngine:
        if self._lock_engine is None:
            self._lock_engine = create_async_engine(
                self.db.url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",  # no transaction left open for hours
                connect_args={
                    "server_settings": {
                        "application_name": f"frontdesk-leader:{self.name}"[:63],
                        # A holder whose host vanishes is noticed by the server in ~25 s, not ~2 h.
                        "tcp_keepalives_idle": "10",
                        "tcp_keepalives_interval": "5",
                        "tcp_keepalives_count": "3",
                    },
                    "timeout": 10,
                    "command_timeout": 10,
                },
            )
        return self._lock_engine

    async def _acquire_advisory(self) -> bool:
        if self._lock_conn is None:
            self._lock_conn = await self._engine_for_lock().connect()
        got = (
            await self._lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(self.name)})
        ).scalar_one()
        if not got:
            await self._drop_lock_connection()  # free the connection while we are not leading
        return bool(got)

    async def _check_advisory(self) -> bool:
        if self._lock_conn is None:
            return False
        key = advisory_key(self.name) & 0xFFFFFFFFFFFFFFFF
        # A bigint advisory key shows in pg_locks as classid = high 32 bits, objid = low 32 bits, objsubid 1.
        row = (
            await self._lock_conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 AND granted"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            )
        ).scalar_one()
        return row > 0

    async def _drop_lock_connection(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            with suppress(Exception):
                await conn.invalidate()  # close the socket: whatever it held is released by the server
            with suppress(Exception):
                await conn.close()

    # --- the lease row (SQLite, or PostgreSQL on request) ---------------------------------------

    @property
    def _row_name(self) -> str:
        return f"{LEASE_ROW_PREFIX}{self.name}"

    def _row_value(self, until: float) -> str:
        return json.dumps({"owner": self.owner, "until": round(until, 3)}, separators=(",", ":"))

    async def _acquire_row(self) -> bool:
        now = time.time()
        async with self.db.transaction() as session:
            await _insert_lapsed_row(session, self._row_name)
            current = (
                await session.execute(
                    select(ChannelCursor.value).where(ChannelCursor.name == self._row_name).with_for_update()
                )
            ).scalar_one()
            holder, until = _parse_row(current)
            if holder not in (None, self.owner) and until > now:
                return False
            await session.execute(
                update(ChannelCursor)
                .where(ChannelCursor.name == self._row_name)
                .values(value=self._row_value(now + self.lease_s), updated_at=utcnow())
            )
            return True

    async def _renew_row(self) -> bool:
        now = time.time()
        async with self.db.transaction() as session:
            current = (
                await session.execute(
                    select(ChannelCursor.value).where(ChannelCursor.name == self._row_name).with_for_update()
                )
            ).scalar_one_or_none()
            holder, _until = _parse_row(current)
            if holder != self.owner:
                return False  # someone took it over after our lease lapsed
            await session.execute(
                update(ChannelCursor)
                .where(ChannelCursor.name == self._row_name)
                .values(value=self._row_value(now + self.lease_s), updated_at=utcnow())
            )
            return True

    async def _release_row(self) -> None:
        async with self.db.transaction() as session:
            current = (
                await session.execute(
                    select(ChannelCursor.value).where(ChannelCursor.name == self._row_name).with_for_update()
                )
            ).scalar_one_or_none()
            if _parse_row(current)[0] == self.owner:
                await session.execute(
                    update(ChannelCursor)
                    .where(ChannelCursor.name == self._row_name)
                    .values(value=json.dumps({"owner": None, "until": 0}), updated_at=utcnow())
                )


async def _insert_lapsed_row(session: Any, row_name: str) -> None:
    """Make sure the lease row exists (as a lapsed lease), so that SELECT … FOR UPDATE has a row to lock."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(ChannelCursor.__table__).values(
        name=row_name, value=json.dumps({"owner": None, "until": 0}), updated_at=utcnow()
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))


def _parse_row(value: str | None) -> tuple[str | None, float]:
    if not value:
        return None, 0.0
    try:
        data = json.loads(value)
        return data.get("owner"), float(data.get("until") or 0.0)
    except (ValueError, TypeError, AttributeError):
        return None, 0.0  # unreadable: treat as lapsed, the next acquire overwrites it


async def _keep(lease: LeaderLease, retry_s: float) -> None:
    """Renew while held (three times per lease period), otherwise try to take over every `retry_s`."""
    while True:
        if lease.held:
            await asyncio.sleep(lease.lease_s / 3)
            await lease.renew()
        else:
            await asyncio.sleep(retry_s)
            await lease.try_acquire()


@asynccontextmanager
async def leader_lease(
    db: Database, name: str, *, owner: str | None = None, lease_s: float = DEFAULT_LEASE_S,
    retry_s: float | None = None, strategy: Strategy = "auto", keep: bool = True,
    on_change: Callable[[bool], None] | None = None,
) -> AsyncIterator[LeaderLease]:
    """Contend for leadership of `name` for the duration of the block; released on exit.

    One attempt is made on entry (so ``lease.held`` is meaningful at once); with ``keep=True`` a
    background task then renews the lease while held and retries every ``retry_s`` (default
    ``lease_s / 3``) while not, so a follower takes over within seconds of the leader's death.
    ``on_change(held)`` is called on every change, e.g. ``lambda held: metrics.set_leader(name, held)``.
    """
    lease = LeaderLease(db, name, owner=owner, lease_s=lease_s, strategy=strategy, on_change=on_change)
    keeper: asyncio.Task[None] | None = None
    try:
        await lease.try_acquire()
        if keep:
            keeper = asyncio.create_task(_keep(lease, retry_s or lease_s / 3), name=f"leader-lease:{name}")
        yield lease
    finally:
        if keeper is not None:
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper
        await asyncio.shield(lease.release())
