"""The worker's lease against a brand's history: does finding the waiting conversations get slower as the
store fills with old ones?

For each history size, a fresh store gets N past conversations (each a customer's DM, handled, and the
bot's answer, as the bot writes them) and `--waiting` conversations with a message still waiting.  Then the
worker's lease (`storage.inbox.lease_conversations_with_messages`, 20 at a time) is timed, each lease
released again so that every lease finds the same work.  Printed: ms per lease (median of `--leases`)
and the store's plan for it (the scans and joins).

    python bench/inbox_history.py                                  # SQLite, 0 / 10,000 / 100,000 past
    python bench/inbox_history.py --history 0,100000 --database-url postgresql+asyncpg://root@127.0.0.1/bench

Give PostgreSQL an empty database: its tables are dropped and re-made for every size.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Boolean, DateTime, Integer, String, bindparam, text  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402

from storage import inbox  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import open_database  # noqa: E402

# One statement per table, for both stores: numbers 1..N from a recursive CTE (SQLite has no
# generate_series).  Past conversations were last touched a month ago; the waiting ones now.
_NUMBERS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
_SEED = [
    _NUMBERS + "INSERT INTO contacts (channel, platform_user_id, handle, display_name, created_at) "
    "SELECT 'x', :prefix || i, :prefix || i, 'customer', :then FROM n",
    _NUMBERS + "INSERT INTO conversations (contact_id, channel, kind, platform_ref, status, bot_state, "
    "created_at, updated_at) SELECT c.id, 'x', 'dm', c.platform_user_id, 'bot', '{}', :then, :then "
    "FROM contacts c WHERE c.platform_user_id LIKE :prefix || '%'",
    "INSERT INTO messages (conversation_id, channel, direction, author, kind, text, entities, created_at, "
    "handled_at) SELECT cv.id, 'x', 'in', 'customer', 'message', 'where is my order', '[]', :then, :handled "
    "FROM conversations cv WHERE cv.platform_ref LIKE :prefix || '%'",
    # The bot's answers, stored handled as storage.actions.queue_outbound writes them.
    "INSERT INTO messages (conversation_id, channel, direction, author, kind, text, entities, created_at, "
    "handled_at) SELECT cv.id, 'x', 'out', 'bot', 'message', 'here it is', '[]', :then, :then "
    "FROM conversations cv WHERE cv.platform_ref LIKE :prefix || '%' AND :answered",
]


async def seed_conversations(db: Database, *, prefix: str, count: int, waiting: bool) -> None:
    """`count` DM conversations: past ones (handled a month ago, with the bot's answer) or waiting ones."""
    if count == 0:
        return
    then = datetime(2026, 1, 1, tzinfo=timezone.utc) if not waiting else datetime(2026, 12, 1, tzinfo=timezone.utc)
    params = {"count": count, "prefix": prefix, "then": then, "handled": None if waiting else then,
              "answered": not waiting}
    typed = (bindparam("then", type_=DateTime(timezone=True)), bindparam("handled", type_=DateTime(timezone=True)),
             bindparam("prefix", type_=String()), bindparam("count", type_=Integer()),
             bindparam("answered", type_=Boolean()))
    async with db.transaction() as session:
        for statement in _SEED:
            if db.dialect == "postgresql":  # JSON columns take no bare text literal there
                statement = statement.replace("'[]'", "'[]'::json").replace("'{}'", "'{}'::json").replace(
                    ":prefix ||", "CAST(:prefix AS text) ||")
            sql = text(statement).bindparams(*(p for p in typed if f":{p.key}" in statement))
            await session.execute(sql, {k: v for k, v in params.items() if f":{k}" in statement})
    async with db.session() as session:
        if db.dialect == "postgresql":
            await session.execute(text("ANALYZE"))


def lease_plan_sql(db: Database) -> str:
    """The worker's lease statement as it sends it, with its parameters written in (EXPLAIN takes none)."""
    if db.dialect == "postgresql":
        sql = str(inbox._LEASE_WITH_MESSAGES.compile(dialect=postgresql.dialect()))
        values = {"owner": "'plan'", "until": "now() + interval '60 seconds'", "now": "now()", "limit": "20"}
        return re.sub(r"%\((\w+?)(_\d+)?\)s", lambda m: values.get(m.group(1), "'in'"), sql)
    sql = str(inbox._LEASE_RETURNING.compile(dialect=sqlite.dialect()))
    for value in ("'plan'", "'2030-01-01'", "'2030-01-01'", "20", "0"):  # owner, until, now, limit, offset
        sql = sql.replace("?", value, 1)
    return sql


async def lease_plan(db: Database) -> list[str]:
    """How the store would run the lease: PostgreSQL's EXPLAIN, or SQLite's EXPLAIN QUERY PLAN."""
    async with db.transaction() as session:
        if db.dialect == "postgresql":
            rows = [str(r) for r in (await session.execute(text(f"EXPLAIN {lease_plan_sql(db)}"))).scalars()]
        else:
            rows = [str(r[-1]) for r in await session.execute(text(f"EXPLAIN QUERY PLAN {lease_plan_sql(db)}"))]
        await session.rollback()
    return rows


async def _measure(url: str, history: int, waiting: int, leases: int) -> tuple[float, str]:
    db = await open_database(url, auto_upgrade=True)
    try:
        await seed_conversations(db, prefix="past", count=history, waiting=False)
        await seed_conversations(db, prefix="now", count=waiting, waiting=True)
        timings = []
        for _ in range(leases):
            started = time.perf_counter()
            leased = await inbox.lease_conversations_with_messages(db, "bench", limit=20)
            timings.append((time.perf_counter() - started) * 1000)
            if len(leased) != min(20, waiting):
                raise SystemExit(f"leased {len(leased)} conversations, expected {min(20, waiting)}")
            for conversation_id in leased:
                await inbox.release(db, conversation_id, "bench")
        plan = [r for r in await lease_plan(db) if "Scan" in r or "SCAN" in r or "SEARCH" in r or "Join" in r]
        return statistics.median(timings), "\n".join(f"    {r.strip()}" for r in plan)
    finally:
        await db.dispose()


async def _reset_postgres(url: str) -> None:
    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(text("DROP SCHEMA public CASCADE"))
            await session.execute(text("CREATE SCHEMA public"))
    finally:
        await db.dispose()


async def _main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.history.split(",")]
    print(f"lease of 20 conversations among {args.waiting} waiting, median of {args.leases}:")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite+aiosqlite:///{tmp}/history.db"
            if url.startswith("postgresql"):
                await _reset_postgres(url)
            print(f"  seeding {size:,} past conversations ...", file=sys.stderr, flush=True)
            ms, plan = await _measure(url, size, args.waiting, args.leases)
            print(f"  {size:>9,} past conversations: {ms:7.2f} ms per lease")
            if plan:
                print(plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", default="0,10000,100000", help="past conversations, comma-separated")
    parser.add_argument("--waiting", type=int, default=30, help="conversations with a waiting message")
    parser.add_argument("--leases", type=int, default=50, help="leases timed per size")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway SQLite file)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
