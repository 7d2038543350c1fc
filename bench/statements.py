"""SQL statements and round trips of a bot process, by phase: what one handled message costs the store.

`bench/pipeline.py` starts the bot through this file instead of `python -m frontdesk`:

    python bench/statements.py COUNTS.json -- run        # = frontdesk run, counting its SQL

It hooks SQLAlchemy's engine events (every engine of the process: none of the bot's code changes) and
rewrites COUNTS.json twice a second with the totals so far; the benchmark reads it before the first DM
and after the last reply, and divides the difference by the DMs answered.

Phases, from the code that issued the statement (the awaiting coroutine's stack, read from the greenlet
SQLAlchemy's asyncio layer switched away from):

- ingest: the channels recording what arrived (webhook, pollers: `bot/channels/`, not the sender);
- route: the router worker (`bot/worker.py`: lease, read the waiting messages, apply, release);
- outbox: delivery (`bot/outbox.py` and the channel senders it calls);
- other: everything else (the desk, health checks, start-up).

A statement is one DBAPI execute (an executemany counts once: asyncpg pipelines it; SQLite's `BEGIN
IMMEDIATE` is a statement).  Round trips are statements plus, on PostgreSQL, every BEGIN, and on both
stores every COMMIT and ROLLBACK.  (On SQLite a "round trip" is a call into the library, not the network.)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

_PHASE_OF_FILE = (  # first match from the innermost frame outwards
    ("bot/channels/x/sender.py", "outbox"),
    ("bot/channels/telegram/sender.py", "outbox"),
    ("bot/outbox.py", "outbox"),
    ("bot/channels/", "ingest"),
    ("bot/worker.py", "route"),
)
PHASES = ("ingest", "route", "outbox", "other")


_FILE_PHASES: dict[str, str | None] = {}  # co_filename -> its phase (None: look further out)


def _file_phase(filename: str) -> str | None:
    return next((phase for part, phase in _PHASE_OF_FILE if part in filename), None)


def _phase_of(frame: FrameType | None) -> str:
    # Cached per file: this runs for every statement of the measured process, whose CPU is being measured.
    depth = 0
    while frame is not None and depth < 80:
        filename = frame.f_code.co_filename
        try:
            phase = _FILE_PHASES[filename]
        except KeyError:
            phase = _FILE_PHASES[filename] = _file_phase(filename)
        if phase is not None:
            return phase
        frame = frame.f_back
        depth += 1
    return "other"


def _caller_phase() -> str:
    """The phase of the coroutine that awaits this statement.

    SQLAlchemy runs the sync statement in a child greenlet; the coroutine that awaited it is suspended in
    the parent greenlet, whose frame chain goes up through storage/ into the bot's code.
    """
    import greenlet

    current = greenlet.getcurrent()
    parent = current.parent
    frame = parent.gr_frame if parent is not None else None
    return _phase_of(frame if frame is not None else sys._getframe(2))


class StatementCounter:
    """Counts per phase: statements, round trips, transactions (COMMITs)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._on_execute)
        event.listen(Engine, "begin", self._on_begin)
        event.listen(Engine, "commit", self._on_end)
        event.listen(Engine, "rollback", self._on_end)

    def _on_execute(self, conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool) -> None:
        phase = _caller_phase()
        self.counts[f"{phase}.statements"] += 1
        self.counts[f"{phase}.round_trips"] += 1
        # Which statements, for reading the file by hand (`per_message` ignores these keys).
        self.counts[f"sql.{phase}: {' '.join(statement.split()[:4])[:60]}"] += 1

    def _on_begin(self, conn: Any) -> None:
        # SQLite's BEGIN is an explicit statement (storage/db.py), counted above; asyncpg's is its own trip,
        # except on the autocommit read sessions, which send none.
        if conn.dialect.name == "postgresql" and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.counts[f"{_caller_phase()}.round_trips"] += 1

    def _on_end(self, conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        phase = _caller_phase()
        self.counts[f"{phase}.round_trips"] += 1
        self.counts[f"{phase}.transactions"] += 1
        self.counts[f"sql.{phase}: COMMIT/ROLLBACK"] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


def _write_forever(counter: StatementCounter, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    while True:
        tmp.write_text(json.dumps(counter.snapshot()))
        os.replace(tmp, path)  # the reader never sees half a file
        time.sleep(0.5)


def read_counts(path: Path) -> dict[str, int]:
    """The latest totals the counted process wrote (empty before its first write)."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def per_message(before: dict[str, int], after: dict[str, int], messages: int) -> dict[str, dict[str, float]]:
    """{phase: {"statements", "round_trips", "transactions"}} per message, plus a "total" phase."""
    result: dict[str, dict[str, float]] = {}
    for phase in (*PHASES, "total"):
        row = {}
        for kind in ("statements", "round_trips", "transactions"):
            keys = [f"{p}.{kind}" for p in PHASES] if phase == "total" else [f"{phase}.{kind}"]
            delta = sum(after.get(k, 0) - before.get(k, 0) for k in keys)
            row[kind] = round(delta / max(1, messages), 2)
        result[phase] = row
    return result


def statements_per_message(
    before: dict[str, int], after: dict[str, int], messages: int, *, top: int = 25
) -> dict[str, float]:
    """The most frequent statements ("phase: first words") per message, most frequent first."""
    delta = {k[4:]: after[k] - before.get(k, 0) for k in after if k.startswith("sql.")}
    ranked = sorted(((v, k) for k, v in delta.items() if v > 0), reverse=True)[:top]
    return {k: round(v / max(1, messages), 2) for v, k in ranked}


def format_per_message(figures: dict[str, dict[str, float]]) -> str:
    return "; ".join(
        f"{phase} {row['statements']} statements / {row['round_trips']} round trips / {row['transactions']} commits"
        for phase, row in figures.items()
    )


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit("usage: python bench/statements.py COUNTS.json -- <frontdesk arguments>")
    path = Path(sys.argv[1])
    counter = StatementCounter()
    counter.install()
    threading.Thread(target=_write_forever, args=(counter, path), daemon=True, name="sql-counts").start()
    sys.argv = ["frontdesk", *sys.argv[3:]]
    # Run as a script, sys.path[0] is bench/, whose nlu.py would shadow the nlu package: the root instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from frontdesk.app.cli import main as frontdesk_main

    frontdesk_main()


if __name__ == "__main__":
    main()
