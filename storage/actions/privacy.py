"""Erasing customers' personal data: on request (`frontdesk customers erase`) and by retention.

Each function is one transaction: the rows, the audit events and the cancelled deliveries change together
or not at all.  What is erased, table by table (docs/privacy.md has the why):

- contacts: handle, display name and platform user id become the pseudonym `erased-<id>`; the row stays,
  so ticket statistics still count one customer, and the person writing again is a new contact;
- conversations: the platform reference (an X DM's user id, a Telegram chat id, the root tweet id) becomes
  `erased-<id>`; what the bot remembered (`bot_state`: a lead being asked for) is dropped;
- messages, in and out, notes included: text -> `[erased]`, the entities the NLU found -> none, the
  agent's intent correction -> none; an unhandled inbound one is marked handled so the bot never answers it;
- tickets: subject -> `[erased]`, data (the lead, registration details) -> {}; an open one is closed;
- csat_responses: the comment -> `[erased]` (the score stays);
- ticket_events: `detail` keeps ids and labels only; an `erased` event says who erased and when;
- outbox: text and target erased; rows not yet sent are cancelled (failed, with the reason);
- event_registrations: deleted.
- ticket_tags: kept (words agents or the bot's rules chose, such as `vip`; never the customer's text).

Kept on purpose: row ids, times, statuses and intents (the desk's statistics, the audit trail), and the
platform's message ids, which de-duplicate ingest: a tweet or DM a poller reads again must be recognised,
not stored and answered a second time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, exists, func, not_, or_, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from storage.actions._common import audit, get_for_update
from storage.customers import unlink_in
from storage.db import Database
from storage.models import (
    WAITING_MESSAGES,
    Contact,
    Conversation,
    CsatResponse,
    ConversationStatus,
    Direction,
    EventRegistration,
    Message,
    OutboxItem,
    OutboxStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
    utcnow,
)
from storage.search import optimize_sql

log = logging.getLogger("frontdesk.privacy")

ERASED_TEXT = "[erased]"
CANCELLED_DELIVERY = "cancelled: the customer's personal data was erased"
PSEUDONYM_PREFIX = "erased-"
# Audit details keep what identifies rows and states, never free text (a reason may one day quote someone).
# A tag is a label agents chose ("vip"), kept like the ticket_tags rows themselves.
_DETAIL_LABELS = frozenset({"queue", "priority", "from", "to", "tag"})
_CLOSED_NOTE = "closed: the customer's data was erased"
_CHUNK = 500  # ids per IN (...) list: well inside SQLite's and asyncpg's bind-parameter limits


@dataclass(frozen=True)
class Erasure:
    """What one erasure changed (all zero: nothing was left to erase)."""

    contacts: int = 0
    conversations: int = 0
    messages: int = 0
    tickets: int = 0
    registrations: int = 0
    deliveries_cancelled: int = 0

    def __add__(self, other: Erasure) -> Erasure:
        return Erasure(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        return ", ".join(f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self))


def pseudonym(row_id: int) -> str:
    """The stable stand-in for an erased contact's names (and an erased conversation's platform reference).

    X handles and Telegram usernames cannot contain '-', and platform ids are digits: no real value collides.
    """
    return f"{PSEUDONYM_PREFIX}{row_id}"


# --- erasure on request ------------------------------------------------------------------------------------


async def erase_contacts(db: Database, contact_ids: Sequence[int], *, actor: str = "cli") -> Erasure:
    """Erase everything stored about these contacts (see the module docstring), in one transaction.

    Also what they wrote in other people's public threads, and what other rows derived from it there (a
    ticket subject, a lead's details) or said about them (an @mention of their handle).  Erasing again
    changes nothing.  `actor` names who asked ("cli", "retention") in the audit trail.
    """
    async with db.transaction() as session:
        return await erase_contacts_in(session, contact_ids, actor=actor)


async def erase_contacts_in(session: AsyncSession, contact_ids: Sequence[int], *, actor: str) -> Erasure:
    """`erase_contacts` inside the caller's transaction."""
    now = utcnow()
    ids = sorted(set(contact_ids))
    if not ids:
        return Erasure()
    contacts = [await get_for_update(session, Contact, contact_id) for contact_id in ids]
    own = list((await session.execute(
        select(Conversation.id).where(col(Conversation.contact_id).in_(ids)).order_by(Conversation.id)
    )).scalars())
    conversations = [await get_for_update(session, Conversation, conversation_id) for conversation_id in own]
    elsewhere = (await session.execute(
        select(Message.text, Message.entities, Message.conversation_id, Message.ticket_id).where(
            col(Message.contact_id).in_(ids),
            col(Message.conversation_id).not_in(own) if own else true(),
        )
    )).all()

    ticket_ids = list((await session.execute(
        select(Ticket.id).where(or_(col(Ticket.contact_id).in_(ids), col(Ticket.conversation_id).in_(own)))
    )).scalars())
    note = f"customer erased by {actor}"
    erased_tickets = await _erase_tickets(session, ticket_ids, actor=actor, note=note, now=now)
    messages, cancelled = await _erase_messages(
        session, or_(col(Message.conversation_id).in_(own), col(Message.contact_id).in_(ids)), now=now
    )
    await _scrub_elsewhere(session, elsewhere, contacts, exclude_tickets=set(ticket_ids))
    for conversation in conversations:
        assert conversation.id is not None
        conversation.platform_ref = pseudonym(conversation.id)
        conversation.status = ConversationStatus.resolved
        conversation.bot_state = {}
        conversation.updated_at = now
    registrations = (await session.execute(
        delete(EventRegistration).where(col(EventRegistration.contact_id).in_(ids))
    )).rowcount or 0
    for contact in contacts:
        assert contact.id is not None
        await unlink_in(session, contact.id)  # an erased contact is nobody's other account any more
    for contact in contacts:
        assert contact.id is not None
        contact.handle = contact.display_name = contact.platform_user_id = pseudonym(contact.id)
    erased = Erasure(
        contacts=len(contacts), conversations=len(conversations), messages=messages, tickets=erased_tickets,
        registrations=registrations, deliveries_cancelled=cancelled,
    )
    await _compact_search_index(session)
    # Ids and counts only: the log is an audit trail of the erasure, never a copy of what was erased.
    log.info("privacy: contacts %s erased by %s (%s)", ",".join(map(str, ids)), actor, erased.describe())
    return erased


