"""A real ingesting process killed with SIGKILL mid-stream and restarted: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from frontdesk.core.settings import PROJECT_ROOT
from sandbox.server import RunningSandbox
from storage.db import Database
from tests.fixtures.x_channel import eventually, inbound_count, inbound_ids


async def _start_ingest(
    database_url: str, sb: RunningSandbox, var_dir: Path, log: Path
) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:  # a file, not a pipe nobody reads: a chatty process must never block
        return await _spawn(database_url, sb, var_dir, stderr)


async def _spawn(
    database_url: str, sb: RunningSandbox, var_dir: Path, stderr: Any
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_X_API_BASE": sb.base_url,
        "FRONTDESK_X_POLL_FLOOR_S": "0.05",
        "FRONTDESK_VAR_DIR": str(var_dir),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.channels.x",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )


async def _stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have died on its own; the assertions tell
        process.send_signal(sig)
    await process.wait()


async def test_sigkill_mid_ingest_then_restart_loses_and_duplicates_nothing(
    db: Database, database_url: str, x_sandbox: RunningSandbox, x_requests: list[Any], tmp_path: Path
) -> None:
    state = x_sandbox.x
    # Enough backlog (within the ~800 newest mentions X keeps reachable) that the kill lands mid-stream
    # even when this test process is starved of CPU for seconds on a loaded machine.
    posted = [state.add_mention(f"crowd{i % 53}", f"is my order {i} on its way?").id for i in range(700)]
    posted += [state.add_dm(f"whisper{i % 17}", f"private note {i}").id for i in range(200)]

    log = tmp_path / "ingest.log"
    first = await _start_ingest(database_url, x_sandbox, tmp_path, log)
    try:
        await eventually(lambda: _at_least(db, 30), within_s=60, every_s=0.02)
    finally:
        await _stop(first, signal.SIGKILL)
    stored_at_kill = await inbound_count(db)
    assert 0 < stored_at_kill < len(posted), "the process must die while it is still ingesting"

    # More arrives while nobody is polling.
    posted += [state.add_mention(f"late{i}", f"still there? {i}").id for i in range(20)]
    posted += [state.add_dm(f"late{i}", f"hello? {i}").id for i in range(5)]

    second = await _start_ingest(database_url, x_sandbox, tmp_path, log)
    try:
        await eventually(lambda: _at_least(db, len(posted)), within_s=180)
        # Let it poll on for a few more rounds: repeats must not add anything.
        before = len(x_requests)
        await eventually(lambda: _more_than(x_requests, before + 6), within_s=30)
    finally:
        await _stop(second, signal.SIGTERM)
    assert second.returncode == 0, log.read_text()[-2000:]  # a clean shutdown on SIGTERM

    ids = await inbound_ids(db)
    assert len(ids) == len(set(ids)) == len(posted)
    assert set(ids) == set(posted)


async def _at_least(db: Database, n: int) -> bool:
    return await inbound_count(db) >= n


async def _more_than(seen: list[Any], n: int) -> bool:
    return len(seen) > n
