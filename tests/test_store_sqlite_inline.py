"""SQLite runs on the event loop's thread: another process holding the write lock must not freeze the loop.

`frontdesk run` on SQLite shares the file with the `frontdesk` commands people run beside it (and with
extra workers).  While one of them holds the write lock, the bot's write waits (and then succeeds) and
everything else in the process (webhooks, health checks) keeps running.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.db import Database

_HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO notes (body) VALUES ('from the other process')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def _hold_write_lock(database: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes SQLite's write lock (with an uncommitted row) for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(database), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
async def notes_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite store at `tmp_path / "shared.db"` with one table, `notes`."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
        yield db
    finally:
        await db.dispose()


async def test_a_write_waits_for_another_process_without_freezing_the_loop(
    notes_db: Database, tmp_path: Path
) -> None:
    db = notes_db
    holder = _hold_write_lock(tmp_path / "shared.db", 1.0)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes (body) VALUES ('from the bot')"))
    waited = time.monotonic() - started
    ticking.cancel()
    assert holder.wait(timeout=10) == 0

    assert waited >= 0.5, "the write must have waited for the other process's lock"
    # A frozen loop would not have ticked at all while the write waited (100 ticks in a free second).
    assert ticks >= 20, f"the event loop stalled waiting for the lock ({ticks} ticks in {waited:.2f}s)"
    async with db.session() as session:
        bodies = (await session.execute(text("SELECT body FROM notes ORDER BY id"))).scalars().all()
    assert bodies == ["from the other process", "from the bot"]


async def test_reads_do_not_wait_for_another_process_writing(notes_db: Database, tmp_path: Path) -> None:
    db = notes_db
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes (body) VALUES ('committed before')"))
    holder = _hold_write_lock(tmp_path / "shared.db", 3.0)
    async with db.session() as session:
        bodies = (await session.execute(text("SELECT body FROM notes"))).scalars().all()
    assert holder.poll() is None, "the read must not have waited for the other process to commit"
    assert bodies == ["committed before"], "uncommitted rows of the other process must not be seen"
    assert holder.wait(timeout=10) == 0


async def test_a_failing_statement_raises_the_database_error(notes_db: Database) -> None:
    db = notes_db
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO notes (id, body) VALUES (1, 'a')"))
            await session.execute(text("INSERT INTO notes (id, body) VALUES (1, 'b')"))
    async with db.session() as session:
        count = (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one()
    assert count == 0, "the failed transaction must have been rolled back as a whole"
