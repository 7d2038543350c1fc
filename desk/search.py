"""The desk's search box: tickets, customers and messages matching what an agent typed.

Reads only.  What is found, in this order on every page and in the API:
- tickets: the ticket whose number was typed ("123" or "#123") first, then tickets whose subject contains
  the text, most recently updated first;
- customers: whose handle, display name or platform id contains the text ("@" optional), newest first;
- messages: full-text matches (every word, as a word or its start; `storage.search`), newest first
  (the most recently stored first).
The same filters (queue, status, channel, a date range) narrow tickets and messages alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from desk.queries import QUEUE_NAMES, STATUS_FILTERS, TicketRow, aware, tickets_by_ids
from frontdesk.core.sla import SlaPolicy
from storage.db import Database
from storage.models import Contact, Message, MessageKind, Queue, Ticket
from storage.search import query_words, text_matches

MAX_QUERY_CHARS = 200
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SNIPPET_CHARS = 160
_MAX_ROW_ID = 2**31 - 1  # ids are INTEGER on PostgreSQL
_TICKET_NUMBER = re.compile(r"#?(\d{1,10})")


@dataclass(frozen=True)
class SearchFilters:
    queue: str | None = None
    status: str | None = None  # a key of desk.queries.STATUS_FILTERS; None = any
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def validate(self) -> SearchFilters:
        if self.queue is not None and self.queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {self.queue!r}; use one of {', '.join(QUEUE_NAMES)}")
        if self.status is not None and self.status not in STATUS_FILTERS:
            raise ValueError(f"unknown status {self.status!r}; use one of {', '.join(STATUS_FILTERS)}")
        if self.channel is not None and self.channel not in ("x", "telegram"):
            raise ValueError(f"unknown channel {self.channel!r}; use x or telegram")
        if self.since and self.until and self.since > self.until:
            raise ValueError("`from` is after `to`: swap them")
        return self

    @property
    def narrows_tickets(self) -> bool:
        return self.queue is not None or self.status is not None


@dataclass(frozen=True)
class CustomerHit:
    id: int
    handle: str
    display_name: str
    channel: str
    platform_user_id: str
    latest_ticket_id: int | None


@dataclass(frozen=True)
class MessageHit:
    id: int
    ticket_id: int | None
    author: str
    channel: str
    snippet: str
    created_at: datetime


@dataclass(frozen=True)
class SearchResults:
    query: str
    tickets: list[TicketRow]
    customers: list[CustomerHit]
    messages: list[MessageHit]

    @property
    def empty(self) -> bool:
        return not (self.tickets or self.customers or self.messages)


def check_query(query: str) -> str:
    """The query trimmed; ValueError naming the fix when it cannot be searched for."""
    query = query.strip()
    if not query:
        raise ValueError("type something to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"a search is at most {MAX_QUERY_CHARS} characters")
    return query


async def search(
    db: Database, query: str, filters: SearchFilters | None = None, *, limit: int = DEFAULT_LIMIT,
    sla: SlaPolicy | None = None,
) -> SearchResults:
    query = check_query(query)
    filters = (filters or SearchFilters()).validate()
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    ticket_ids = await _ticket_ids(db, query, filters, limit)
    return SearchResults(
        query=query,
        tickets=await tickets_by_ids(db, ticket_ids, sla=sla),
        customers=await _customers(db, query, filters, limit),
        messages=await _messages(db, query, filters, limit),
    )


def _ticket_conditions(filters: SearchFilters) -> list[object]:
    conditions: list[object] = []
    if filters.queue:
        conditions.append(Ticket.queue == Queue(filters.queue))
    if filters.status:
        conditions.append(Ticket.status.in_(STATUS_FILTERS[filters.status]))  # type: ignore[attr-defined]
    return conditions


async def _ticket_ids(db: Database, query: str, filters: SearchFilters, limit: int) -> list[int]:
    conditions = _ticket_conditions(filters)
    if filters.channel:
        conditions.append(Contact.channel == filters.channel)
    if filters.since:
        conditions.append(Ticket.created_at >= filters.since)
    if filters.until:
        conditions.append(Ticket.created_at <= filters.until)
    base = select(Ticket.id).join(Contact, Contact.id == Ticket.contact_id).where(*conditions)  # type: ignore[arg-type]
    ids: list[int] = []
    number = _TICKET_NUMBER.fullmatch(query)
    async with db.session() as session:
        if number and 0 < int(number.group(1)) <= _MAX_ROW_ID:
            ids += (await session.execute(base.where(Ticket.id == int(number.group(1))))).scalars().all()
        by_subject = (
            base.where(func.lower(Ticket.subject).contains(query.lower(), autoescape=True))
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())  # type: ignore[attr-defined]
            .limit(limit)
        )
        ids += [i for i in (await session.execute(by_subject)).scalars() if i not in ids]
    return ids[:limit]


async def _customers(db: Database, query: str, filters: SearchFilters, limit: int) -> list[CustomerHit]:
    needle = query.removeprefix("@").lower()
    if not needle:
        return []
    latest = (
        select(func.max(Ticket.id)).where(Ticket.contact_id == Contact.id).correlate(Contact).scalar_subquery()
    )
    stmt = (
        select(Contact, latest)
        .where(
            or_(
                func.lower(Contact.handle).contains(needle, autoescape=True),
                func.lower(Contact.display_name).contains(needle, autoescape=True),
                Contact.platform_user_id == needle,
            )
        )
        .order_by(Contact.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    if filters.channel:
        stmt = stmt.where(Contact.channel == filters.channel)
    async with db.session() as session:
        rows = (await session.execute(stmt)).all()
    return [
        CustomerHit(c.id, c.handle or c.platform_user_id, c.display_name, c.channel.value, c.platform_user_id, t)
        for c, t in rows
    ]


# Newest first without sorting every match: look in the newest ids first and widen the window until it
# holds `limit` matches.  A word in every message is found in the first window instead of sorting 100,000
# rows; a rare one costs a few cheap index lookups.
_FIRST_WINDOW = 4_096
_WIDEN = 8


async def _messages(db: Database, query: str, filters: SearchFilters, limit: int) -> list[MessageHit]:
    matches = text_matches(db.dialect, query)
    if matches is None:
        return []
    stmt = select(Message).where(matches, Message.kind == MessageKind.message)
    if filters.narrows_tickets:
        stmt = stmt.join(Ticket, Ticket.id == Message.ticket_id).where(*_ticket_conditions(filters))  # type: ignore[arg-type]
    if filters.channel:
        stmt = stmt.where(Message.channel == filters.channel)
    if filters.since:
        stmt = stmt.where(Message.created_at >= filters.since)
    if filters.until:
        stmt = stmt.where(Message.created_at <= filters.until)
    stmt = stmt.order_by(Message.id.desc()).limit(limit)  # type: ignore[union-attr]
    async with db.session() as session:
        newest = (await session.execute(select(func.max(Message.id)))).scalar_one_or_none() or 0
        window = _FIRST_WINDOW
        while True:
            lowest = newest - window
            found = (await session.execute(stmt.where(Message.id > lowest))).scalars().all()  # type: ignore[operator]
            if len(found) >= limit or lowest <= 0:
                break
            window *= _WIDEN
    words = query_words(query)
    return [
        MessageHit(
            id=m.id,  # type: ignore[arg-type]
            ticket_id=m.ticket_id,
            author=m.author.value,
            channel=m.channel.value,
            snippet=snippet(m.text, words),
            created_at=aware(m.created_at),  # type: ignore[arg-type]
        )
        for m in found
    ]


def snippet(text: str, words: list[str], width: int = SNIPPET_CHARS) -> str:
    """The part of `text` around the first word found, at most `width` characters, "…" where cut."""
    if len(text) <= width:
        return text
    lowered = text.lower()
    positions = [p for p in (lowered.find(w.lower()) for w in words) if p >= 0]
    start = max(0, min(positions, default=0) - width // 3)
    start = min(start, len(text) - width)
    piece = text[start : start + width]
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(text) else "")
