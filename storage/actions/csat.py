"""The satisfaction question (CSAT): asked when a ticket is resolved, answered by the customer's next message.

Asking is part of resolving (`tickets.resolve(..., csat=policy)`): the question, its `csat_responses` row,
its audit event and what the conversation remembers (`bot_state["csat"]`) are written in the resolve's own
transaction, so a ticket is never resolved without its question being decided, nor asked twice.  The
answer is recorded by the bot (`bot/router.py` reads it, `bot/effects.py` calls `record_answer_in`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.actions._common import audit, get_for_update, queue_outbound
from storage.errors import PublicReplyNotAllowed
from storage.models import (
    Author,
    Contact,
    Conversation,
    ConversationKind,
    CsatResponse,
    Message,
    MessageKind,
    Ticket,
)

STATE_KEY = "csat"  # in Conversation.bot_state: {"ticket_id": n, "until": ISO time} while an answer is awaited
COMMENT_MAX_CHARS = 1000
SCORES = range(1, 6)

# (public thread?, the customer's handle, a seed that picks the public wording) -> the question's text.
Phrasing = Callable[[bool, str, int], str]


@dataclass(frozen=True)
class CsatPolicy:
    """When to ask (FRONTDESK_CSAT_* settings) and how (the brand's wording, content/replies.yml)."""

    question: Phrasing
    enabled: bool = True
    window_days: int = 30
    after_bot_only: bool = False
    answer_hours: int = 72


async def ask_after_resolve_in(
    session: AsyncSession, ticket: Ticket, policy: CsatPolicy | None, now: datetime
) -> Message | None:
    """Queue the question for a just-resolved ticket, or record in its audit trail why it was not asked.

    Not asked: CSAT off (nothing recorded), a ticket no agent held or answered (unless configured), a contact
    asked within the window, or a public thread X would not let the brand answer in.
    """
    if policy is None or not policy.enabled:
        return None
    assert ticket.id is not None
    # The contact's row serialises two of their tickets resolved at once: one question within the window.
    contact = await get_for_update(session, Contact, ticket.contact_id)
    reason = await _reason_not_to_ask(session, ticket, policy, now)
    if reason is None:
        conversation = await get_for_update(session, Conversation, ticket.conversation_id)
        public = conversation.kind == ConversationKind.public
        text = policy.question(public, contact.handle or contact.platform_user_id, ticket.id)
        try:
            message = await queue_outbound(
                session, conversation, contact_user_id=contact.platform_user_id, text=text, author=Author.bot,
                ticket_id=ticket.id, idempotency_key=f"ticket:{ticket.id}:csat",
            )
        except PublicReplyNotAllowed:  # refused before anything was written
            reason = "public thread: X would not let the brand reply under the customer's latest post"
        else:
            session.add(CsatResponse(ticket_id=ticket.id, contact_id=contact.id, asked_at=now))
            until = now + timedelta(hours=policy.answer_hours)
            conversation.bot_state = {**conversation.bot_state, STATE_KEY: {"ticket_id": ticket.id,
                                                                            "until": until.isoformat()}}
            audit(session, ticket, "csat_asked", actor="bot", detail={"message_id": message.id})
            return message
    audit(session, ticket, "csat_skipped", actor="system", detail={"reason": reason})
    return None


async def _reason_not_to_ask(session: AsyncSession, ticket: Ticket, policy: CsatPolicy, now: datetime) -> str | None:
    if (await session.execute(select(CsatResponse.id).where(CsatResponse.ticket_id == ticket.id))).first():
        return "already asked about this ticket"
    if not policy.after_bot_only and not await _an_agent_took_part(session, ticket):
        return "bot-only: no agent held or answered the ticket (FRONTDESK_CSAT_AFTER_BOT_ONLY)"
    if policy.window_days > 0:
        since = now - timedelta(days=policy.window_days)
        earlier = (
            await session.execute(
                select(CsatResponse.ticket_id)
                .where(CsatResponse.contact_id == ticket.contact_id, CsatResponse.asked_at >= since)
                .limit(1)
            )
        ).scalar_one_or_none()
        if earlier is not None:
            return f"asked within {policy.window_days} days (ticket {earlier}; FRONTDESK_CSAT_WINDOW_DAYS)"
    return None


async def _an_agent_took_part(session: AsyncSession, ticket: Ticket) -> bool:
    if ticket.assignee_id is not None or ticket.first_response_at is not None:
        return True
    replied = await session.execute(
        select(Message.id).where(
            Message.ticket_id == ticket.id, Message.author == Author.agent, Message.kind == MessageKind.message
        ).limit(1)
    )
    return replied.first() is not None


def awaiting(bot_state: dict[str, Any], now: datetime) -> int | None:
    """The ticket whose question the conversation's next message may answer, or None (none, or lapsed)."""
    entry = bot_state.get(STATE_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("ticket_id"), int):
        return None
    try:
        until = datetime.fromisoformat(str(entry.get("until")))
    except ValueError:
        return None
    return entry["ticket_id"] if now < until else None


async def record_answer_in(
    session: AsyncSession, ticket_id: int, message_id: int, score: int, comment: str, now: datetime
) -> bool:
    """Store the customer's score (and the rest of their words as the comment) on the ticket's question.

    False when there is no unanswered question for the ticket (answered before, or never asked): nothing is
    written.  The answer joins the ticket's conversation, so agents read it where they worked.
    """
    if score not in SCORES:
        raise ValueError(f"a CSAT score is 1 to 5, not {score}")
    row = (
        await session.execute(
            select(CsatResponse).where(CsatResponse.ticket_id == ticket_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.score is not None:
        return False
    row.score, row.comment, row.answered_at = score, comment.strip()[:COMMENT_MAX_CHARS], now
    await session.execute(
        update(Message).where(Message.id == message_id, Message.ticket_id.is_(None)).values(ticket_id=ticket_id)  # type: ignore[union-attr]
    )
    ticket = await session.get(Ticket, ticket_id)
    assert ticket is not None
    audit(session, ticket, "csat_answered", actor="customer", detail={"score": score, "message_id": message_id})
    return True
