"""What the desk reads: queues, a ticket with its conversation and audit trail, and the desk's figures.

Reads only.  Every change goes through `storage.actions`; nothing here writes a row.  The results are
plain dataclasses so that the HTML pages and the JSON API render the same facts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.sla import EVENT_ACTIONS, SlaClock, SlaPolicy, SlaState
from frontdesk.core.sla import current as current_sla
from storage.actions.tags import normalise_tag, tags_of_in
from storage.db import Database
from storage.errors import NotFound
from storage.models import (
    Agent,
    Author,
    Contact,
    Conversation,
    CsatResponse,
    EventRegistration,
    Message,
    MessageKind,
    OutboxItem,
    Priority,
    Queue,
    Ticket,
    TicketEvent,
    TicketStatus,
    TicketTag,
    utcnow,
)
from storage.sla import ticket_times, waiting_since

QUEUE_NAMES: tuple[str, ...] = tuple(q.value for q in Queue)
OPEN_STATUSES = (TicketStatus.queued, TicketStatus.assigned)
STATUS_FILTERS: dict[str, tuple[TicketStatus, ...]] = {
    "open": OPEN_STATUSES,
    "queued": (TicketStatus.queued,),
    "assigned": (TicketStatus.assigned,),
    "closed": (TicketStatus.handed_back, TicketStatus.resolved),
    "handed_back": (TicketStatus.handed_back,),
    "resolved": (TicketStatus.resolved,),
    "all": tuple(TicketStatus),
}
SORTS = ("priority", "sla")  # most urgent then oldest first; least SLA time left first
PAGE_SIZE = 50  # a queue page in the desk
MAX_PAGE_SIZE = 500  # the most one API call returns


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; the store writes UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class Filters:
    queue: str | None = None  # one of QUEUE_NAMES, or None for every queue
    status: str = "open"  # a key of STATUS_FILTERS
    assignee_id: int | None = None  # "mine"
    priority: str | None = None  # a Priority name
    category: str | None = None
    channel: str | None = None
    tag: str | None = None  # only tickets carrying this tag (normalised by `validate`)

    def validate(self) -> Filters:
        if self.queue is not None and self.queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {self.queue!r}; use one of {', '.join(QUEUE_NAMES)}")
        if self.status not in STATUS_FILTERS:
            raise ValueError(f"unknown status {self.status!r}; use one of {', '.join(STATUS_FILTERS)}")
        if self.priority is not None:
            Priority.from_name(self.priority)
        if self.channel is not None and self.channel not in ("x", "telegram"):
            raise ValueError(f"unknown channel {self.channel!r}; use x or telegram")
        if self.tag is not None and self.tag != normalise_tag(self.tag):
            return replace(self, tag=normalise_tag(self.tag))
        return self


@dataclass(frozen=True)
class AgentRef:
    id: int
    name: str
    email: str


@dataclass(frozen=True)
class CustomerRef:
    id: int
    handle: str
    display_name: str
    channel: str
    platform_user_id: str


@dataclass(frozen=True)
class TicketRow:
    id: int
    queue: str
    status: str
    priority: str
    category: str
    subject: str
    customer: CustomerRef
    assignee: AgentRef | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    waiting_since: datetime | None  # the customer's oldest message not yet answered by an agent
    tags: tuple[str, ...] = ()  # alphabetically
    sla: SlaClock | None = None  # the SLA clock with the least time left (None: closed, or no targets)

    @property
    def is_open(self) -> bool:
        return self.status in ("queued", "assigned")

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or utcnow()) - self.created_at

    def waiting(self, now: datetime | None = None) -> timedelta | None:
        return None if self.waiting_since is None else (now or utcnow()) - self.waiting_since


@dataclass(frozen=True)
class MessageView:
    id: int
    author: str  # customer | bot | agent | system
    kind: str  # message | note
    text: str
    intent: str | None
    confidence: float | None
    corrected_intent: str | None
    created_at: datetime
    delivered_at: datetime | None
    delivery: str | None  # outbound messages: pending | sending | sent | failed
    delivery_error: str | None
    agent: AgentRef | None
    channel: str
    # Inbound: the handle of whoever wrote it, and whether that is someone other than the ticket's customer
    # (anyone can reply in a public thread; what a stranger writes must not pass for the customer's words).
    author_handle: str | None = None
    third_party: bool = False

    @property
    def is_note(self) -> bool:
        return self.kind == MessageKind.note.value


@dataclass(frozen=True)
class EventView:
    id: int
    action: str
    actor: str
    agent: AgentRef | None
    detail: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TicketDetail:
    ticket: TicketRow
    conversation_id: int
    conversation_kind: str
    conversation_status: str
    data: dict[str, Any]
    messages: list[MessageView]
    events: list[EventView]
    registrations: list[dict[str, Any]] = field(default_factory=list)
    # The satisfaction question about this ticket: {"asked_at", "score", "comment", "answered_at"}, or None.
    csat: dict[str, Any] | None = None


@dataclass(frozen=True)
class Stats:
    open_by_queue: dict[str, dict[str, int]]  # queue -> {"queued": n, "assigned": n, "total": n}
    median_first_response_s: float | None
    median_resolution_s: float | None
    containment: float | None  # share of conversations the bot handled without a ticket
    conversations: int
    escalated_conversations: int
    tickets_considered: int
    since: datetime
    sla_breaches: dict[str, int] = field(default_factory=dict)  # queue -> breaches recorded in the window

    @property
    def sla_breaches_total(self) -> int:
        return sum(self.sla_breaches.values())

    # The satisfaction question (CSAT) asked in the window: how many, how many answered, their average score.
    csat_asked: int = 0
    csat_count: int = 0
    csat_average: float | None = None

    @property
    def csat_response_rate(self) -> float | None:
        return self.csat_count / self.csat_asked if self.csat_asked else None


def _agent_ref(agent: Agent | None) -> AgentRef | None:
    return None if agent is None or agent.id is None else AgentRef(agent.id, agent.name, agent.email)


def customer_ref(contact: Contact) -> CustomerRef:
    assert contact.id is not None
    return CustomerRef(
        id=contact.id,
        handle=contact.handle or contact.platform_user_id,
        display_name=contact.display_name,
        channel=contact.channel.value,
        platform_user_id=contact.platform_user_id,
    )


def _ticket_select() -> Any:
    return (
        select(Ticket, Contact, Agent)
        .join(Contact, Contact.id == Ticket.contact_id)
        .outerjoin(Agent, Agent.id == Ticket.assignee_id)
    )


def _row(
    ticket: Ticket, contact: Contact, agent: Agent | None, waiting_since: datetime | None,
    tags: tuple[str, ...] = (), sla: SlaPolicy | None = None, now: datetime | None = None,
) -> TicketRow:
    assert ticket.id is not None and contact.id is not None
    clock = None if sla is None else current_sla(ticket_times(ticket, waiting_since), sla, now or utcnow())
    return TicketRow(
        id=ticket.id,
        queue=ticket.queue.value,
        status=ticket.status.value,
        priority=ticket.priority.name,
        category=ticket.category,
        subject=ticket.subject,
        customer=customer_ref(contact),
        assignee=_agent_ref(agent),
        created_at=aware(ticket.created_at),  # type: ignore[arg-type]
        updated_at=aware(ticket.updated_at),  # type: ignore[arg-type]
        first_response_at=aware(ticket.first_response_at),
        resolved_at=aware(ticket.resolved_at),
        waiting_since=waiting_since,
        tags=tags,
        sla=clock,
    )



@dataclass(frozen=True)
class TicketPage:
    """One page of a queue, and how many tickets match in all (so the page and the tab counts agree)."""

    rows: list[TicketRow]
    total: int
    offset: int
    limit: int

    @property
    def first(self) -> int:  # 1-based position of the first row shown (0 when empty)
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)

    @property
    def has_previous(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total


async def list_tickets(
    db: Database, filters: Filters | None = None, *, offset: int = 0, limit: int = PAGE_SIZE,
    sla: SlaPolicy | None = None, sort: str = "priority",
) -> TicketPage:
    """A page of the tickets matching the filters, most urgent first, then oldest first (how agents work);
    `sort="sla"`: least SLA time left first (breached first), tickets without a clock after them."""
    filters = (filters or Filters()).validate()
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if offset < 0:
        raise ValueError("offset must not be negative")
    conditions: list[Any] = [Ticket.status.in_(STATUS_FILTERS[filters.status])]  # type: ignore[attr-defined]
    if filters.queue:
        conditions.append(Ticket.queue == Queue(filters.queue))
    if filters.assignee_id is not None:
        conditions.append(Ticket.assignee_id == filters.assignee_id)
    if filters.priority:
        conditions.append(Ticket.priority == Priority.from_name(filters.priority))
    if filters.category:
        conditions.append(Ticket.category == filters.category)
    if filters.channel:
        conditions.append(Contact.channel == filters.channel)
    if filters.tag:
        conditions.append(_tagged(filters.tag))
    stmt = _ticket_select().where(*conditions)
    if filters.status == "open":
        stmt = stmt.order_by(Ticket.priority, Ticket.created_at, Ticket.id)
    else:
        stmt = stmt.order_by(Ticket.updated_at.desc(), Ticket.id.desc())  # type: ignore[attr-defined]
    count = select(func.count()).select_from(Ticket).join(Contact, Contact.id == Ticket.contact_id)
    now = utcnow()
    async with db.session() as session:
        total = (await session.execute(count.where(*conditions))).scalar_one()
        if sort == "sla":
            # Time left depends on business hours, which SQL cannot count: order every match here, then
            # read the page's rows.  Open queues are what agents sort so; they stay small enough for that.
            ids = await _ids_by_time_left(session, stmt, sla, now)
            page_ids = ids[offset:offset + limit]
            found = {t.id: (t, c, a) for t, c, a in (
                await session.execute(_ticket_select().where(Ticket.id.in_(page_ids)))  # type: ignore[union-attr]
            ).all()}
            rows = [found[i] for i in page_ids if i in found]
        else:
            rows = (await session.execute(stmt.offset(offset).limit(limit))).all()
        waiting = await waiting_since(session, [t.id for t, _, _ in rows if t.status.is_open])
        tags = await tags_of_in(session, [t.id for t, _, _ in rows])
    return TicketPage(
        [_row(t, c, a, waiting.get(t.id), tags.get(t.id, ()), sla, now) for t, c, a in rows], total, offset, limit
    )


def _tagged(tag: str) -> Any:
    """Tickets carrying `tag` (the tag index finds them; the unique (ticket, tag) key makes IN exact)."""
    return Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag == tag))  # type: ignore[union-attr]


async def _ids_by_time_left(session: AsyncSession, stmt: Any, sla: SlaPolicy | None, now: datetime) -> list[int]:
    tickets = [t for t, _, _ in (await session.execute(stmt)).all()]  # in the usual order: ties keep it
    waiting = await waiting_since(session, [t.id for t in tickets if t.status.is_open])
    left: list[tuple[int, float, int]] = []
    for position, t in enumerate(tickets):
        clock = None if sla is None else current_sla(ticket_times(t, waiting.get(t.id)), sla, now)
        left.append((t.id, float("inf") if clock is None else clock.remaining_s, position))  # type: ignore[arg-type]
    return [ticket_id for ticket_id, _, _ in sorted(left, key=lambda x: (x[1], x[2]))]


async def tickets_by_ids(db: Database, ticket_ids: list[int], *, sla: SlaPolicy | None = None) -> list[TicketRow]:
    """The tickets with these ids, in the order given (ids with no ticket are left out)."""
    if not ticket_ids:
        return []
    async with db.session() as session:
        rows = (await session.execute(_ticket_select().where(Ticket.id.in_(ticket_ids)))).all()  # type: ignore[union-attr]
        waiting = await waiting_since(session, [t.id for t, _, _ in rows if t.status.is_open])
        tags = await tags_of_in(session, [t.id for t, _, _ in rows])
    now = utcnow()
    by_id = {t.id: _row(t, c, a, waiting.get(t.id), tags.get(t.id, ()), sla, now) for t, c, a in rows}
    return [by_id[i] for i in ticket_ids if i in by_id]


async def open_counts(db: Database, assignee_id: int | None = None, *, tag: str | None = None) -> dict[str, int]:
    """Open tickets per queue, plus "all" and (given an agent) "mine": the numbers on the queue tabs.

    With `tag`, only the tickets carrying it, so the tabs agree with a queue filtered by that tag.
    """
    tagged = [_tagged(tag)] if tag else []
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Ticket.queue, func.count())
                .where(Ticket.status.in_(OPEN_STATUSES), *tagged)  # type: ignore[attr-defined]
                .group_by(Ticket.queue)
            )
        ).all()
        counts = {q: 0 for q in QUEUE_NAMES}
        for queue, n in rows:
            counts[Queue(queue).value] = n
        counts["all"] = sum(counts[q] for q in QUEUE_NAMES)
        if assignee_id is not None:
            counts["mine"] = (
                await session.execute(
                    select(func.count()).where(
                        Ticket.status == TicketStatus.assigned, Ticket.assignee_id == assignee_id, *tagged
                    )
                )
            ).scalar_one()
    return counts


async def ticket_detail(db: Database, ticket_id: int, *, sla: SlaPolicy | None = None) -> TicketDetail:
    async with db.session() as session:
        found = (await session.execute(_ticket_select().where(Ticket.id == ticket_id))).first()
        if found is None:
            raise NotFound("Ticket", ticket_id)
        ticket, contact, assignee = found
        conversation = await session.get(Conversation, ticket.conversation_id)
        assert conversation is not None
        agents = {a.id: a for a in (await session.execute(select(Agent))).scalars()}
        message_rows = (
            await session.execute(
                select(Message, OutboxItem.status, OutboxItem.last_error, Contact)
                .outerjoin(OutboxItem, OutboxItem.message_id == Message.id)
                .outerjoin(Contact, Contact.id == Message.contact_id)
                .where(Message.ticket_id == ticket_id)
                .order_by(Message.created_at, Message.id)
            )
        ).all()
        event_rows = (
            await session.execute(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
            )
        ).scalars()
        registrations = (
            await session.execute(
                select(EventRegistration)
                .where(EventRegistration.contact_id == contact.id)
                .order_by(EventRegistration.id)
            )
        ).scalars()
        waiting = await waiting_since(session, [ticket_id]) if ticket.status.is_open else {}
        tags = (await tags_of_in(session, [ticket_id])).get(ticket_id, ())
        csat = (
            await session.execute(select(CsatResponse).where(CsatResponse.ticket_id == ticket_id))
        ).scalar_one_or_none()
        messages = [
            _message_view(m, status, error, agents, author=author, customer_id=ticket.contact_id)
            for m, status, error, author in message_rows
        ]
        events = [
            EventView(
                id=e.id,
                action=e.action,
                actor=e.actor,
                agent=_agent_ref(agents.get(e.agent_id)),
                detail=dict(e.detail),
                created_at=aware(e.created_at),  # type: ignore[arg-type]
            )
            for e in event_rows
        ]
        return TicketDetail(
            ticket=_row(ticket, contact, assignee, waiting.get(ticket_id), tags, sla),
            conversation_id=conversation.id,  # type: ignore[arg-type]
            conversation_kind=conversation.kind.value,
            conversation_status=conversation.status.value,
            data=dict(ticket.data),
            messages=messages,
            events=events,
            registrations=[
                {"event": r.event_key, "status": r.status, "since": aware(r.created_at)} for r in registrations
            ],
            csat=None if csat is None else {
                "asked_at": aware(csat.asked_at), "score": csat.score, "comment": csat.comment,
                "answered_at": aware(csat.answered_at) if csat.answered_at else None,
            },
        )


def _message_view(
    m: Message,
    status: Any,
    error: str | None,
    agents: dict[Any, Agent],
    *,
    author: Contact | None,
    customer_id: int | None,
) -> MessageView:
    """`author` wrote `m` (inbound); `customer_id` is the contact the ticket or conversation belongs to."""
    assert m.id is not None
    return MessageView(
        id=m.id,
        author=m.author.value,
        kind=m.kind.value,
        text=m.text,
        intent=m.intent,
        confidence=m.confidence,
        corrected_intent=m.corrected_intent,
        created_at=aware(m.created_at),  # type: ignore[arg-type]
        delivered_at=aware(m.delivered_at),
        delivery=status.value if status is not None else None,
        delivery_error=error,
        agent=_agent_ref(agents.get(m.agent_id)),
        channel=m.channel.value,
        author_handle=None if author is None else author.handle or author.platform_user_id,
        third_party=author is not None and author.id != customer_id,
    )


async def message_view(db: Database, message_id: int) -> MessageView:
    async with db.session() as session:
        row = (
            await session.execute(
                select(Message, OutboxItem.status, OutboxItem.last_error, Contact, Conversation.contact_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .outerjoin(OutboxItem, OutboxItem.message_id == Message.id)
                .outerjoin(Contact, Contact.id == Message.contact_id)
                .where(Message.id == message_id)
            )
        ).first()
        if row is None:
            raise NotFound("Message", message_id)
        message, status, error, author, customer_id = row
        agent = await session.get(Agent, message.agent_id) if message.agent_id else None
    return _message_view(
        message, status, error, {agent.id: agent} if agent else {}, author=author, customer_id=customer_id
    )


async def active_agents(db: Database) -> list[AgentRef]:
    async with db.session() as session:
        agents = (
            await session.execute(select(Agent).where(Agent.active.is_(True)).order_by(Agent.name))  # type: ignore[attr-defined]
        ).scalars()
        return [ref for ref in (_agent_ref(a) for a in agents) if ref is not None]


async def seen_intents(db: Database) -> list[str]:
    """Intents the NLU has produced so far: offered for corrections when no taxonomy file is present."""
    async with db.session() as session:
        rows = (
            await session.execute(select(Message.intent).where(Message.intent.is_not(None)).distinct())  # type: ignore[union-attr]
        ).scalars()
        return sorted(r for r in rows if r)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


async def stats(db: Database, *, days: int = 30, now: datetime | None = None) -> Stats:
    """The desk's figures over the last `days` days (open counts are always current).

    Containment counts conversations with at least one customer message in the window; a conversation
    is "escalated" when any of its messages belongs to a ticket.
    """
    now = now or utcnow()
    since = now - timedelta(days=days)
    open_by_queue = {q: {"queued": 0, "assigned": 0, "total": 0} for q in QUEUE_NAMES}
    async with db.session() as session:
        for queue, status, n in (
            await session.execute(
                select(Ticket.queue, Ticket.status, func.count())
                .where(Ticket.status.in_(OPEN_STATUSES))  # type: ignore[attr-defined]
                .group_by(Ticket.queue, Ticket.status)
            )
        ).all():
            entry = open_by_queue[Queue(queue).value]
            entry[TicketStatus(status).value] += n
            entry["total"] += n
        tickets = (
            await session.execute(
                select(Ticket.created_at, Ticket.first_response_at, Ticket.resolved_at).where(
                    Ticket.created_at >= since
                )
            )
        ).all()
        customer_conversations = (
            await session.execute(
                select(func.count(func.distinct(Message.conversation_id))).where(
                    Message.author == Author.customer, Message.created_at >= since
                )
            )
        ).scalar_one()
        breaches = {q: 0 for q in QUEUE_NAMES}
        for queue, n in (
            await session.execute(
                select(Ticket.queue, func.count())
                .join(TicketEvent, TicketEvent.ticket_id == Ticket.id)
                .where(TicketEvent.action == EVENT_ACTIONS[SlaState.breached], TicketEvent.created_at >= since)
                .group_by(Ticket.queue)
            )
        ).all():
            breaches[Queue(queue).value] = n
        escalated = (
            await session.execute(
                select(func.count(func.distinct(Message.conversation_id))).where(
                    Message.author == Author.customer,
                    Message.created_at >= since,
                    Message.ticket_id.is_not(None),  # type: ignore[union-attr]
                )
            )
        ).scalar_one()
        csat_asked, csat_count, csat_total = (
            await session.execute(
                select(func.count(), func.count(CsatResponse.score), func.sum(CsatResponse.score)).where(
                    CsatResponse.asked_at >= since
                )
            )
        ).one()
    first_response = [
        (aware(fr) - aware(created)).total_seconds() for created, fr, _ in tickets if fr is not None  # type: ignore[operator]
    ]
    resolution = [
        (aware(res) - aware(created)).total_seconds() for created, _, res in tickets if res is not None  # type: ignore[operator]
    ]
    return Stats(
        open_by_queue=open_by_queue,
        median_first_response_s=_median(first_response),
        median_resolution_s=_median(resolution),
        containment=None if not customer_conversations else 1 - escalated / customer_conversations,
        conversations=customer_conversations,
        escalated_conversations=escalated,
        tickets_considered=len(tickets),
        since=since,
        sla_breaches=breaches,
        csat_asked=int(csat_asked),
        csat_count=int(csat_count),
        csat_average=int(csat_total) / int(csat_count) if csat_count else None,
    )
