"""Reading alerts and incidents (the desk, the API and the pager); changes are in storage/actions/incidents.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select

from storage.db import Database
from storage.errors import NotFound
from storage.models import (
    Alert,
    Author,
    Contact,
    Conversation,
    ConversationKind,
    Direction,
    Incident,
    IncidentLink,
    IncidentStatus,
    IncidentUpdate,
    Message,
    Ticket,
    TicketStatus,
    utcnow,
)

MAX_SUGGESTIONS = 50
MAX_LISTED = 200


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class LinkedTicket:
    ticket_id: int
    status: TicketStatus
    subject: str
    queue: str
    channel: str
    kind: ConversationKind
    customer: str  # @handle or display name


@dataclass
class IncidentView:
    incident: Incident
    links: list[LinkedTicket] = field(default_factory=list)
    updates: list[IncidentUpdate] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


@dataclass
class IncidentRow:
    incident: Incident
    linked: int


def alert_title(alert: Alert) -> str:
    """What an alert is about, in words: "intent payment_failed", "category support"."""
    kind, _, name = alert.key.partition(":")
    return f"{kind} {name}" if name else alert.key


async def get_alert(db: Database, alert_id: int) -> Alert:
    async with db.session() as session:
        alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound("Alert", alert_id)
    return alert


async def active_alerts(db: Database, *, within_s: int, now: datetime | None = None) -> list[Alert]:
    """Alerts of the last `within_s` seconds no incident took up yet: the desk's banner."""
    since = (now or utcnow()) - timedelta(seconds=within_s)
    async with db.session() as session:
        found = await session.execute(
            select(Alert)
            .where(Alert.created_at > since, Alert.incident_id.is_(None))  # type: ignore[union-attr]
            .order_by(Alert.id.desc())  # type: ignore[union-attr]
            .limit(5)
        )
        return list(found.scalars().all())


async def alerts_after(db: Database, alert_id: int, *, limit: int = 50) -> list[Alert]:
    async with db.session() as session:
        found = await session.execute(
            select(Alert).where(Alert.id > alert_id).order_by(Alert.id).limit(limit)  # type: ignore[arg-type]
        )
        return list(found.scalars().all())


async def newest_alert_id(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.max(Alert.id)))).scalar_one_or_none() or 0)


async def list_incidents(db: Database, *, status: IncidentStatus | None = None) -> list[IncidentRow]:
    """Open ones first, newest first; at most MAX_LISTED."""
    linked = (
        select(IncidentLink.incident_id, func.count().label("n")).group_by(IncidentLink.incident_id).subquery()
    )
    query = select(Incident, func.coalesce(linked.c.n, 0)).outerjoin(linked, linked.c.incident_id == Incident.id)
    if status is not None:
        query = query.where(Incident.status == status)
    query = query.order_by(Incident.status, Incident.id.desc()).limit(MAX_LISTED)  # type: ignore[union-attr]
    async with db.session() as session:
        return [IncidentRow(incident, int(n)) for incident, n in (await session.execute(query)).all()]


async def incident_view(db: Database, incident_id: int) -> IncidentView:
    async with db.session() as session:
        incident = await session.get(Incident, incident_id)
        if incident is None:
            raise NotFound("Incident", incident_id)
        rows = (
            await session.execute(
                select(Ticket, Conversation, Contact)
                .join(IncidentLink, IncidentLink.ticket_id == Ticket.id)
                .join(Conversation, Conversation.id == Ticket.conversation_id)
                .join(Contact, Contact.id == Ticket.contact_id)
                .where(IncidentLink.incident_id == incident_id)
                .order_by(Ticket.id)
            )
        ).all()
        updates = (
            await session.execute(
                select(IncidentUpdate).where(IncidentUpdate.incident_id == incident_id).order_by(IncidentUpdate.id)  # type: ignore[arg-type]
            )
        ).scalars().all()
        alerts = (
            await session.execute(select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id))  # type: ignore[arg-type]
        ).scalars().all()
    return IncidentView(
        incident=incident,
        links=[_linked(t, c, p) for t, c, p in rows],
        updates=list(updates),
        alerts=list(alerts),
    )


async def suggested_tickets(db: Database, incident: Incident) -> list[LinkedTicket]:
    """Open tickets not linked yet whose customer's messages have the incident's intent or one of its
    keywords (in a message or the subject); the agent confirms which belong."""
    matches = []
    if incident.intent:
        matches.append(func.coalesce(Message.corrected_intent, Message.intent) == incident.intent)
    for word in incident.keywords:
        matches.append(func.lower(Message.text).contains(word.lower(), autoescape=True))
        matches.append(func.lower(Ticket.subject).contains(word.lower(), autoescape=True))
    if not matches:
        return []
    already = select(IncidentLink.ticket_id).where(IncidentLink.incident_id == incident.id)
    # Matching tickets by id first: DISTINCT over the rows themselves fails on PostgreSQL's JSON columns.
    matching = (
        select(Message.ticket_id)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.direction == Direction.inbound, Message.author == Author.customer, or_(*matches))
    )
    query = (
        select(Ticket, Conversation, Contact)
        .join(Conversation, Conversation.id == Ticket.conversation_id)
        .join(Contact, Contact.id == Ticket.contact_id)
        .where(
            Ticket.open_conversation_id.is_not(None),  # type: ignore[union-attr]
            Ticket.id.not_in(already),  # type: ignore[union-attr]
            Ticket.id.in_(matching),  # type: ignore[union-attr]
        )
        .order_by(Ticket.id)
        .limit(MAX_SUGGESTIONS)
    )
    async with db.session() as session:
        return [_linked(t, c, p) for t, c, p in (await session.execute(query)).all()]


def _linked(ticket: Ticket, conversation: Conversation, contact: Contact) -> LinkedTicket:
    return LinkedTicket(
        ticket_id=ticket.id,  # type: ignore[arg-type]
        status=ticket.status,
        subject=ticket.subject,
        queue=str(getattr(ticket.queue, "value", ticket.queue)),
        channel=conversation.channel.value,
        kind=conversation.kind,
        customer=f"@{contact.handle}" if contact.handle else contact.display_name or f"contact #{contact.id}",
    )