# --- retention ---------------------------------------------------------------------------------------------


async def erase_expired(
    db: Database, *, older_than_days: int, now: datetime | None = None, batch_size: int = 200
) -> Erasure:
    """Retention: erase what has been finished for longer than `older_than_days` days.

    Finished means: a closed ticket (resolved or handed back) and its messages; a message on no ticket
    (a round the bot handled alone) and its delivery; and then a contact with nothing newer left, no open
    ticket and no live event registration, whose names are pseudonymised like `erase_contacts` does.
    A conversation is no unit here: an X DM or Telegram chat is one conversation per customer for good,
    so a customer who writes again would otherwise keep every year-old message forever.  Works in
    transactions of `batch_size` rows, so the bot and the desk never wait long behind it.
    """
    if older_than_days < 1:
        raise ValueError("retention needs at least 1 day: set FRONTDESK_RETENTION_DAYS (0 keeps everything)")
    now = now or utcnow()
    cutoff = now - timedelta(days=older_than_days)
    total = Erasure()
    while True:
        async with db.transaction() as session:
            step = await _erase_expired_batch(session, cutoff, batch_size, now=now)
        total += step
        if step.empty:
            return total


async def _erase_expired_batch(
    session: AsyncSession, cutoff: datetime, limit: int, *, now: datetime
) -> Erasure:
    actor, note = "retention", f"expired: erased by retention (closed before {cutoff:%Y-%m-%d})"
    tickets = list((await session.execute(
        select(Ticket.id)
        .where(
            col(Ticket.open_conversation_id).is_(None),
            func.coalesce(Ticket.resolved_at, Ticket.updated_at) < cutoff,
            Ticket.subject != ERASED_TEXT,
        )
        .order_by(Ticket.id)
        .limit(limit)
    )).scalars())
    erased_tickets = await _erase_tickets(session, tickets, actor=actor, note=note, now=now)
    on_tickets, cancelled = await _erase_messages(session, col(Message.ticket_id).in_(tickets), now=now)

    loose = list((await session.execute(
        select(Message.id)
        .where(
            col(Message.ticket_id).is_(None),
            Message.created_at < cutoff,
            Message.text != ERASED_TEXT,
            # An inbound message the bot has not handled yet is not finished, however old.
            or_(Message.direction == Direction.outbound, col(Message.handled_at).is_not(None)),
        )
        .order_by(Message.id)
        .limit(limit)
    )).scalars())
    loose_messages, loose_cancelled = await _erase_messages(session, col(Message.id).in_(loose), now=now)
    await _forget_idle_bot_state(session, cutoff, loose)

    contacts = list((await session.execute(_expired_contacts(cutoff).limit(limit))).scalars())
    by_contact = await erase_contacts_in(session, contacts, actor=actor)
    if not contacts and (tickets or loose):
        await _compact_search_index(session)
    return by_contact + Erasure(
        tickets=erased_tickets,
        messages=on_tickets + loose_messages,
        deliveries_cancelled=cancelled + loose_cancelled,
    )


