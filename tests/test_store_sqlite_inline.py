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
from pathlib import Path

import pytest
from sqlalchemy import text

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


async def _create_notes(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))


async def test_a_write_waits_for_another_process_without_freezing_the_loop(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    try:
        await _create_notes(db)
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "shared.db"), "1.0"],
            stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"

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
    finally:
        await db.dispose()


async def test_reads_do_not_wait_for_another_process_writing(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    try:
        await _create_notes(db)
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES ('committed before')"))
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "shared.db"), "1.0"],
            stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        async with db.session() as session:
            bodies = (await session.execute(text("SELECT body FROM notes"))).scalars().all()
        assert time.monotonic() - started < 0.5
        assert bodies == ["committed before"], "uncommitted rows of the other process must not be seen"
        assert holder.wait(timeout=10) == 0
    finally:
        await db.dispose()


async def test_a_failing_statement_raises_the_database_error(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'errors.db'}")
    try:
        await _create_notes(db)
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO notes (id, body) VALUES (1, 'a')"))
                await session.execute(text("INSERT INTO notes (id, body) VALUES (1, 'b')"))
        async with db.session() as session:
            count = (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one()
        assert count == 0, "the failed transaction must have been rolled back as a whole"
    finally:
        await db.dispose()
