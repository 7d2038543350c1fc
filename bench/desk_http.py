"""Requests/s one `frontdesk desk` process serves on PostgreSQL, and its memory.

    python bench/desk_http.py [--tickets 200] [--clients 16] [--seconds 10]

A throwaway database with `--tickets` open tickets and one agent; `--clients` concurrent API clients
(bearer token) alternate between the queue (`GET /api/tickets`) and one ticket with its conversation
(`GET /api/tickets/{id}`), the two requests an agent's screen makes most.
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
    finally:
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()
        await db.dispose()
        await drop_pg_database(url)


if __name__ == "__main__":
    asyncio.run(main())
