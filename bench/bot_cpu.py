"""The bot's own CPU per DM in the store path, in one process: ingest, routing and marking sent.

bench/pipeline.py measures the whole bot (HTTP, Rasa, tweepy, the emulator) on a machine whose speed
drifts by 10% from run to run, which hides a change worth 0.3 ms.  This one runs only the parts that
are ours and talk to the store, with no other process competing for the CPU except the database server:

    ingest   pages of `--page` DMs through `record_inbound_many` (what the webhook's batching does)
    route    the real `BotWorker` (content/, the router, the effects) with a keyword parser instead of Rasa
    outbox   `lease_due` + `mark_sent_many` for every answer (no HTTP send)

and prints the CPU milliseconds per DM of each phase (this process only; the database server's CPU is
not in it) and the statements and round trips per DM, counted by bench/statements.py's counter.

    .venv/bin/python bench/bot_cpu.py                                    # SQLite (a throwaway file)
    .venv/bin/python bench/bot_cpu.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
    .venv/bin/python bench/bot_cpu.py --messages 4000 --repeat 3 --json

Give PostgreSQL an empty database: it is migrated here and its tables emptied between repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from bench import pipeline, statements  # noqa: E402
from bot.content import load_content  # noqa: E402
from bot.router import RouterConfig  # noqa: E402
from bot.worker import BotWorker  # noqa: E402
from frontdesk.core.settings import PROJECT_ROOT  # noqa: E402
from nlu.client import IntentScore, ParseResult  # noqa: E402
from storage import outbox  # noqa: E402
from storage.actions import InboundMessage, record_inbound_many  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Channel, ConversationKind  # noqa: E402

# The intent the shipped model gives each text bench/pipeline.py sends (the bot answers them itself: FAQ,
# events, small talk).
_INTENT_OF = dict(zip(pipeline.TEXTS, ("order_problem", "event_info", "greet", "account_login", "thanks"), strict=True))


class _TableParser:
    """Stands in for Rasa: the intent the shipped model gives each benchmark text, at 0.97."""

    async def parse(self, text: str) -> ParseResult:
        intent = _INTENT_OF[text]
        return ParseResult(text=text, intent=intent, confidence=0.97, entities=[],
                           intent_ranking=[IntentScore(intent, 0.97), IntentScore("complaint", 0.02)])


def _totals(counter: statements.StatementCounter) -> tuple[int, int]:
    """Statements and round trips so far, all phases (this process is one phase at a time)."""
    counts = counter.snapshot()
    return (sum(counts.get(f"{p}.statements", 0) for p in statements.PHASES),
            sum(counts.get(f"{p}.round_trips", 0) for p in statements.PHASES))


def _page(start: int, size: int, customers: int) -> list[InboundMessage]:
    messages = []
    for i in range(start, start + size):
        customer = str(10_000 + i % customers)
        messages.append(InboundMessage(
            channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=customer,
            sender_id=customer, sender_handle=f"customer{customer}", text=pipeline.TEXTS[(i // customers) % len(pipeline.TEXTS)],
            platform_message_id=f"bench-{i}",
        ))
    return messages


async def _empty_tables(db: Database) -> None:
    """PostgreSQL: every table but the migration stamp emptied, so each repeat starts from a new store."""
    if db.dialect != "postgresql":
        return
    async with db.transaction() as session:
        tables = (await session.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
        ))).scalars().all()
        await session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


async def _one_run(db: Database, args: argparse.Namespace, counter: statements.StatementCounter) -> dict[str, dict[str, float]]:
    content = load_content(PROJECT_ROOT / "content")
    worker = BotWorker(db, _TableParser(), content, RouterConfig(), owner="bench", concurrency=args.concurrency)

    totals = {name: {"cpu_ms": 0.0, "statements": 0.0, "round_trips": 0.0} for name in ("ingest", "route", "outbox")}

    async def phase(name: str, work: Any) -> None:
        (statements_before, round_trips_before), cpu = _totals(counter), time.process_time()
        await work
        row = totals[name]
        row["cpu_ms"] += (time.process_time() - cpu) * 1000 / args.messages
        statements_after, round_trips_after = _totals(counter)
        row["statements"] += (statements_after - statements_before) / args.messages
        row["round_trips"] += (round_trips_after - round_trips_before) / args.messages

    async def ingest(first: int, count: int) -> None:
        # Pages written concurrently, as the webhook's requests are: `--concurrency` pages in flight.
        starts = list(range(first, first + count, args.page))
        for at in range(0, len(starts), args.concurrency):
            await asyncio.gather(*(
                record_inbound_many(db, _page(s, min(args.page, first + count - s), args.customers))
                for s in starts[at:at + args.concurrency]
            ))

    async def deliver() -> None:
        while True:
            due = await outbox.lease_due(db, "bench", limit=20)
            if not due:
                return
            await outbox.mark_sent_many(db, [(d.id, f"sent-{d.id}") for d in due])

    # Rounds of one DM per customer, each recorded, routed and delivered before the next: as at a steady
    # rate, every conversation has one waiting message when the worker leases it (no backlog batches).
    for first in range(0, args.messages, args.customers):
        count = min(args.customers, args.messages - first)
        await phase("ingest", ingest(first, count))
        await phase("route", worker.drain(timeout_s=600))
        await phase("outbox", deliver())
    figures = {name: {k: round(v, 3) for k, v in row.items()} for name, row in totals.items()}
    figures["total"] = {k: round(sum(f[k] for f in figures.values()), 3) for k in ("cpu_ms", "statements", "round_trips")}
    return figures


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        counter = statements.StatementCounter()  # bench/pipeline.py's count: BEGIN, COMMIT, autocommit reads
        counter.install()
        runs = []
        for repeat in range(args.repeat):
            if not args.database_url:
                url = f"sqlite+aiosqlite:///{tmp}/bench-{repeat}.db"  # a new file: FTS tables do not empty well
            db = Database(url, pool_size=max(10, args.concurrency + 10))  # as frontdesk/app/supervisor.py sizes it
            try:
                await upgrade(db)
                await _empty_tables(db)
                runs.append(await _one_run(db, args, counter))
            finally:
                await db.dispose()
    phases = runs[0].keys()
    median = {p: {k: round(statistics.median(r[p][k] for r in runs), 3) for k in runs[0][p]} for p in phases}
    return {"store": db.dialect, "messages": args.messages, "page": args.page, "repeat": args.repeat,
            "median": median, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--page", type=int, default=5, help="DMs recorded per transaction (the webhook's batches)")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median of each figure is printed")
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio otherwise
        report = asyncio.run(_main(args))
    else:
        report = uvloop.run(_main(args))  # the bot's own loop (frontdesk/app/cli.py)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['store']}: {args.messages} DMs, pages of {args.page}, median of {args.repeat} runs")
    print(f"{'phase':8} {'CPU ms/DM':>10} {'statements':>11} {'round trips':>12}")
    for name, row in report["median"].items():
        print(f"{name:8} {row['cpu_ms']:>10.3f} {row['statements']:>11.2f} {row['round_trips']:>12.2f}")


if __name__ == "__main__":
    main()
