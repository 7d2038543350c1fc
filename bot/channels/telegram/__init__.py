"""Telegram: customers write to the bot, agents work escalations from a group (python-telegram-bot 22.8).

Modules: `client` (the shared Bot), `customers` (update → inbound message), `updates` (one dispatcher,
handled-once cursor), `polling` / `webhook` (how updates arrive), `sender` (outbox → sendMessage),
`agents` + `pager_view` (the agents' pager), `channel` (start/stop all of it).  See docs/telegram.md.
"""

from bot.channels.telegram.channel import TelegramChannel, TelegramStartError, start_telegram
from bot.channels.telegram.sender import TelegramSender

__all__ = ["TelegramChannel", "TelegramSender", "TelegramStartError", "start_telegram"]
