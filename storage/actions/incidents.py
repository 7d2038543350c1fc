"""Spike alerts and incidents: every state change, one function each (docs/incidents.md).

    spike ──raise_alert──▶ alert ──open_incident──▶ incident ──link_tickets / unlink_ticket──▶ …
                                                       │ send_update: one message to every linked customer
                                                       └ resolve_incident: a final message, linked tickets closed

An update is written in one transaction with its outbox rows (keyed per update and ticket, so a retried
send queues nothing twice) and an audit event on every linked ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core import metrics
from storage.actions._common import (
    agent_actor,
    audit,
    check_outbound_length,
    get_agent,
    get_for_update,
    insert_ignoring_conflict,
    queue_outbound,
)
from storage.actions.tickets import close_in
from storage.db import Database
from storage.errors import IncidentResolved, InvalidText, NotAllowed, NotFound, PublicReplyNotAllowed
from storage.models import (
    Agent,
    AgentRole,
    Alert,
    Author,
    Contact,
    Conversation,
    ConversationKind,
    ConversationStatus,
    Incident,
    IncidentLink,
    IncidentStatus,
    IncidentUpdate,
    Ticket,
    TicketStatus,
    utcnow,
)
from storage.text import validate_text

TITLE_MAX_CHARS = 200
MAX_KEYWORDS = 10
KEYWORD_MAX_CHARS = 64
MAX_LINKS_PER_CALL = 200
# An update fans out to every linked customer: bounded, so one request cannot queue an unbounded send.
MAX_LINKS_PER_INCIDENT = 2_000
# A customer with several linked tickets gets one message, on the most private channel they use.
_CHANNEL_PREFERENCE = {ConversationKind.dm: 0, ConversationKind.telegram: 1, ConversationKind.public: 2}


# --- alerts -----------------------------------------------------------------------------------------------


async def raise_alert(
    db: Database,
    *,
    key: str,
    window_start: datetime,
    count: int,
    baseline: float,
    parent_key: str | None = None,
    quiet_s: int,
    now: datetime | None = None,
) -> Alert | None:
    """Record a spike as an alert, unless the same burst already alerted within `quiet_s` (`_same_burst`).

    Returns the new alert, or None: quiet, or another process raised the same (key, window) first (the
    unique index decides, so several workers checking at once raise it once).
    """
    now = now or utcnow()
    async with db.transaction() as session:
        quiet_since = now - timedelta(seconds=quiet_s)
        recent = (
            await session.execute(
                select(Alert.id)
                .where(or_(*_same_burst(key, parent_key)), Alert.created_at > quiet_since)
                .limit(1)
            )
        ).first()
        if recent is not None:
            return None
        alert_id = await insert_ignoring_conflict(
            session,
            Alert,
            {
                "key": key[:96], "parent_key": parent_key[:96] if parent_key else None,
                "window_start": window_start, "count": count, "baseline": baseline, "created_at": now,
            },
            ["key", "window_start"],
        )
        if alert_id is None:
            return None
        alert = await session.get(Alert, alert_id)
    metrics.spike_alert_raised(key.partition(":")[0])
    return alert


def _same_burst(key: str, parent_key: str | None) -> list[Any]:
    """What quiets `key`: its own alert, an alert of an intent under it, or one of its category (the same
    burst, whichever of the two crossed its threshold first)."""
    found = [Alert.key == key, Alert.parent_key == key]
    if parent_key:
        found.append(Alert.key == parent_key)
    return found


# --- incidents ------------------------------------------------------------------------------------------------


def clean_keywords(keywords: Iterable[str]) -> list[str]:
    """Lower-cased, stripped, de-duplicated, bounded; raises InvalidText naming the limit."""
    found: list[str] = []
    for raw in keywords:
        word = validate_text(raw, allow_empty=True, field="keyword").strip().lower()
        if not word or word in found:
            continue
        if len(word) > KEYWORD_MAX_CHARS:
            raise InvalidText(f"keyword {word[:20]!r}… has {len(word)} characters; at most {KEYWORD_MAX_CHARS}")
        found.append(word)
    if len(found) > MAX_KEYWORDS:
        raise InvalidText(f"{len(found)} keywords; an incident takes at most {MAX_KEYWORDS}")
    return found


async def open_incident(
    db: Database,
    *,
    title: str,
    agent_id: int,
    intent: str = "",
    keywords: Sequence[str] = (),
    alert_id: int | None = None,
) -> Incident:
    """Open an incident.  From an alert: the alert's incident if it already has one (the button pressed
    twice, or by two agents, opens one incident)."""
    title = validate_text(title, allow_empty=False, field="title").strip()
    if len(title) > TITLE_MAX_CHARS:
        raise InvalidText(f"the title has {len(title)} characters; at most {TITLE_MAX_CHARS}")
    intent = validate_text(intent, allow_empty=True, field="intent").strip()[:64]
    words = clean_keywords(keywords)
    now = utcnow()
    async with db.transaction() as session:
        agent = await _active_agent(session, agent_id)
        alert = await get_for_update(session, Alert, alert_id) if alert_id is not None else None
        if alert is not None and alert.incident_id is not None:
            existing = await session.get(Incident, alert.incident_id)
            assert existing is not None
            return existing
        incident = Incident(
            title=title, intent=intent, keywords=words, status=IncidentStatus.open, opened_by=agent.id,
            created_at=now, updated_at=now,
        )
        session.add(incident)
        await session.flush()
        if alert is not None:
            alert.incident_id = incident.id
        return incident


async def link_tickets(db: Database, incident_id: int, ticket_ids: Sequence[int], *, agent_id: int) -> list[int]:
    """Link tickets to an open incident (the agent confirmed them); returns those newly linked."""
    wanted = list(dict.fromkeys(ticket_ids))
    if len(wanted) > MAX_LINKS_PER_CALL:
        raise InvalidText(f"{len(wanted)} tickets at once; link at most {MAX_LINKS_PER_CALL} per request")
    now = utcnow()
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        incident = await _open_incident(session, incident_id, "link tickets")
        linked = await _link_count(session, incident_id)
        new: list[int] = []
        for ticket_id in wanted:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                raise NotFound("Ticket", ticket_id)
            link_id = await insert_ignoring_conflict(
                session, IncidentLink,
                {"incident_id": incident_id, "ticket_id": ticket_id, "linked_by": agent_id, "created_at": now},
                ["incident_id", "ticket_id"],
            )
            if link_id is None:
                continue  # already linked
            linked += 1
            if linked > MAX_LINKS_PER_INCIDENT:
                raise NotAllowed(
                    f"incident #{incident_id} has {MAX_LINKS_PER_INCIDENT:,} linked tickets, the most one incident "
                    "takes; open a second incident for the rest"
                )
            new.append(ticket_id)
            audit(session, ticket, "incident_linked", actor=agent_actor(agent_id), agent_id=agent_id,
                  detail={"incident_id": incident_id})
        incident.updated_at = now
        return new


async def unlink_ticket(db: Database, incident_id: int, ticket_id: int, *, agent_id: int) -> bool:
    """Take a ticket off an incident (it was not about this after all); False if it was not linked."""
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        incident = await _open_incident(session, incident_id, "unlink tickets")
        link = (
            await session.execute(
                select(IncidentLink).where(IncidentLink.incident_id == incident_id, IncidentLink.ticket_id == ticket_id)
            )
        ).scalar_one_or_none()
        if link is None:
            return False
        await session.delete(link)
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        audit(session, ticket, "incident_unlinked", actor=agent_actor(agent_id), agent_id=agent_id,
              detail={"incident_id": incident_id})
        incident.updated_at = utcnow()
        return True


async def send_update(db: Database, incident_id: int, *, agent_id: int, text: str) -> IncidentUpdate:
    """ONE status update: a message to every linked customer on their own channel (DM, the public thread
    within X's reply rule, Telegram), its outbox rows and an audit event per ticket, in one transaction."""
    text = validate_text(text, allow_empty=False).strip()
    async with db.transaction() as session:
        await _active_agent(session, agent_id)
        incident = await _open_incident(session, incident_id, "send an update")
        return await _send_update_in(session, incident, agent_id, text, final=False)


async def resolve_incident(
    db: Database, incident_id: int, *, agent_id: int, text: str = "", resolve_tickets: bool = False
) -> Incident:
    """Resolve the incident: with `text`, a final message to every linked customer; with
    `resolve_tickets`, every open linked ticket is resolved too.  One transaction.  The incident's opener or
    an admin may do it (it closes tickets other agents hold)."""
    text = validate_text(text, allow_empty=True).strip()
    closed: list[Ticket] = []
    async with db.transaction() as session:
        agent = await _active_agent(session, agent_id)
        incident = await _open_incident(session, incident_id, "resolve")
        if agent.role != AgentRole.admin and incident.opened_by != agent_id:
            raise NotAllowed(f"only the agent who opened incident #{incident_id} or an admin can resolve it")
        if text:
            await _send_update_in(session, incident, agent_id, text, final=True)
        if resolve_tickets:
            for ticket in await _linked_tickets(session, incident_id):
                if ticket.status.is_open:
                    closed.append(await close_in(
                        session, ticket.id, agent_id, TicketStatus.resolved, ConversationStatus.resolved,  # type: ignore[arg-type]
                        "resolve", check_holder=False, detail={"incident_id": incident_id},
                    ))
        now = utcnow()
        incident.status = IncidentStatus.resolved
        incident.resolved_by = agent_id
        incident.resolved_at = now
        incident.updated_at = now
    for ticket in closed:  # counted once committed
        metrics.ticket_resolved(str(getattr(ticket.queue, "value", ticket.queue)), "resolved")
    return incident


# --- helpers --------------------------------------------------------------------------------------------------


async def _active_agent(session: AsyncSession, agent_id: int) -> Agent:
    agent = await get_agent(session, agent_id)
    if not agent.active:
        raise NotAllowed(f"agent {agent.email} is disabled")
    return agent


async def _open_incident(session: AsyncSession, incident_id: int, action: str) -> Incident:
    incident: Incident = await get_for_update(session, Incident, incident_id)
    if incident.status != IncidentStatus.open:
        raise IncidentResolved(action, incident_id)
    return incident


async def _link_count(session: AsyncSession, incident_id: int) -> int:
    found = await session.execute(
        select(func.count()).select_from(IncidentLink).where(IncidentLink.incident_id == incident_id)
    )
    return int(found.scalar_one())


async def _linked_tickets(session: AsyncSession, incident_id: int) -> list[Ticket]:
    found = await session.execute(
        select(Ticket)
        .join(IncidentLink, IncidentLink.ticket_id == Ticket.id)
        .where(IncidentLink.incident_id == incident_id)
        .order_by(Ticket.id)
    )
    return list(found.scalars().all())


async def _recipients(session: AsyncSession, incident_id: int) -> list[tuple[Ticket, Conversation, Contact]]:
    """Each linked customer once: a person with several linked tickets is reached on one of them."""
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
    best: dict[int, tuple[Ticket, Conversation, Contact]] = {}
    for ticket, conversation, contact in rows:
        person = contact.person_id or contact.id
        held = best.get(person)
        if held is None or _CHANNEL_PREFERENCE[conversation.kind] < _CHANNEL_PREFERENCE[held[1].kind]:
            best[person] = (ticket, conversation, contact)
    return sorted(best.values(), key=lambda row: row[0].id or 0)


async def _send_update_in(
    session: AsyncSession, incident: Incident, agent_id: int, text: str, *, final: bool
) -> IncidentUpdate:
    recipients = await _recipients(session, incident.id)  # type: ignore[arg-type]
    for ticket, conversation, _contact in recipients:  # refuse before anything is written
        try:
            check_outbound_length(conversation, text)
        except InvalidText as exc:
            raise InvalidText(f"{exc} (ticket #{ticket.id}); shorten the update") from None
    update = IncidentUpdate(
        incident_id=incident.id, text=text, final=final, agent_id=agent_id, created_at=utcnow()  # type: ignore[arg-type]
    )
    session.add(update)
    await session.flush()
    actor = agent_actor(agent_id)
    for ticket, conversation, contact in recipients:
        conversation = await get_for_update(session, Conversation, conversation.id)  # type: ignore[arg-type]
        detail = {"incident_id": incident.id, "update_id": update.id, "final": final}
        try:
            message = await queue_outbound(
                session, conversation, contact_user_id=contact.platform_user_id, text=text,
                author=Author.agent, agent_id=agent_id, ticket_id=ticket.id,
                idempotency_key=f"incident-update:{update.id}:ticket:{ticket.id}",
            )
        except PublicReplyNotAllowed as refusal:  # X would refuse it: said on the ticket, nothing sent
            update.withheld += 1
            audit(session, ticket, "public_reply_withheld", actor=actor, agent_id=agent_id,
                  detail={**detail, "reason": str(refusal)})
            continue
        update.sent_to += 1
        audit(session, ticket, "incident_update", actor=actor, agent_id=agent_id,
              detail={**detail, "message_id": message.id})
    incident.updated_at = utcnow()
    return update


__all__ = [
    "clean_keywords",
    "link_tickets",
    "open_incident",
    "raise_alert",
    "resolve_incident",
    "send_update",
    "unlink_ticket",
]
