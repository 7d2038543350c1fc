"""Store throughput: inbound-message inserts per second and ticket claims per second, on SQLite and PostgreSQL.

    .venv/bin/python bench/store.py [--messages 2000] [--tickets 300] [--agents 20] [--concurrency 20] [--json]

PostgreSQL is measured in a throwaway database created on the server at FRONTDESK_BENCH_PG_URL
(default postgresql://root@127.0.0.1:5432/test) and dropped afterwards; it is skipped, with the reason, if
no server answers.  Claims are contended: `--agents` agents race for every ticket, exactly one wins each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import actions  # noqa: E402
from storage.actions import InboundMessage  # noqa: E402
from storage.agents import create_agent  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.errors import AlreadyClaimed  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Channel, ConversationKind  # noqa: E402

PG_ADMIN_URL = os.environ.get("FRONTDESK_BENCH_PG_URL", "postgresql://root@127.0.0.1:5432/test")


def _dm(i: int) -> InboundMessage:
    customer = str(10_000 + i % 500)  # 500 customers, several messages each
    return InboundMessage(
        channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=customer, sender_id=customer,
        sender_handle=f"customer{customer}", text=f"my order #{i} has not arrived 📦", platform_message_id=f"bench-{i}",
    )


async def _bounded(concurrency: int, jobs):  # type: ignore[no-untyped-def]
    gate = asyncio.Semaphore(concurrency)

    async def run(job):  # type: ignore[no-untyped-def]
        async with gate:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs), return_exceptions=True)


async def _measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    db = Database(url, **({"pool_size": args.concurrency + 5, "max_overflow": 0} if "postgresql" in url else {}))
    try:
        await upgrade(db)
        started = time.perf_counter()
        results = await _bounded(args.concurrency, [actions.record_inbound(db, _dm(i)) for i in range(args.messages)])
        insert_s = time.perf_counter() - started
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

        agents = [
            await create_agent(db, email=f"bench{i}@example.com", name=f"Bench {i}", password="benchmark-pass")
            for i in range(args.agents)
        ]
        tickets = []
        for i in range(args.tickets):
            rec = await actions.record_inbound(db, _dm(args.messages + i * 1000))
            tickets.append(await actions.escalate(db, rec.conversation_id, queue="support"))
        # Every ticket is fought over by every agent: tickets × agents claim attempts, one winner each.
        attempts = [actions.claim(db, t.id, a.id) for t in tickets for a in agents]
        started = time.perf_counter()
        outcomes = await _bounded(args.concurrency, attempts)
        claim_s = time.perf_counter() - started
        wins = sum(not isinstance(o, BaseException) for o in outcomes)
        unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, AlreadyClaimed)]
        if unexpected:
            raise unexpected[0]
        assert wins == len(tickets), f"{wins} winners for {len(tickets)} tickets"
        return {
            "inserts_per_s": args.messages / insert_s,
            "claim_attempts_per_s": len(attempts) / claim_s,
            "tickets_claimed_per_s": len(tickets) / claim_s,
        }
    finally:
        await db.dispose()


async def _postgres_url() -> tuple[str | None, str, object]:
    import asyncpg

    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except Exception as exc:  # noqa: BLE001
        return None, f"skipped: PostgreSQL not reachable at {PG_ADMIN_URL} ({exc})", None
    name = f"frontdesk_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    return url, name, admin


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    report: dict[str, dict[str, float] | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print("measuring SQLite …", file=sys.stderr)
        report["sqlite"] = await _measure(f"sqlite+aiosqlite:///{tmp}/bench.db", args)
    pg_url, name, admin = await _postgres_url()
    if pg_url is None:
        report["postgresql"] = name
    else:
        try:
            print("measuring PostgreSQL …", file=sys.stderr)
            report["postgresql"] = await _measure(pg_url, args)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
            await admin.close()  # type: ignore[attr-defined]

    if args.json:
        print(json.dumps({"params": vars(args), "results": report}))
        return
    print(f"\n{args.messages} inbound messages, {args.tickets} tickets × {args.agents} racing agents, "
          f"concurrency {args.concurrency}\n")
    print(f"{'database':<12}{'inserts/s':>12}{'claim attempts/s':>19}{'tickets claimed/s':>20}")
    for name_, row in report.items():
        if isinstance(row, str):
            print(f"{name_:<12}{row}")
        else:
            print(f"{name_:<12}{row['inserts_per_s']:>12.0f}{row['claim_attempts_per_s']:>19.0f}"
                  f"{row['tickets_claimed_per_s']:>20.0f}")


if __name__ == "__main__":
    asyncio.run(main())
