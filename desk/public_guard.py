"""An agent's reply on a public X thread that holds personal data is held with a warning, not posted.

Everyone can read a public reply, and a deleted post has already been seen.  The desk (pages and API)
asks this module before it queues a reply; the agent then removes the details, asks the customer to move
to DM, or confirms that the text is meant to be public (`confirm_public`).
"""

from __future__ import annotations

from sqlalchemy import select

from frontdesk.core.personal_text import personal_data_in
from frontdesk.core.vocabulary import ConversationKind
from storage.db import Database
from storage.models import Conversation, Ticket


async def public_reply_warning(db: Database, ticket_id: int, text: str, *, confirmed: bool) -> str | None:
    """Why this reply must not go out as it is (None: send it)."""
    if confirmed:
        return None
    found = personal_data_in(text)
    if not found:
        return None
    async with db.session() as session:
        kind = (
            await session.execute(
                select(Conversation.kind)
                .join(Ticket, Ticket.conversation_id == Conversation.id)
                .where(Ticket.id == ticket_id)
            )
        ).scalar_one_or_none()
    if kind != ConversationKind.public:
        return None  # unknown tickets fail later with their own 404; DMs and Telegram chats are private
    return (
        f"Not sent: this reply is public on X and seems to contain {_and(found)}. Remove it, or ask the "
        "customer to send you a DM; to post it as written, confirm that it is meant to be public."
    )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
