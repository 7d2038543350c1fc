"""TelegramSender: the outbox's way out to Telegram (`ChannelSender` for Channel.telegram).

Target ``{"kind": "telegram", "chat_id": "..."}`` → sendMessage (plain text: customers' and agents' words
are sent as typed, never parsed as markup).  What Telegram answers decides what the outbox does next:

| Telegram says | SendError |
|---|---|
| 429 RetryAfter(n) | ``retry_after_s=n``: the next attempt waits exactly as long as Telegram asked (and this process |
| | sends nothing else to that chat before then) |
| 403 Forbidden (the user blocked the bot), 400 BadRequest (chat not found, too long, ...) | ``permanent`` |
| 5xx, connection trouble, a timeout | retried with the outbox's backoff |

A lapsed in-flight send (``needs_reconcile``) is the one case where we cannot know the truth: bots have no
way to read a chat's history, so `find_delivered` cannot look.  Frontdesk resends (at-least-once) rather
than dropping (at-most-once): a customer who sees an agent's answer twice is mildly puzzled, one who never
gets it was let down.  The window is narrow, and narrowed further here: the platform id of every
successful send is remembered in this process, so if only the store's `mark_sent` failed (the process
lived on), the retry finds the id and does not send again.  Only a process that dies between Telegram's
answer and the commit can cause a duplicate.

Before each send, `FloodControl` (shared with the agents' pager) paces it to Telegram's flood limits: about
one message a second per chat, 20 a minute per group, 30 a second in all.  A wait of up to
`MAX_PACING_WAIT_S` is taken here; a longer one puts the row back for that long (``retry_after_s``, not an
attempt that might have posted), so an outbox slot is never held for long and other chats' replies go on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from telegram import Bot
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError

from bot.channels.base import SendError
from bot.channels.telegram.client import retry_after_seconds
from bot.channels.telegram.customers import platform_message_id
from bot.channels.telegram.flood import FloodControl
from storage.models import Channel
from storage.outbox import Delivery

log = logging.getLogger("frontdesk.telegram")

_REMEMBERED_SENDS = 10_000
MAX_PACING_WAIT_S = 3.0


class TelegramSender:
    """Delivers outbox rows to Telegram chats."""

    channel = Channel.telegram

    def __init__(self, bot: Bot, flood: FloodControl | None = None) -> None:
        self.bot = bot
        self.flood = flood or FloodControl()
        self._sent: OrderedDict[int, str] = OrderedDict()  # outbox id -> "chat:message" of what went out

    async def deliver(self, delivery: Delivery) -> str:
        target = delivery.target
        if target.get("kind") != "telegram" or "chat_id" not in target:
            raise SendError(f"not a Telegram target: {target!r}", permanent=True)
        already = self._sent.get(delivery.id)
        if already is not None:
            return already
        chat_id = _chat_id(target["chat_id"])
        wait = await self.flood.acquire(chat_id, max_wait_s=MAX_PACING_WAIT_S)
        if wait > 0:
            raise SendError(f"paced to Telegram's flood limits: chat {chat_id} may get its next message in "
                            f"{wait:.1f}s", retry_after_s=wait)
        try:
            message = await self.bot.send_message(chat_id=chat_id, text=delivery.text)
        except RetryAfter as exc:
            wait = retry_after_seconds(exc)
            self.flood.penalise(chat_id, wait)
            raise SendError(f"Telegram rate limit: retry after {wait:g}s", retry_after_s=wait) from exc
        except (Forbidden, BadRequest) as exc:
            raise SendError(f"Telegram refused the message to chat {chat_id}: {exc.message}", permanent=True) from exc
        except InvalidToken as exc:
            # Not this message's fault: keep it and retry once the operator fixed the token.
            raise SendError(f"Telegram refused the bot token ({exc.message}); check FRONTDESK_TELEGRAM_TOKEN") from exc
        except TelegramError as exc:
            raise SendError(f"Telegram send failed: {exc.message}") from exc
        sent_id = platform_message_id(message.chat_id, message.message_id)
        self._remember(delivery.id, sent_id)
        return sent_id

    async def find_delivered(self, delivery: Delivery) -> str | None:
        """The id if this process sent it already; otherwise None (bots cannot read chat history)."""
        return self._sent.get(delivery.id)

    def _remember(self, outbox_id: int, sent_id: str) -> None:
        self._sent[outbox_id] = sent_id
        while len(self._sent) > _REMEMBERED_SENDS:
            self._sent.popitem(last=False)


def _chat_id(value: object) -> int | str:
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text
