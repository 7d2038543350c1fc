"""Telegram customers in: polling and webhook, recorded once, never repeated after a restart.

Real python-telegram-bot against the emulator on loopback, real store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from bot.channels.telegram import TelegramChannel
from bot.channels.telegram.client import build_bot
from bot.channels.telegram.customers import CustomerInbox
from bot.channels.telegram.polling import TelegramPoller
from bot.channels.telegram.updates import UpdateDispatcher
from bot.channels.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from storage.db import Database
from storage.models import Channel, Contact, Conversation, ConversationKind, Message
from tests.fixtures.bot import eventually
from tests.fixtures.telegram_channel import TelegramHarness, telegram_settings
from tests.fixtures.telegram_sandbox import TelegramSandbox


async def _count_messages(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(Message))).scalar_one()


async def test_a_private_message_becomes_a_telegram_conversation_and_wakes_the_router(tg: TelegramHarness) -> None:
    sent = await tg.control.message(4242, "Where is my order #77?", username="alice")
    stored = await tg.customer_message(f"4242:{sent['message_id']}")

    assert stored.text == "Where is my order #77?"
    async with tg.db.session() as session:
        conversation = await session.get(Conversation, stored.conversation_id)
        contact = await session.get(Contact, conversation.contact_id)  # type: ignore[union-attr]
    assert conversation is not None and contact is not None
    assert (conversation.channel, conversation.kind, conversation.platform_ref) == (
        Channel.telegram, ConversationKind.telegram, "4242")
    assert (contact.platform_user_id, contact.handle) == ("4242", "alice")
    assert tg.wakes, "the router was not woken after the message was recorded"


async def test_group_chatter_is_not_a_customer(tg: TelegramHarness) -> None:
    await tg.control.message(5151, "anyone around?", chat_id=-4000, chat_type="group")
    marker = await tg.control.message(5151, "hello privately")
    await tg.customer_message(f"5151:{marker['message_id']}")
    assert await _count_messages(tg.db) == 1


async def test_a_restart_neither_repeats_nor_loses_updates(db: Database, telegram_sandbox: TelegramSandbox) -> None:
    control = telegram_sandbox.control
    settings = telegram_settings(telegram_sandbox, telegram_agents_chat=None)
    bot = build_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_base)  # type: ignore[union-attr]
    await bot.initialize()
    try:
        # A first process handles two updates and dies before confirming them to Telegram (it never
        # asked getUpdates again with the next offset): Telegram will hand them out again.
        await control.message(61, "first")
        await control.message(62, "second")
        first = UpdateDispatcher(db, bot.id, CustomerInbox(db))
        await first.load()
        for update in await bot.get_updates(timeout=0):
            await first.dispatch(update)
        assert first.handled == 2
        while_down = await control.message(63, "written while the bot was down")

        # The second process starts from the persisted cursor.
        second = UpdateDispatcher(db, bot.id, CustomerInbox(db))
        poller = TelegramPoller(bot, second, timeout_s=1)
        await poller.start()
        try:
            await eventually(lambda: _count_messages_at_least(db, 3), what="the message written during the downtime")
            after = await control.message(64, "and one after the restart")
            await eventually(lambda: _count_messages_at_least(db, 4), what="the message after the restart")
        finally:
            await poller.stop()
        assert second.handled == 2, "the restarted poller handled updates the first process had handled"
        assert await _count_messages(db) == 4
        assert while_down["update_id"] < after["update_id"] <= second.last_update_id  # type: ignore[operator]
    finally:
        await bot.shutdown()


async def _count_messages_at_least(db: Database, n: int) -> bool:
    return await _count_messages(db) >= n


PUBLIC_URL = "https://frontdesk.brand.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server), what="the webhook receiver to listen", timeout_s=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def test_webhook_mode_records_updates_and_refuses_a_wrong_secret(
    db: Database, telegram_sandbox: TelegramSandbox
) -> None:
    secret = "s3cret-token_for-the-webhook"
    app = FastAPI()
    async with _serving(app) as url:
        # Telegram posts to the public https URL; the sandbox's proxy hands it to the local server.
        await telegram_sandbox.control.webhook_proxy(url)
        settings = telegram_settings(telegram_sandbox, telegram_agents_chat=None,
                                     telegram_webhook_url=f"{PUBLIC_URL}{WEBHOOK_PATH}",
                                     telegram_webhook_secret=secret)
        channel = TelegramChannel(db, settings)
        await channel.start()
        app.include_router(channel.webhook_router())
        try:
            # The emulator, as Telegram would, POSTs the update with the secret token.
            sent = await telegram_sandbox.control.message(777, "via the webhook")
            stored = await _wait_for(db, f"777:{sent['message_id']}")
            assert stored.text == "via the webhook"
            info = (await telegram_sandbox.control.state())["webhook"]
            assert info["url"] == f"{PUBLIC_URL}{WEBHOOK_PATH}"

            # Someone else posting an update: refused, nothing stored.
            forged = {"update_id": 999999999, "message": {
                "message_id": 5, "date": 1764000000, "chat": {"id": 888, "type": "private"},
                "from": {"id": 888, "is_bot": False, "first_name": "Mallory"}, "text": "forged"}}
            async with httpx.AsyncClient() as http:
                missing = await http.post(f"{url}{WEBHOOK_PATH}", json=forged)
                wrong = await http.post(f"{url}{WEBHOOK_PATH}", json=forged, headers={SECRET_HEADER: "guess"})
                right = await http.post(f"{url}{WEBHOOK_PATH}", json={**forged, "update_id": 999999998},
                                        headers={SECRET_HEADER: secret})
            assert (missing.status_code, wrong.status_code) == (403, 403)
            assert right.status_code == 200  # the control: the same body with the secret is taken
            async with db.session() as session:
                texts = (await session.execute(select(Message.text))).scalars().all()
            assert sorted(texts) == ["forged", "via the webhook"]
            assert texts.count("forged") == 1
        finally:
            await channel.stop()


async def _wait_for(db: Database, platform_id: str) -> Message:
    async def probe() -> Message | None:
        async with db.session() as session:
            return (await session.execute(
                select(Message).where(Message.platform_message_id == platform_id))).scalar_one_or_none()

    return await eventually(probe, what=f"message {platform_id} in the store")
