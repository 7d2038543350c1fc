"""Listening's state changes: record what the rules found, and what an agent does with an item.

Each is one transaction with its audit event (`listening_events`; a ticket's own events in `ticket_events`).
Nothing here sends anything on its own: the only outbound messages are an agent's reply (`reply_to_item`),
in public only under a post that addressed the brand (X refuses the others since 2026-02-23), or by DM only
to someone X says accepts the brand's DMs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.vocabulary import TICKET_SUBJECT_MAX_CHARS, ListeningStatus, Sentiment
from storage.actions._common import (
    agent_actor,
    audit,
    get_agent,
    get_for_update,
    insert_ignoring_conflict,
    queue_outbound,
)
from storage.actions.inbound import (
    InboundMessage,
    _get_or_create_conversation,
    _record,
    _upsert_contact,
    mark_handled_in,
)
from storage.actions.tickets import escalate_in
from storage.db import Database
from storage.errors import InvalidTransition, NotAllowed, StoreError
from storage.models import (
    Author,
    Channel,
    Conversation,
    ConversationKind,
    ConversationStatus,
    ListeningEvent,
    ListeningItem,
    Message,
    Ticket,
    TicketStatus,
    utcnow,
)
from storage.text import storable_text, validate_text

NOTE_MAX_CHARS = 2000


@dataclass(frozen=True)
class NewListeningItem:
    """A post a rule found, classified, as the poller hands it to the store."""

    platform_post_id: str
    conversation_ref: str
    rule: str
    author_id: str
    author_handle: str
    author_name: str
    author_accepts_dms: bool | None
    text: str
    posted_at: datetime
    category: str | None
    intent: str | None
    confidence: float | None
    sentiment: Sentiment | str
    addressed_brand: bool


@dataclass(frozen=True)
class TicketRoute:
    """Where the ticket opened from an item goes (the desk reads it off the taxonomy)."""

    queue: str
    priority: str = "normal"
    category: str = "other"


class ListeningReplyNotAllowed(NotAllowed):
    """A reply X (or the person) would refuse; `dm_offered` says whether a DM is possible instead."""

    def __init__(self, reason: str, *, dm_offered: bool) -> None:
        super().__init__(reason)
        self.dm_offered = dm_offered


def public_reply_refusal(item: ListeningItem) -> str | None:
    """Why the brand may not answer this post in public, or None when it may."""
    if item.addressed_brand:
        return None
    who = f"@{item.author_handle}" if item.author_handle else "the author"
    return (
        f"X lets the brand reply in public only under a post that @mentions it or quotes one of its posts "
        f"(since 2026-02-23); {who} did neither"
    )


def dm_refusal(item: ListeningItem) -> str | None:
    """Why the brand may not DM this author, or None when X says they accept the brand's DMs."""
    who = f"@{item.author_handle}" if item.author_handle else "the author"
    if item.author_accepts_dms is None:
        return f"X did not say whether {who} accepts DMs from the brand (receives_your_dm), so none is offered"
    if not item.author_accepts_dms:
        return f"{who} does not accept DMs from the brand (X: receives_your_dm is false)"
    return None


async def record_items(db: Database, items: Sequence[NewListeningItem]) -> list[int]:
    """Store the posts not stored before (by post id), in one transaction; the new rows' ids."""
    now = utcnow()
    rows = []
    for item in items:
        rows.append({
            "platform_post_id": item.platform_post_id,
            "conversation_ref": item.conversation_ref,
            "rule": item.rule,
            "author_id": item.author_id,
            "author_handle": item.author_handle[:128],
            "author_name": storable_text(item.author_name, max_chars=256),
            "author_accepts_dms": item.author_accepts_dms,
            "text": storable_text(item.text),
            "posted_at": item.posted_at,
            "category": item.category,
            "intent": item.intent,
            "confidence": item.confidence,
            "sentiment": Sentiment(item.sentiment),
            "status": ListeningStatus.new,
            "addressed_brand": item.addressed_brand,
            "created_at": now,
            "updated_at": now,
        })
    if not rows:
        return []
    new: list[int] = []
    async with db.transaction() as session:
        for row in rows:
            row_id = await insert_ignoring_conflict(session, ListeningItem, row, ["platform_post_id"])
            if row_id is not None:
                new.append(row_id)
    return new


