"""How wide is the window in which a crash makes Telegram delivery repeat a message?

    .venv/bin/python bench/telegram_resend_window.py [--customers 200] [--database-url URL (an empty database of your own)] [--json]

Telegram has no idempotency key and bots cannot read a chat's history, so a process that dies after
sendMessage succeeded and before the outbox row is committed as sent re-sends that message once its lease
lapses: delivery is at-least-once.  This measures that window with the real `OutboxLoop` and
`TelegramSender` against the emulator (flood limits on, one answer per customer, as in production): from
the moment python-telegram-bot hands back Telegram's answer to the moment `mark_sent` has committed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
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
from storage.actions import InboundMessage, bot_reply, record_inbound  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Channel, ConversationKind, OutboxItem, OutboxStatus  # noqa: E402
from storage.outbox import Delivery  # noqa: E402


async def bench(customers: int, database_url: str | None) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(database_url or f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(db)
        async with run_telegram_sandbox() as sandbox:
            settings = Settings(telegram_token=SecretStr(sandbox.token), telegram_api_base=sandbox.url,
                                telegram_agents_chat=None, telegram_webhook_url="", telegram_poll_timeout_s=1)
            channel = TelegramChannel(db, settings, poll=False)
            await channel.start()
            try:
                for c in range(customers):
                    user = 700_000 + c
                    sandbox.emulator.user_message(chat_id=None, sender={"id": user, "username": f"c{user}"},
                                                  text="hello")
                    recorded = await record_inbound(db, InboundMessage(
                        channel=Channel.telegram, conversation_kind=ConversationKind.telegram,
                        conversation_ref=str(user), sender_id=str(user), sender_handle=f"c{user}",
                        sender_name=f"c{user}", text="hello", platform_message_id=f"{user}:1"))
                    await bot_reply(db, recorded.conversation_id, "Thanks! Your order ships today.",
                                    idempotency_key=f"answer:{recorded.message_id}")
                answered: dict[int, float] = {}
                windows: list[float] = []
                sender = channel.sender
                deliver = sender.deliver

                async def timed_deliver(delivery: Delivery) -> str:
                    platform_id = await deliver(delivery)
                    answered[delivery.id] = time.perf_counter()
                    return platform_id

                sender.deliver = timed_deliver  # type: ignore[method-assign]
                loop = OutboxLoop(db, {Channel.telegram: sender}, "bench", idle_s=0.05)
                mark = loop._mark_sent

                async def timed_mark(outbox_id: int, platform_id: str | None) -> None:
                    await mark(outbox_id, platform_id)
                    windows.append(time.perf_counter() - answered[outbox_id])

                loop._mark_sent = timed_mark  # type: ignore[method-assign]
                started = time.perf_counter()
                task = asyncio.create_task(loop.run())
                try:
                    while True:
                        async with db.session() as session:
                            done = (await session.execute(select(func.count()).select_from(OutboxItem).where(
                                OutboxItem.status == OutboxStatus.sent))).scalar_one()
                        if done >= customers:
                            break
                        await asyncio.sleep(0.05)
                finally:
                    task.cancel()
                elapsed = time.perf_counter() - started
            finally:
                await channel.stop()
        await db.dispose()
    windows.sort()
    return {
        "customers": customers, "database": "postgresql" if database_url else "sqlite",
        "send_s": round(elapsed, 2), "send_per_s": round(customers / elapsed, 1),
        "window_p50_ms": round(statistics.median(windows) * 1000, 2),
        "window_p99_ms": round(windows[int(len(windows) * 0.99) - 1] * 1000, 2),
        "window_max_ms": round(windows[-1] * 1000, 2),
        "flood_refusals": sandbox.emulator.state.flood_refusals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(bench(args.customers, args.database_url))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['customers']} answers ({result['database']}) in {result['send_s']} s "
          f"({result['send_per_s']}/s, {result['flood_refusals']} refused by flood limits); "
          f"re-send window p50 {result['window_p50_ms']} ms, p99 {result['window_p99_ms']} ms, "
          f"max {result['window_max_ms']} ms")


if __name__ == "__main__":
    main()
