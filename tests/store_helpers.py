"""Small builders for store tests: an inbound DM, tweet or Telegram message with sensible defaults."""

from __future__ import annotations

import itertools

from storage.actions import InboundMessage
from storage.models import Channel, ConversationKind

_ids = itertools.count(1_000)


def dm(text: str = "my order never arrived", *, sender: str = "111", handle: str = "alice", msg_id: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=sender, sender_id=sender,
        sender_handle=handle, text=text, platform_message_id=msg_id or f"dm-{next(_ids)}",
    )


def mention(text: str = "@brand my order is late", *, sender: str = "111", handle: str = "alice",
            thread: str | None = None, msg_id: str | None = None) -> InboundMessage:
    tweet_id = msg_id or f"{next(_ids)}"
    return InboundMessage(
        channel=Channel.x, conversation_kind=ConversationKind.public, conversation_ref=thread or tweet_id,
        sender_id=sender, sender_handle=handle, text=text, platform_message_id=tweet_id,
    )
