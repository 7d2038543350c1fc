"""Telegram channel throughput against the local emulator: updates recorded per second, messages sent per second.

    .venv/bin/python bench/telegram_channel.py [--customers 100] [--messages 5] [--json]

Ingest: `customers × messages` private messages are queued in the emulator at once; the real channel (python-
telegram-bot long polling, the dispatcher persisting its cursor after every update, `record_inbound`) drains
them into a fresh SQLite store.  Delivery: one bot answer per customer message is queued with `bot_reply`, and
the real `OutboxLoop` with `TelegramSender` delivers them (one in flight per conversation, as in production).
Both are measured on loopback, so they bound what Frontdesk itself does, not Telegram's own limits (about 30
messages/s per bot, 1/s per chat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.channels.telegram import TelegramChannel  # noqa: E402
from bot.outbox import OutboxLoop  # noqa: E402
from frontdesk.core.settings import Settings  # noqa: E402
from sandbox.telegram.app import run_telegram_sandbox  # noqa: E402
from storage.actions import bot_reply  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Channel, Message, OutboxItem, OutboxStatus  # noqa: E402


async def _count(db: Database, stmt) -> int:  # type: ignore[no-untyped-def]
    async with db.session() as session:
        return (await session.execute(stmt)).scalar_one()


async def _wait_until(db: Database, stmt, target: int, timeout_s: float = 600.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while await _count(db, stmt) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await _count(db, stmt)} of {target} after {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


async def bench(customers: int, per_customer: int) -> dict[str, float | int]:
    total = customers * per_customer
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(db)
        async with run_telegram_sandbox() as sandbox:
            settings = Settings(telegram_token=SecretStr(sandbox.token), telegram_api_base=sandbox.url,
                                telegram_agents_chat=None, telegram_webhook_url="", telegram_poll_timeout_s=1)
            for i in range(per_customer):
                for c in range(customers):
                    user = 500_000 + c
                    sandbox.emulator.user_message(chat_id=None, sender={"id": user, "username": f"c{user}"},
                                                  text=f"question {i} from {user}: where is my order?")
            channel = TelegramChannel(db, settings)
            started = time.perf_counter()
            await channel.start()
            try:
                await _wait_until(db, select(func.count()).select_from(Message), total)
                ingest_s = time.perf_counter() - started

                async with db.session() as session:
                    conversations = (await session.execute(select(Message.conversation_id, Message.id))).all()
                for conversation_id, message_id in conversations:
                    await bot_reply(db, conversation_id, "Thanks! Your order ships today.",
                                    idempotency_key=f"answer:{message_id}")
                loop = OutboxLoop(db, {Channel.telegram: channel.sender}, "bench", idle_s=0.05)
                started = time.perf_counter()
                task = asyncio.create_task(loop.run())
                try:
                    await _wait_until(
                        db, select(func.count()).select_from(OutboxItem).where(OutboxItem.status == OutboxStatus.sent),
                        total,
                    )
                finally:
                    task.cancel()
                send_s = time.perf_counter() - started
                sent = len([m for m in sandbox.emulator.sent()["messages"] if not m["edited"]])
            finally:
                await channel.stop()
        await db.dispose()
    return {
        "customers": customers, "messages": total,
        "ingest_s": round(ingest_s, 2), "ingest_per_s": round(total / ingest_s, 1),
        "send_s": round(send_s, 2), "send_per_s": round(total / send_s, 1), "sent_by_emulator": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5, help="messages per customer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(bench(args.customers, args.messages))
    if args.json:
        print(json.dumps(result))
        return
    print(f"Telegram ingest:   {result['messages']} updates from {result['customers']} customers recorded in "
          f"{result['ingest_s']} s  ({result['ingest_per_s']} updates/s, SQLite)")
    print(f"Telegram delivery: {result['messages']} answers sent in {result['send_s']} s  "
          f"({result['send_per_s']} messages/s; the emulator received {result['sent_by_emulator']})")


if __name__ == "__main__":
    main()
