"""What the store holds about a person, found by handle or platform user id (`frontdesk customers export`).

The export answers a subject access request: every contact row that matches, their conversations and
messages, tickets with their notes and audit trail, leads, event registrations and intent corrections,
and what they wrote in other people's public threads.  Other people's messages in the person's own public
threads are left out (they are those people's data); that they exist is said by a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.db import Database
from storage.models import (
    Channel,
    Contact,
    Conversation,
    EventRegistration,
    Message,
    MessageKind,
    Ticket,
    TicketEvent,
    utcnow,
)

EXPORT_FORMAT = 1


async def find_contacts(db: Database, who: str, *, channel: Channel | None = None) -> list[Contact]:
    """Contacts whose handle (with or without '@', any case) or platform user id is `who`, on every
    channel or on `channel` only."""
    who = who.strip()
    handle = who.removeprefix("@").lower()
    if not handle:
        return []
    async with db.session() as session:
        query = select(Contact).where(
            or_(func.lower(Contact.handle) == handle, Contact.platform_user_id == who)
        )
        if channel is not None:
            query = query.where(Contact.channel == channel)
        return list((await session.execute(query.order_by(Contact.id))).scalars())


async def export_personal_data(db: Database, contacts: Sequence[Contact]) -> dict[str, Any]:
    """Everything stored about these contacts, as JSON-ready data (see the module docstring)."""
    async with db.session() as session:
        exported = [await _contact(session, contact) for contact in contacts]
    return {"format": EXPORT_FORMAT, "exported_at": _iso(utcnow()), "contacts": exported}


async def _contact(session: AsyncSession, contact: Contact) -> dict[str, Any]:
    assert contact.id is not None
    conversations = list((await session.execute(
        select(Conversation).where(Conversation.contact_id == contact.id).order_by(col(Conversation.id))
    )).scalars())
    own = [c.id for c in conversations]
    messages = list((await session.execute(
        select(Message)
        .where(or_(col(Message.conversation_id).in_(own), Message.contact_id == contact.id))
        .order_by(col(Message.id))
    )).scalars())
    tickets = list((await session.execute(
        select(Ticket)
        .where(or_(Ticket.contact_id == contact.id, col(Ticket.conversation_id).in_(own)))
        .order_by(col(Ticket.id))
    )).scalars())
    ticket_ids = [t.id for t in tickets]
    events = list((await session.execute(
        select(TicketEvent).where(col(TicketEvent.ticket_id).in_(ticket_ids)).order_by(col(TicketEvent.id))
    )).scalars())
    registrations = list((await session.execute(
        select(EventRegistration)
        .where(EventRegistration.contact_id == contact.id)
        .order_by(col(EventRegistration.id))
    )).scalars())

    def theirs_or_ours(m: Message) -> bool:  # not a third party's inbound message in their thread
        return m.contact_id in (None, contact.id)

    by_conversation: dict[int, list[dict[str, Any]]] = {cid: [] for cid in own if cid is not None}
    notes: dict[int, list[dict[str, Any]]] = {}
    others_omitted = 0
    elsewhere = []
    for m in messages:
        if m.kind == MessageKind.note:
            notes.setdefault(m.ticket_id or 0, []).append(_note(m))
        elif m.conversation_id not in by_conversation:
            elsewhere.append(_message(m))
        elif theirs_or_ours(m):
            by_conversation[m.conversation_id].append(_message(m))
        else:
            others_omitted += 1
    leads = [{"ticket_id": t.id, **t.data["lead"]} for t in tickets if isinstance(t.data.get("lead"), dict)]
    leads += [
        {"conversation_id": c.id, "in_progress": True, **c.bot_state["lead"]}
        for c in conversations if isinstance(c.bot_state.get("lead"), dict)
    ]
    return {
        "contact": {
            "id": contact.id, "channel": contact.channel.value, "platform_user_id": contact.platform_user_id,
            "handle": contact.handle, "display_name": contact.display_name,
            "created_at": _iso(contact.created_at),
        },
        "conversations": [
            {
                "id": c.id, "channel": c.channel.value, "kind": c.kind.value, "status": c.status.value,
                "platform_ref": c.platform_ref, "bot_state": c.bot_state, "created_at": _iso(c.created_at),
                "updated_at": _iso(c.updated_at), "messages": by_conversation[c.id or 0],
            }
            for c in conversations
        ],
        "other_peoples_messages_omitted": others_omitted,
        "messages_in_other_threads": elsewhere,
        "tickets": [
            {
                "id": t.id, "conversation_id": t.conversation_id, "queue": t.queue.value,
                "status": t.status.value, "priority": t.priority.name, "category": t.category,
                "subject": t.subject, "data": t.data,
                "created_at": _iso(t.created_at), "first_response_at": _iso(t.first_response_at),
                "resolved_at": _iso(t.resolved_at), "notes": notes.get(t.id or 0, []),
            }
            for t in tickets
        ],
        "leads": leads,
        "event_registrations": [
            {"event": r.event_key, "status": r.status, "created_at": _iso(r.created_at),
             "updated_at": _iso(r.updated_at)}
            for r in registrations
        ],
        "intent_corrections": [
            {"message_id": m.id, "text": m.text, "intent": m.intent, "corrected_intent": m.corrected_intent}
            for m in messages if m.corrected_intent is not None and theirs_or_ours(m)
        ],
        "audit_events": [
            {"id": e.id, "ticket_id": e.ticket_id, "actor": e.actor, "action": e.action,
             "detail": e.detail, "created_at": _iso(e.created_at)}
            for e in events
        ],
    }


def _message(m: Message) -> dict[str, Any]:
    return {
        "id": m.id, "conversation_id": m.conversation_id, "ticket_id": m.ticket_id,
        "direction": m.direction.value, "author": m.author.value, "text": m.text,
        "intent": m.intent, "entities": m.entities, "platform_message_id": m.platform_message_id,
        "created_at": _iso(m.created_at), "platform_created_at": _iso(m.platform_created_at),
        "delivered_at": _iso(m.delivered_at),
    }


def _note(m: Message) -> dict[str, Any]:
    return {"id": m.id, "agent_id": m.agent_id, "text": m.text, "created_at": _iso(m.created_at)}


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:  # SQLite hands back naive times; they were stored in UTC
        when = when.replace(tzinfo=timezone.utc)
    return when.isoformat()
