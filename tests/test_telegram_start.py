"""Start-up refusals of the Telegram channel name their fix (and leave no poller behind)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.channels.telegram import TelegramChannel, TelegramStartError
from storage.db import Database
from tests.fixtures.telegram_channel import telegram_settings
from tests.fixtures.telegram_sandbox import TelegramSandbox


async def test_a_token_telegram_refuses_names_the_setting(
    sqlite_database_url: str, telegram_sandbox: TelegramSandbox
) -> None:
    db = Database(sqlite_database_url)
    try:
        settings = telegram_settings(telegram_sandbox, telegram_token=SecretStr("123456:not-the-secret"))
        channel = TelegramChannel(db, settings)
        with pytest.raises(TelegramStartError, match="refused the bot token.*FRONTDESK_TELEGRAM_TOKEN"):
            await channel.start()
        await channel.stop()
        assert not channel.ready
    finally:
        await db.dispose()


async def test_a_malformed_token_is_refused_before_any_request(
    sqlite_database_url: str, telegram_sandbox: TelegramSandbox
) -> None:
    db = Database(sqlite_database_url)
    try:
        with pytest.raises(TelegramStartError, match="BotFather.*FRONTDESK_TELEGRAM_TOKEN"):
            TelegramChannel(db, telegram_settings(telegram_sandbox, telegram_token=SecretStr("no-colon-here")))
    finally:
        await db.dispose()


async def test_webhook_mode_without_a_secret_is_refused(
    sqlite_database_url: str, telegram_sandbox: TelegramSandbox
) -> None:
    db = Database(sqlite_database_url)
    try:
        settings = telegram_settings(telegram_sandbox, telegram_webhook_url="https://bot.example/webhooks/telegram",
                                     telegram_webhook_secret=None)
        channel = TelegramChannel(db, settings)
        with pytest.raises(TelegramStartError, match="FRONTDESK_TELEGRAM_WEBHOOK_SECRET"):
            await channel.start()
        await channel.stop()
        # Nothing was registered with Telegram.
        assert (await telegram_sandbox.control.state())["webhook"]["url"] == ""
    finally:
        await db.dispose()


@pytest.mark.parametrize("url", [
    "http://frontdesk.brand.example/webhooks/telegram",   # not HTTPS
    "https://frontdesk.brand.example:8000/webhooks/telegram",  # a port Telegram does not deliver to
    "https:///webhooks/telegram",                          # no host
])
async def test_a_webhook_url_telegram_would_refuse_is_named_at_start_up(
    sqlite_database_url: str, telegram_sandbox: TelegramSandbox, url: str
) -> None:
    # Bot API setWebhook: HTTPS only, ports 443, 80, 88, 8443.  Caught before anything is registered.
    db = Database(sqlite_database_url)
    try:
        settings = telegram_settings(telegram_sandbox, telegram_webhook_url=url,
                                     telegram_webhook_secret=SecretStr("a-secret-of-the-right_shape"))
        with pytest.raises(TelegramStartError, match="FRONTDESK_TELEGRAM_WEBHOOK_URL"):
            TelegramChannel(db, settings)
        assert (await telegram_sandbox.control.state())["webhook"]["url"] == ""
    finally:
        await db.dispose()
