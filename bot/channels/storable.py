"""Inbound messages as the store can hold them: what a platform sent, repaired where it must be.

X and Telegram pass on whatever their users typed, including a NUL or a lone surrogate (in a display
name, say) that neither database can store.  Refusing such a message would lose it, and with it every
other message in the same webhook payload or poller page, which would then be fetched and refused again
forever.  So every converter hands its `InboundMessage` through `storable()`: NUL removed, lone
surrogates as U+FFFD, each field cut to what its column takes; each repair is logged (which message,
which field, never the content) and counted in `frontdesk_inbound_repaired_total`.
"""

from __future__ import annotations

import dataclasses
import logging

from frontdesk.core import metrics
from storage.actions import InboundMessage
from storage.models import Contact, Conversation, Message
from storage.text import MAX_TEXT_CHARS, storable_text

log = logging.getLogger(__name__)


def _column_chars(table: type, column: str) -> int:
    length = table.__table__.c[column].type.length  # type: ignore[attr-defined]
    assert isinstance(length, int), f"{table.__name__}.{column} has no length"
    return length


# field -> (the most the store's column takes, the label it is counted under)
_LIMITS: dict[str, tuple[int, str]] = {
    "text": (MAX_TEXT_CHARS, "text"),
    "sender_name": (_column_chars(Contact, "display_name"), "sender_name"),
    "sender_handle": (_column_chars(Contact, "handle"), "sender_handle"),
    "sender_id": (_column_chars(Contact, "platform_user_id"), "ids"),
    "conversation_ref": (_column_chars(Conversation, "platform_ref"), "ids"),
    "platform_message_id": (_column_chars(Message, "platform_message_id"), "ids"),
    "in_reply_to_platform_id": (_column_chars(Message, "in_reply_to_platform_id"), "ids"),
}


def storable(message: InboundMessage) -> InboundMessage:
    """`message` with every string field storable; the same object when nothing needed repair."""
    changes: dict[str, str] = {}
    repaired: list[str] = []
    for name, (limit, label) in _LIMITS.items():
        value = getattr(message, name)
        if value is None:
            continue
        fixed = storable_text(value, max_chars=limit)
        if fixed != value:
            changes[name] = fixed
            if label not in repaired:
                repaired.append(label)
    if not changes:
        return message
    message = dataclasses.replace(message, **changes)
    channel = getattr(message.channel, "value", str(message.channel))
    for label in repaired:
        metrics.inbound_repaired(channel, label)
    log.warning(
        "%s message %s: %s held text the store cannot hold (NUL, lone surrogate or over the length limit); "
        "stored repaired",
        channel, message.platform_message_id, ", ".join(changes),
    )
    return message
