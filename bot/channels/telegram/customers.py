"""Telegram customers: a private message to the bot becomes an inbound message in the store.

Recording comes first and is all this module does with a message: `record_inbound` stores it once
(keyed by ``"<chat id>:<message id>"``, so a repeated update is harmless), then the router is woken.
What the bot answers is the router's business, and the answer leaves through the outbox like any other.

Only private chats are customers.  Groups are ignored (the agents' chat is handled by the pager), so a
bot added to some public group does not turn its chatter into tickets.
"""

from __future__ import annotations

import logging

from telegram import Message, Update

from bot.channels.base import Wake
from bot.channels.storable import storable
from storage.actions import InboundMessage, record_inbound
from storage.db import Database
from storage.models import Channel, ConversationKind

log = logging.getLogger("frontdesk.telegram")

# What a customer sees of a message that has no text (a photo without caption, a sticker, ...):
# agents still see that something arrived, and the NLU gets something it can fall back on.
_MEDIA_KINDS = ("photo", "video", "voice", "audio", "document", "sticker", "animation", "video_note",
                "location", "contact", "poll")


def platform_message_id(chat_id: int, message_id: int) -> str:
    """The store's id for a Telegram message: message ids are only unique within a chat."""
    return f"{chat_id}:{message_id}"


def _text_of(message: Message) -> str:
    if message.text:
        return message.text
    if message.caption:
        return message.caption
    for kind in _MEDIA_KINDS:
        if getattr(message, kind, None):
            return f"[{kind.replace('_', ' ')}]"
    return "[message]"


def inbound_from_update(update: Update) -> InboundMessage | None:
    """The customer's message in this update, or None when it is not one (group chatter, edits, bots)."""
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    if message.from_user.is_bot:
        return None
    user = message.from_user
    replied = message.reply_to_message
    # A name or text with a NUL or a lone surrogate (Telegram passes them on) is repaired, not refused:
    # refused, the update would be skipped and the customer's message lost.
    return storable(InboundMessage(
        channel=Channel.telegram,
        conversation_kind=ConversationKind.telegram,
        conversation_ref=str(message.chat.id),
        sender_id=str(user.id),
        sender_handle=user.username or "",
        sender_name=user.full_name,
        text=_text_of(message),
        platform_message_id=platform_message_id(message.chat.id, message.message_id),
        in_reply_to_platform_id=platform_message_id(message.chat.id, replied.message_id) if replied else None,
        platform_created_at=message.date,
    ))


class CustomerInbox:
    """Records customers' Telegram messages and wakes the router."""

    def __init__(self, db: Database, wake: Wake | None = None) -> None:
        self.db = db
        self.wake = wake or (lambda: None)
        self.recorded = 0

    async def handle(self, update: Update) -> bool:
        """Record the update's customer message, if it has one; True when the update was for us."""
        inbound = inbound_from_update(update)
        if inbound is None:
            return False
        recorded = await record_inbound(self.db, inbound)
        if recorded.is_new:
            self.recorded += 1
            self.wake()
        return True