def _event(session: AsyncSession, item: ListeningItem, action: str, agent_id: int, **detail: Any) -> None:
    session.add(ListeningEvent(item_id=item.id, agent_id=agent_id, action=action, detail=detail, created_at=utcnow()))


async def _active_agent(session: AsyncSession, agent_id: int) -> None:
    agent = await get_agent(session, agent_id)
    if not agent.active:
        raise NotAllowed(f"agent {agent.email} is disabled")


async def note_item(db: Database, item_id: int, agent_id: int, text: str) -> ListeningItem:
    """An agent's note on an item (replaces the previous one); a new item becomes `noted`."""
    text = validate_text(text, allow_empty=False, field="note")
    if len(text) > NOTE_MAX_CHARS:
        raise StoreError(f"the note has {len(text):,} characters; at most {NOTE_MAX_CHARS:,}")
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        item = await get_for_update(session, ListeningItem, item_id)
        item.note = text
        if item.status == ListeningStatus.new:
            item.status = ListeningStatus.noted
        item.updated_at = utcnow()
        _event(session, item, "noted", agent_id, note=text)
        return item


async def dismiss_item(db: Database, item_id: int, agent_id: int) -> ListeningItem:
    """Nothing to do about this post; a ticketed item stays ticketed (its ticket is the record)."""
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        item = await get_for_update(session, ListeningItem, item_id)
        if item.status == ListeningStatus.ticketed:
            raise InvalidTransition("dismiss", "ticketed")
        if item.status != ListeningStatus.dismissed:
            item.status = ListeningStatus.dismissed
            item.updated_at = utcnow()
            _event(session, item, "dismissed", agent_id)
        return item


async def open_ticket(db: Database, item_id: int, agent_id: int, route: TicketRoute) -> Ticket:
    """Open a ticket for the item's public post: its contact, thread and message (handled: the bot never
    answers it) and a queued ticket, with the audit events, in one transaction.  Idempotent: an item already
    ticketed returns its ticket while that is open."""
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        item = await get_for_update(session, ListeningItem, item_id)
        ticket, _ = await _ensure_public_ticket(session, item, agent_id, route)
        return ticket


async def _ensure_public_ticket(
    session: AsyncSession, item: ListeningItem, agent_id: int, route: TicketRoute
) -> tuple[Ticket, Conversation]:
    now = utcnow()
    inbound = InboundMessage(
        channel=Channel.x,
        conversation_kind=ConversationKind.public,
        conversation_ref=item.conversation_ref,
        sender_id=item.author_id,
        sender_handle=item.author_handle,
        sender_name=item.author_name,
        text=item.text,
        platform_message_id=item.platform_post_id,
        platform_created_at=item.posted_at,
        summons_brand=item.addressed_brand,
    )
    recorded = await _record(session, inbound, validate_text(item.text, allow_empty=True), now)
    if recorded.is_new:
        await mark_handled_in(session, recorded.message_id)  # an agent's find, not the bot's to answer
    return await _ticket_for(session, item, recorded.conversation_id, agent_id, route)


async def _ticket_for(
    session: AsyncSession, item: ListeningItem, conversation_id: int, agent_id: int, route: TicketRoute
) -> tuple[Ticket, Conversation]:
    conversation = await get_for_update(session, Conversation, conversation_id)
    ticket = await escalate_in(
        session, conversation_id, queue=route.queue, priority=route.priority, category=route.category,
        subject=item.text[:TICKET_SUBJECT_MAX_CHARS], reason="listening", actor=agent_actor(agent_id),
        data={"listening_item_id": item.id, "listening_rule": item.rule},
    )
    if item.ticket_id != ticket.id:
        audit(session, ticket, "opened_from_listening", actor=agent_actor(agent_id), agent_id=agent_id,
              detail={"listening_item_id": item.id, "rule": item.rule, "post_id": item.platform_post_id})
        item.ticket_id = ticket.id
        item.status = ListeningStatus.ticketed
        item.updated_at = utcnow()
        _event(session, item, "ticketed", agent_id, ticket_id=ticket.id)
    return ticket, conversation


