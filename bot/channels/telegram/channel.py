"""The Telegram channel as one object the supervisor starts and stops.

    channel = TelegramChannel(db, settings, wake=worker.wake)
    await channel.start()          # getMe, then polling (or setWebhook), and the agents' pager
    senders[Channel.telegram] = channel.sender
    if channel.webhook_mode: add_routes(http_app, channel.webhook_router())
    ...
    await channel.stop()

Sandbox: point ``telegram_api_base`` at the emulator and use `SANDBOX_TELEGRAM_TOKEN` (see
`start_telegram`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from telegram import Bot
from telegram.error import InvalidToken, TelegramError

from bot.channels.base import Wake
from bot.channels.telegram.agents import TelegramPager
from bot.channels.telegram.client import build_bot
from bot.channels.telegram.customers import CustomerInbox
from bot.channels.telegram.flood import FloodControl
from bot.channels.telegram.polling import TelegramPoller
from bot.channels.telegram.sender import TelegramSender
from bot.channels.telegram.updates import UpdateDispatcher
from bot.channels.telegram.webhook import check_webhook_url, register_webhook, telegram_webhook_router
from bot.content import csat_policy
from frontdesk.core.settings import Settings
from storage.db import Database

log = logging.getLogger("frontdesk.telegram")


class TelegramStartError(RuntimeError):
    """The Telegram channel cannot start; the message names the fix."""


class TelegramChannel:
    """Customers in, agents' pager, and the sender, over one bot token."""

    def __init__(self, db: Database, settings: Settings, *, wake: Wake | None = None, poll: bool = True) -> None:
        if settings.telegram_token is None:
            raise TelegramStartError("set FRONTDESK_TELEGRAM_TOKEN (from @BotFather) to use Telegram")
        self.db = db
        self.settings = settings
        self.poll = poll
        try:
            self.bot: Bot = build_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_base)
        except ValueError as exc:
            raise TelegramStartError(str(exc)) from None
        if settings.telegram_webhook_url:
            try:
                check_webhook_url(settings.telegram_webhook_url)
            except ValueError as exc:
                raise TelegramStartError(str(exc)) from None
        self.flood = FloodControl()  # one per bot: the sender's and the pager's sends count together
        self.sender = TelegramSender(self.bot, self.flood)
        self.customers = CustomerInbox(db, wake)
        self.pager: TelegramPager | None = None
        self.dispatcher: UpdateDispatcher | None = None
        self.poller: TelegramPoller | None = None
        self._started = False
        self._pager_running = False

    @property
    def webhook_mode(self) -> bool:
        return bool(self.settings.telegram_webhook_url)

    @property
    def ready(self) -> bool:
        """Started, and (when polling) the poller is alive."""
        if not self._started:
            return False
        return self.poller is None or self.poller.running

    async def start(self) -> None:
        """Log in (getMe), then take updates by polling or webhook, and start the pager if configured."""
        try:
            await self.bot.initialize()
        except InvalidToken:
            # python-telegram-bot's message quotes the whole token; the bot id (before the colon) is public.
            bot_id = self.bot.token.split(":", 1)[0]
            raise TelegramStartError(
                f"Telegram refused the bot token of bot id {bot_id}; check FRONTDESK_TELEGRAM_TOKEN"
            ) from None
        except TelegramError as exc:
            raise TelegramStartError(
                f"cannot reach the Telegram Bot API at {self.bot.base_url.rsplit('/bot', 1)[0]} ({exc}); "
                "check the network or FRONTDESK_TELEGRAM_API_BASE"
            ) from None
        if self.settings.telegram_agents_chat is not None:
            self.pager = TelegramPager(
                self.bot, self.db, self.settings.telegram_agents_chat, poll_s=self.settings.telegram_pager_poll_s,
                flood=self.flood, csat=csat_policy(self.settings), desk_url=self.settings.desk_public_url,
            )
        self.dispatcher = UpdateDispatcher(self.db, self.bot.id, self.customers, self.pager)
        await self.dispatcher.load()
        if self.poll:
            await self.register_webhook()
            await self.start_polling()
        self._started = True

    async def register_webhook(self) -> None:
        """In webhook mode, tell Telegram where to send updates (setWebhook); otherwise nothing."""
        if self.webhook_mode:
            await register_webhook(self.bot, self.settings.telegram_webhook_url, self._webhook_secret())
            log.info("telegram: @%s takes updates by webhook at %s", self.bot.username,
                     self.settings.telegram_webhook_url)

    async def start_polling(self) -> None:
        """Take updates by long polling (unless in webhook mode) and run the agents' pager (idempotent).

        With several workers, call it only while this process holds the bot's leader lease
        (bot/channels/leading.py): two `getUpdates` on one token make Telegram answer 409 Conflict.
        """
        assert self.dispatcher is not None, "start() the Telegram channel first"
        if not self.webhook_mode and self.poller is None:
            self.poller = TelegramPoller(self.bot, self.dispatcher, timeout_s=self.settings.telegram_poll_timeout_s)
            await self.poller.start()
            log.info("telegram: @%s takes updates by long polling", self.bot.username)
        if self.pager is not None and not self._pager_running:
            await self.pager.start()
            self._pager_running = True
            log.info("telegram: agents' pager posts escalations to chat %s", self.pager.chat_id)

    async def stop_polling(self) -> None:
        """Stop the poller and the pager (another process's lease takes over)."""
        if self.pager is not None and self._pager_running:
            self._pager_running = False
            await self.pager.stop()
        if self.poller is not None:
            poller, self.poller = self.poller, None
            await poller.stop()

    def webhook_router(self) -> APIRouter:
        """The `/webhooks/telegram` endpoint (only after `start()`)."""
        if self.dispatcher is None:
            raise RuntimeError("start() the Telegram channel before asking for its webhook router")
        return telegram_webhook_router(self.bot, self.dispatcher.dispatch, self._webhook_secret())

    def _webhook_secret(self) -> str:
        secret = self.settings.telegram_webhook_secret
        if secret is None or not secret.get_secret_value():
            raise TelegramStartError(
                "FRONTDESK_TELEGRAM_WEBHOOK_URL is set but FRONTDESK_TELEGRAM_WEBHOOK_SECRET is not: "
                "choose a random 32+ character secret of A-Za-z0-9_- (Telegram sends it back with every update)"
            )
        return secret.get_secret_value()

    async def stop(self) -> None:
        await self.stop_polling()
        self._started = False
        try:
            await self.bot.shutdown()
        except TelegramError as exc:  # closing the HTTP pool must not fail a shutdown
            log.debug("telegram: shutdown: %s", exc)


async def start_telegram(settings: Settings, db: Database, wake: Wake | None = None, *,
                         sandbox_url: str | None = None) -> TelegramChannel:
    """Build and start the Telegram channel; with `sandbox_url`, against that emulator and its token.

    The caller keeps the result: its `.sender` goes to the outbox loop, its `webhook_router()` to the HTTP
    app in webhook mode, and ``await channel.stop()`` ends it.
    """
    if sandbox_url is not None:
        from pydantic import SecretStr

        from frontdesk.core.settings import SANDBOX_TELEGRAM_TOKEN

        settings = settings.model_copy(update={
            "telegram_token": SecretStr(SANDBOX_TELEGRAM_TOKEN), "telegram_api_base": sandbox_url,
        })
    channel = TelegramChannel(db, settings, wake=wake)
    await channel.start()
    return channel
