"""Requests/s one `frontdesk desk` process serves on PostgreSQL, its memory, and search latency.

    python bench/desk_http.py [--tickets 200] [--clients 16] [--seconds 10] [--search-messages 100000]

A throwaway database with `--tickets` open tickets and one agent; `--clients` concurrent API clients
(bearer token) alternate between the queue (`GET /api/tickets`) and one ticket with its conversation
(`GET /api/tickets/{id}`), the two requests an agent's screen makes most.

Then `--search-messages` more messages (customer wording, each with its own order number) are added to
those tickets and `GET /api/search` is timed one request at a time for what agents type: an order number
(one hit), a common word (thousands of hits, newest 20 shown), two word starts, a handle, and a word
nobody wrote; it prints p50 and p95 per kind (the target: p95 under 100 ms at 100,000 messages).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.cluster import ROOT, create_pg_database, drop_pg_database, free_port
from storage import actions
from storage.actions import InboundMessage
from storage.agents import create_agent
from storage.db import Database
from storage.models import AgentRole, Channel, ConversationKind


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--search-messages", type=int, default=100_000, help="0 skips the search figures")
    args = parser.parse_args()
    url = await create_pg_database()
    db = Database(url)
    process = None
    try:
        await create_agent(db, email="bench@example.com", name="Bench", password="bench password 123",
                           role=AgentRole.agent)
        ids = []
        for i in range(args.tickets):
            rec = await actions.record_inbound(db, InboundMessage(
                channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=f"u{i}",
                sender_id=f"u{i}", sender_handle=f"user{i}", text="my order never arrived", platform_message_id=f"d{i}",
            ))
            ids.append((await actions.escalate(db, rec.conversation_id, queue="support", reason="bench")).id)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
        env.update({"FRONTDESK_DATABASE_URL": url, "FRONTDESK_SECRET_KEY": "bench-secret-key-0123456789abcdef",
                    "FRONTDESK_HTTP_PORT": str(port), "FRONTDESK_VAR_DIR": tempfile.mkdtemp(),
                    "FRONTDESK_LOG_LEVEL": "WARNING"})
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "frontdesk", "desk", cwd=ROOT, env=env,
                                                       stdout=asyncio.subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            token = (await http.post("/api/token", json={"email": "bench@example.com",
                                                         "password": "bench password 123"})).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            done = 0
            errors = 0
            stop_at = time.monotonic() + args.seconds

            async def client(n: int) -> None:
                nonlocal done, errors
                i = n
                while time.monotonic() < stop_at:
                    path = "/api/tickets" if i % 2 == 0 else f"/api/tickets/{ids[i % len(ids)]}"
                    response = await http.get(path, headers=headers)
                    if response.status_code == 200:
                        done += 1
                    else:
                        errors += 1
                    i += 1

            start = time.monotonic()
            await asyncio.gather(*(client(n) for n in range(args.clients)))
            elapsed = time.monotonic() - start
        rss = 0
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
        print(f"desk: {done / elapsed:.1f} requests/s ({args.clients} clients, {args.tickets} open tickets, "
              f"half queue pages, half ticket pages), {errors} errors, resident memory {rss} MB")
        if args.search_messages:
            await _add_messages(db, args.search_messages)
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await _time_searches(http, headers, args.search_messages)
    finally:
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()
        await db.dispose()
        await drop_pg_database(url)


_SENTENCES = [
    "my order {n} never arrived and tracking has not moved",
    "the parcel for order {n} came damaged, the box was crushed",
    "I was charged twice for order {n}, please refund one payment",
    "can I change the delivery address on order {n}",
    "order {n} is late, the delivery date passed yesterday",
    "do you ship to Norway? asking about order {n}",
    "the voucher did not apply at checkout for order {n}",
    "thanks, the replacement for order {n} arrived today",
]


async def _add_messages(db: Database, count: int) -> None:
    """`count` customer messages spread over the open tickets, in one INSERT ... SELECT (seconds, not minutes)."""
    from sqlalchemy import text

    started = time.monotonic()
    cases = " ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(_SENTENCES))
    async with db.transaction() as session:
        await session.execute(text(f"""
            INSERT INTO messages (conversation_id, ticket_id, contact_id, channel, direction, author, kind, text,
                                  entities, platform_message_id, created_at, handled_at)
            SELECT t.conversation_id, t.id, t.contact_id, 'x', 'in', 'customer', 'message',
                   replace(CASE g % {len(_SENTENCES)} {cases} END, '{{n}}', 'QX-' || (100000 + g)),
                   '[]', 'bench-' || g, now() - (g || ' seconds')::interval, now()
            FROM generate_series(1, :count) AS g
            JOIN (SELECT id, conversation_id, contact_id, row_number() OVER (ORDER BY id) - 1 AS k FROM tickets) t
              ON t.k = g % (SELECT count(*) FROM tickets)
        """), {"count": count})
    async with db.engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE messages")
    print(f"search: {count:,} messages added in {time.monotonic() - started:.1f} s")


async def _time_searches(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    kinds = {
        "order number (1 hit)": [f"QX-{100000 + n}" for n in range(1, count, max(1, count // 40))],
        "common word": ["order", "delivery", "parcel", "refund"] * 10,
        "two word starts": ["deliv addr", "charg twic", "track mov", "vouch check"] * 10,
        "handle": ["@user1", "user19", "@user7"] * 13,
        "no hit": ["zebra", "quokka", "xylophone"] * 13,
    }
    for kind, queries in kinds.items():
        timings = []
        for q in queries:
            started = time.perf_counter()
            response = await http.get("/api/search", params={"q": q}, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        timings.sort()
        p50 = timings[len(timings) // 2]
        p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
        print(f"search at {count:,} messages, {kind:<22} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({len(timings)} requests)")


if __name__ == "__main__":
    asyncio.run(main())