async def _take(session: AsyncSession, ticket: Ticket, conversation: Conversation, agent_id: int) -> None:
    """The replying agent holds the ticket (as claiming it would)."""
    if ticket.status == TicketStatus.assigned and ticket.assignee_id not in (None, agent_id):
        holder = await get_agent(session, ticket.assignee_id) if ticket.assignee_id else None
        raise NotAllowed(f"ticket {ticket.id} is held by {holder.name if holder else 'another agent'}")
    if ticket.status != TicketStatus.assigned:
        ticket.status = TicketStatus.assigned
        ticket.assignee_id = agent_id
        conversation.status = ConversationStatus.agent
        audit(session, ticket, "claimed", actor=agent_actor(agent_id), agent_id=agent_id)


async def reply_to_item(
    db: Database, item_id: int, agent_id: int, text: str, route: TicketRoute, *, dm: bool = False
) -> Message:
    """An agent answers the post: in public under it (only if it addressed the brand) or, with `dm`, by DM
    (only if X says the author accepts the brand's DMs).  Opens (or reuses) the ticket, which the agent then
    holds, and queues the message, in one transaction.  A refused reply raises `ListeningReplyNotAllowed`
    with the reason, and writes nothing."""
    text = validate_text(text, allow_empty=False)
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        item = await get_for_update(session, ListeningItem, item_id)
        if dm:
            refusal = dm_refusal(item)
            if refusal:
                raise ListeningReplyNotAllowed(refusal, dm_offered=False)
            ticket, conversation = await _dm_ticket(session, item, agent_id, route)
        else:
            refusal = public_reply_refusal(item)
            if refusal:
                offered = dm_refusal(item) is None
                raise ListeningReplyNotAllowed(
                    refusal + ("; X says they accept DMs from the brand: answer by DM instead" if offered
                               else f"; and {dm_refusal(item)}"),
                    dm_offered=offered,
                )
            ticket, conversation = await _ensure_public_ticket(session, item, agent_id, route)
        await _take(session, ticket, conversation, agent_id)
        message = await queue_outbound(
            session, conversation, contact_user_id=item.author_id, text=text, author=Author.agent,
            agent_id=agent_id, ticket_id=ticket.id,
        )
        now = utcnow()
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        ticket.updated_at = now
        audit(session, ticket, "replied", actor=agent_actor(agent_id), agent_id=agent_id,
              detail={"message_id": message.id, "via": "dm" if dm else "public", "listening_item_id": item.id})
        _event(session, item, "replied", agent_id, via="dm" if dm else "public", message_id=message.id)
        return message


async def _dm_ticket(
    session: AsyncSession, item: ListeningItem, agent_id: int, route: TicketRoute
) -> tuple[Ticket, Conversation]:
    """The author's DM conversation with the brand (created if new) and its ticket."""
    now = utcnow()
    inbound = InboundMessage(
        channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=item.author_id,
        sender_id=item.author_id, sender_handle=item.author_handle, sender_name=item.author_name,
        text="", platform_message_id="",
    )
    contact_id = await _upsert_contact(session, inbound, now)
    conversation = await _get_or_create_conversation(session, inbound, contact_id, now)
    return await _ticket_for(session, item, conversation.id, agent_id, route)


__all__ = [
    "ListeningReplyNotAllowed",
    "NewListeningItem",
    "TicketRoute",
    "dismiss_item",
    "dm_refusal",
    "note_item",
    "open_ticket",
    "public_reply_refusal",
    "record_items",
    "reply_to_item",
]