def _expired_contacts(cutoff: datetime) -> Any:
    """Contacts with nothing newer than the cutoff: not a message in their conversations, none by them."""
    recent = exists().where(
        Message.created_at >= cutoff,
        Message.conversation_id == Conversation.id,
        or_(Message.contact_id == Contact.id, Conversation.contact_id == Contact.id),
    )
    open_ticket = exists().where(
        Ticket.contact_id == Contact.id, col(Ticket.open_conversation_id).is_not(None)
    )
    registered = exists().where(
        EventRegistration.contact_id == Contact.id, EventRegistration.status == "registered"
    )
    return (
        select(Contact.id)
        .where(
            Contact.created_at < cutoff,
            not_(col(Contact.platform_user_id).startswith(PSEUDONYM_PREFIX)),
            ~recent, ~open_ticket, ~registered,
        )
        .order_by(Contact.id)
    )


async def _forget_idle_bot_state(
    session: AsyncSession, cutoff: datetime, erased_message_ids: list[int]
) -> None:
    """A conversation the bot finished whose newest message just expired: what it remembered expires too."""
    if not erased_message_ids:
        return
    newer = exists().where(Message.conversation_id == Conversation.id, Message.created_at >= cutoff)
    touched = select(Message.conversation_id).where(col(Message.id).in_(erased_message_ids))
    idle = (await session.execute(
        select(Conversation).where(
            col(Conversation.id).in_(touched),
            col(Conversation.status).in_([ConversationStatus.bot, ConversationStatus.resolved]),
            ~newer,
        )
    )).scalars()
    for conversation in idle:
        if conversation.bot_state:
            conversation.bot_state = {}


# --- the pieces both share ---------------------------------------------------------------------------------


async def _erase_tickets(
    session: AsyncSession, ticket_ids: Iterable[int], *, actor: str, note: str, now: datetime
) -> int:
    """Erase the tickets' text and close the open ones; returns how many had anything left to erase."""
    erased = 0
    for ticket_id in sorted(set(ticket_ids)):
        ticket = await get_for_update(session, Ticket, ticket_id)
        if ticket.subject == ERASED_TEXT and not ticket.data and not ticket.status.is_open:
            continue  # erased before: nothing to do, nothing to record
        events = await session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))
        for event in events.scalars():
            redacted = _redacted_detail(event.detail)
            if redacted != event.detail:
                event.detail = redacted
        if ticket.status.is_open:
            ticket.status = TicketStatus.resolved
            ticket.open_conversation_id = None
            ticket.resolved_at = now
            await session.execute(
                update(Conversation)
                .where(Conversation.id == ticket.conversation_id)
                .values(status=ConversationStatus.resolved, bot_state={}, updated_at=now)
            )
            # "resolved" as for any close, so the agents' pager redraws the ticket's card without its text.
            audit(session, ticket, "resolved", actor=actor, detail={"note": _CLOSED_NOTE})
        ticket.subject = ERASED_TEXT
        ticket.data = {}
        # The CSAT comment is the customer's own words (the score alone says nothing about them).
        await session.execute(
            update(CsatResponse)
            .where(CsatResponse.ticket_id == ticket_id, CsatResponse.comment != "")
            .values(comment=ERASED_TEXT)
        )
        ticket.updated_at = now
        audit(session, ticket, "erased", actor=actor, detail={"note": note})
        erased += 1
    return erased


async def _erase_messages(
    session: AsyncSession, which: ColumnElement[bool], *, now: datetime
) -> tuple[int, int]:
    """Erase the messages `which` selects and their deliveries; returns (messages, deliveries cancelled)."""
    ids = list((await session.execute(
        select(Message.id).where(which, Message.text != ERASED_TEXT).order_by(Message.id)
    )).scalars())
    cancelled = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        in_chunk = col(Message.id).in_(chunk)
        await session.execute(
            update(Message).where(in_chunk).values(text=ERASED_TEXT, entities=[], corrected_intent=None)
        )
        await session.execute(
            update(Message)
            .where(in_chunk, WAITING_MESSAGES)  # an erased message no longer waits for the bot
            .values(handled_at=now)
        )
        cancelled += await _erase_deliveries(session, col(OutboxItem.message_id).in_(chunk))
    return len(ids), cancelled


async def _compact_search_index(session: AsyncSession) -> None:
    """Without this, SQLite's search index would keep the erased words beside their deletion markers."""
    if optimize := optimize_sql(session.get_bind().dialect.name):
        await session.execute(text(optimize))


