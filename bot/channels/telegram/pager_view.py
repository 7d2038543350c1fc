"""What the agents' chat shows of a ticket: one message per ticket (the "card"), kept up to date.

The card is plain text (no parse mode), so whatever a customer typed is shown as typed and can never
break the markup.  It carries the Claim button while the ticket waits; once someone holds it, the
button goes and the card names the holder.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from storage.actions.tags import tags_of_in
from storage.db import Database
from storage.models import Agent, Author, Contact, Message, MessageKind, Ticket, TicketStatus

LAST_MESSAGES = 5
MAX_LINE_CHARS = 300
CLAIM_PREFIX = "claim:"

_PRIORITY_MARK = {"urgent": "🔴 urgent", "high": "🟠 high", "normal": "normal", "low": "low"}


@dataclass(frozen=True)
class Line:
    who: str
    text: str


@dataclass(frozen=True)
class TicketCard:
    ticket_id: int
    queue: str
    priority: str
    status: TicketStatus
    subject: str
    channel: str
    customer: str
    holder: str | None
    lines: tuple[Line, ...]
    last_message_id: int  # the newest message on the ticket when the card was read (0: none)
    # As of the card's last redraw (a tag alone does not redraw it: that would spend the group's edits).
    tags: tuple[str, ...] = ()


def claim_data(ticket_id: int) -> str:
    return f"{CLAIM_PREFIX}{ticket_id}"


def ticket_from_claim_data(data: str | None) -> int | None:
    if not data or not data.startswith(CLAIM_PREFIX):
        return None
    rest = data[len(CLAIM_PREFIX):]
    return int(rest) if rest.isdigit() else None


def customer_label(contact: Contact) -> str:
    if contact.handle and contact.display_name:
        return f"{contact.display_name} (@{contact.handle})"
    if contact.handle:
        return f"@{contact.handle}"
    return contact.display_name or f"user {contact.platform_user_id}"


async def load_card(db: Database, ticket_id: int) -> TicketCard | None:
    """Everything the card shows, read in one session; None if the ticket does not exist."""
    async with db.session() as session:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            return None
        contact = await session.get(Contact, ticket.contact_id)
        holder = await session.get(Agent, ticket.assignee_id) if ticket.assignee_id else None
        rows = (
            await session.execute(
                select(col(Message.id), col(Message.author), col(Message.text), col(Agent.name))
                .outerjoin(Agent, col(Agent.id) == col(Message.agent_id))
                .where(col(Message.ticket_id) == ticket_id, col(Message.kind) == MessageKind.message)
                .order_by(col(Message.id).desc())
                .limit(LAST_MESSAGES)
            )
        ).all()
        tags = (await tags_of_in(session, [ticket_id])).get(ticket_id, ())
    assert contact is not None
    customer = customer_label(contact)
    lines = []
    for _id, author, text, agent_name in reversed(rows):
        who = {Author.customer: contact.handle or contact.display_name or "customer", Author.bot: "bot"}.get(
            author, agent_name or "agent"
        )
        lines.append(Line(who=who, text=_clip(text)))
    return TicketCard(
        ticket_id=ticket_id,
        queue=ticket.queue.value,
        priority=ticket.priority.name,
        status=ticket.status,
        subject=ticket.subject,
        channel=contact.channel.value,
        customer=customer,
        holder=holder.name if holder else None,
        lines=tuple(lines),
        last_message_id=rows[0][0] if rows else 0,
        tags=tags,
    )


def render(card: TicketCard) -> str:
    head = f"🎫 Ticket #{card.ticket_id} · {card.queue} · {_PRIORITY_MARK.get(card.priority, card.priority)}"
    parts = [head, f"Customer: {card.customer} on {_channel_name(card.channel)}"]
    if card.subject:
        parts.append(f"Subject: {card.subject}")
    if card.tags:
        parts.append("Tags: " + " ".join(f"#{tag}" for tag in card.tags))
    if card.lines:
        parts.append("")
        parts.extend(f"{line.who}: {line.text}" for line in card.lines)
    parts.append("")
    parts.append(_status_line(card))
    return "\n".join(parts)


def keyboard(card: TicketCard) -> InlineKeyboardMarkup | None:
    """The Claim button, while nobody holds the ticket."""
    if card.status != TicketStatus.queued:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton("Claim", callback_data=claim_data(card.ticket_id))]])


def _status_line(card: TicketCard) -> str:
    if card.status == TicketStatus.queued:
        return "⏳ Waiting. Press Claim to take it."
    if card.status == TicketStatus.assigned:
        return (f"👤 Held by {card.holder}. {card.holder}: reply to this message to answer the customer; "
                "/note TEXT, /handback or /resolve as a reply work too.")
    if card.status == TicketStatus.resolved:
        return f"✅ Resolved{f' by {card.holder}' if card.holder else ''}."
    return f"↩️ Handed back to the bot{f' by {card.holder}' if card.holder else ''}."


def _channel_name(channel: str) -> str:
    return {"x": "X", "telegram": "Telegram"}.get(channel, channel)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"
