"""Telegram's update_id can go back: after a week without updates the next one is random (issue 21).

Bot API, Update.update_id (../shared/specs/telegram-bot-api.json): "If there are no new updates for at least a
week, then identifier of the next update will be chosen randomly instead of sequentially."  A bot that keeps
polling with ``offset = last + 1`` confirms, i.e. drops, an update numbered below it; one that skips every
``update_id <= last`` ignores it.  Either way a customer's message is lost.  Real python-telegram-bot against
the emulator (``"update_id"`` on its control API plays the restart), real store.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select, update

from bot.channels.telegram import TelegramChannel
from bot.channels.telegram.updates import RESTART_SUSPECT_IDLE_S, cursor_name
from bot.channels.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from storage.db import Database
from storage.models import ChannelCursor, Message, utcnow
from tests.fixtures.bot import eventually
from tests.fixtures.telegram_channel import telegram_settings
from tests.fixtures.telegram_sandbox import TelegramSandbox

RESTARTED_ID = 4242  # what Telegram might pick: far below the emulator's ~100000000


async def _stored(db: Database, platform_id: str) -> Message:
    async def probe() -> Message | None:
        async with db.session() as session:
            return (await session.execute(
                select(Message).where(Message.platform_message_id == platform_id))).scalar_one_or_none()

    return await eventually(probe, what=f"message {platform_id} in the store", timeout_s=8)


async def _texts(db: Database) -> list[str]:
    async with db.session() as session:
        return sorted((await session.execute(select(Message.text))).scalars().all())


async def test_after_a_silent_week_a_restarted_numbering_is_read_by_the_next_process(
    db: Database, telegram_sandbox: TelegramSandbox
) -> None:
    control = telegram_sandbox.control
    settings = telegram_settings(telegram_sandbox, telegram_agents_chat=None)
    first = TelegramChannel(db, settings)
    await first.start()
    try:
        before = await control.message(71, "last message before a quiet week")
        await _stored(db, f"71:{before['message_id']}")
    finally:
        await first.stop()
    assert before["update_id"] > RESTARTED_ID

    # A week passes without updates (the cursor was last written 8 days ago); Telegram then numbers anew.
    async with db.transaction() as session:
        await session.execute(update(ChannelCursor).where(ChannelCursor.name == cursor_name(first.bot.id))
                              .values(updated_at=utcnow() - timedelta(days=8)))
    await asyncio.sleep(1.5)  # the long poll the stopped process abandoned (timeout 1 s) ends on the server
    restarted = await control.message(72, "first message after the quiet week", update_id=RESTARTED_ID)
    assert restarted["update_id"] == RESTARTED_ID

    second = TelegramChannel(db, settings)
    await second.start()
    try:
        await _stored(db, f"72:{restarted['message_id']}")
        after = await control.message(73, "and the next one")
        assert after["update_id"] == RESTARTED_ID + 1
        await _stored(db, f"73:{after['message_id']}")
        assert second.dispatcher is not None and second.dispatcher.last_update_id == RESTARTED_ID + 1
        assert second.dispatcher.restarts == 1
    finally:
        await second.stop()
    assert await _texts(db) == ["and the next one", "first message after the quiet week",
                                "last message before a quiet week"]


async def test_a_running_poller_stops_confirming_past_the_last_id_once_a_week_went_quiet(
    db: Database, telegram_sandbox: TelegramSandbox
) -> None:
    control = telegram_sandbox.control
    channel = TelegramChannel(db, telegram_settings(telegram_sandbox, telegram_agents_chat=None))
    await channel.start()
    try:
        before = await control.message(81, "before")
        await _stored(db, f"81:{before['message_id']}")
        dispatcher = channel.dispatcher
        assert dispatcher is not None
        real_clock = dispatcher.clock
        dispatcher.clock = lambda: real_clock() + RESTART_SUSPECT_IDLE_S + 3600  # the same process, a week on
        await asyncio.sleep(1.5)  # the long poll in flight (timeout 1 s, offset last + 1) comes back
        restarted = await control.message(82, "after the quiet week", update_id=RESTARTED_ID)
        await _stored(db, f"82:{restarted['message_id']}")
        assert dispatcher.next_offset == RESTARTED_ID + 1  # back to confirming, from the new numbering
    finally:
        await channel.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, what="the webhook receiver to listen", timeout_s=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_webhook_takes_a_lower_update_id_carrying_a_new_message_but_not_a_repeat(
    db: Database, telegram_sandbox: TelegramSandbox
) -> None:
    secret = "s3cret-token_for-the-webhook"
    app = FastAPI()
    async with _serving(app) as local:
        await telegram_sandbox.control.webhook_proxy(local)
        settings = telegram_settings(telegram_sandbox, telegram_agents_chat=None, telegram_webhook_secret=secret,
                                     telegram_webhook_url=f"https://frontdesk.brand.example{WEBHOOK_PATH}")
        channel = TelegramChannel(db, settings)
        await channel.start()
        app.include_router(channel.webhook_router())
        try:
            before = await telegram_sandbox.control.message(91, "before the quiet week")
            await _stored(db, f"91:{before['message_id']}")
            restarted = await telegram_sandbox.control.message(92, "after it", update_id=RESTARTED_ID)
            await _stored(db, f"92:{restarted['message_id']}")

            # Telegram delivering the same update again (our answer was lost): a repeat, not handled twice,
            # although its id is above the last one handled.
            assert channel.dispatcher is not None
            handled = channel.dispatcher.handled
            repeat = {"update_id": before["update_id"], "message": {
                "message_id": before["message_id"], "date": 1764000000, "chat": {"id": 91, "type": "private"},
                "from": {"id": 91, "is_bot": False, "first_name": "User 91"}, "text": "before the quiet week"}}
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"{local}{WEBHOOK_PATH}", json=repeat, headers={SECRET_HEADER: secret})
            assert answer.status_code == 200
            assert channel.dispatcher.handled == handled
        finally:
            await channel.stop()
    assert await _texts(db) == ["after it", "before the quiet week"]