async def _erase_deliveries(session: AsyncSession, which: ColumnElement[bool]) -> int:
    """Erase outbox rows; the ones not yet sent are cancelled (a row in flight may still arrive)."""
    unsent = col(OutboxItem.status).in_([OutboxStatus.pending, OutboxStatus.sending])
    cancelled = (await session.execute(
        update(OutboxItem).where(which, unsent).values(
            status=OutboxStatus.failed, last_error=CANCELLED_DELIVERY, lease_owner=None, lease_until=None
        )
    )).rowcount or 0
    await session.execute(
        update(OutboxItem).where(which).values(
            text=ERASED_TEXT,
            target={},
            # A platform's error may quote the recipient; the cancellation note is ours and says why.
            last_error=case((OutboxItem.last_error == CANCELLED_DELIVERY, CANCELLED_DELIVERY), else_=None),
        )
    )
    return cancelled


async def _scrub_elsewhere(
    session: AsyncSession, elsewhere: Sequence[Any], contacts: Sequence[Contact], *, exclude_tickets: set[int]
) -> None:
    """Other people's threads the erased contacts wrote in: what was derived from their words there (a
    ticket's subject, a lead's details, the bot's memory) loses those words, and everyone's text there
    loses their @handle and name.  The other people's own words stay theirs."""
    conversation_ids = sorted({row.conversation_id for row in elsewhere})
    if not conversation_ids:
        return
    derived = _pattern(_text_needles(elsewhere) | _identity_needles(contacts))
    identity = _pattern(_identity_needles(contacts))
    attached = {row.ticket_id for row in elsewhere if row.ticket_id is not None}
    tickets = (await session.execute(
        select(Ticket).where(
            or_(col(Ticket.conversation_id).in_(conversation_ids), col(Ticket.id).in_(attached)),
            col(Ticket.id).not_in(exclude_tickets) if exclude_tickets else true(),
        )
    )).scalars()
    for ticket in tickets:
        ticket.subject, ticket.data = _scrub(ticket.subject, derived), _scrub(ticket.data, derived)
    for conversation in (await session.execute(
        select(Conversation).where(col(Conversation.id).in_(conversation_ids))
    )).scalars():
        conversation.bot_state = _scrub(conversation.bot_state, derived)
    if identity is None:
        return
    for model in (Message, OutboxItem):
        rows = (await session.execute(
            select(model.id, model.text).where(col(model.conversation_id).in_(conversation_ids))
        )).all()
        for row_id, old_text in rows:
            if (scrubbed := _scrub(old_text, identity)) != old_text:
                await session.execute(update(model).where(model.id == row_id).values(text=scrubbed))


def _text_needles(rows: Sequence[Any]) -> set[str]:
    """Their texts as the router copies them into tickets: whole, one-line and cut to 120 (a subject),
    cut to 500 (a lead's details); and the values the NLU found in them (an e-mail, an order number)."""
    needles: set[str] = set()
    for row in rows:
        one_line = " ".join(row.text.split())
        needles |= {row.text.strip(), one_line, one_line[:120], row.text[:500].strip()}
        needles |= {str(e.get("value")) for e in row.entities or () if isinstance(e, dict) and e.get("value")}
    return {n for n in needles if len(n) >= 3 and n != ERASED_TEXT}


def _identity_needles(contacts: Sequence[Contact]) -> set[str]:
    needles: set[str] = set()
    for contact in contacts:
        if contact.handle and not contact.handle.startswith(PSEUDONYM_PREFIX):
            needles.add("@" + contact.handle.lstrip("@"))
        if len(contact.display_name) >= 3 and not contact.display_name.startswith(PSEUDONYM_PREFIX):
            needles.add(contact.display_name)
    return needles


def _pattern(needles: set[str]) -> re.Pattern[str] | None:
    if not needles:
        return None
    # Longest first, so a whole text goes before a value inside it; not inside a longer word or handle.
    alternatives = "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))
    return re.compile(rf"(?<![\w@])(?:{alternatives})(?!\w)", re.IGNORECASE)


def _scrub(value: Any, pattern: re.Pattern[str] | None) -> Any:
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(ERASED_TEXT, value)
    if isinstance(value, dict):
        return {key: _scrub(item, pattern) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, pattern) for item in value]
    return value


def _redacted_detail(detail: dict[str, Any]) -> dict[str, Any]:
    kept = {
        key: value for key, value in detail.items()
        if isinstance(value, (int, float, bool)) or value is None
        or (key in _DETAIL_LABELS and isinstance(value, str))
    }
    return kept if kept == detail else {**kept, "redacted": True}
