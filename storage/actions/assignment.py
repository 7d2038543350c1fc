"""Automatic assignment: queues switched to round robin, agents going away and back, and the assignment.

    queued ticket in an auto-assign queue ──assign_ticket──▶ assigned to the online, available agent
                                                              assigned least recently, below capacity

`assign_ticket` is one transaction: the ticket's row (the same compare-and-set as `claim`, so a claim and
an assignment racing for a ticket leave exactly one holder), the agent's `last_assigned_at`, and the audit
event `assigned` (actor `system`).  That event is also the notification: the desk's live feed shows it to
the agent, and the pager posts it under the ticket's card (both read the audit trail, whichever process
assigned).

Capacity holds however many assigners run (one per worker process): each locks the presence rows of every
agent it may pick, in agent-id order, before counting what they hold, so two assigners never both count
the same free slot.  SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select, update

from frontdesk.core import metrics
from frontdesk.core.vocabulary import ASSIGN_CAPACITY_MAX
from storage.actions._common import audit, get_agent
from storage.assignment import check_queue, ensure_presence_row, online_since
from storage.db import Database
from storage.errors import NotAllowed
from storage.models import (
    Agent,
    AgentPresence,
    AgentRole,
    Conversation,
    ConversationStatus,
    QueueAssignment,
    Ticket,
    TicketStatus,
    utcnow,
)

SWEEP_BATCH = 200  # tickets one sweep pass looks at (the next pass takes the rest)


@dataclass(frozen=True)
class Assignment:
    ticket_id: int
    agent_id: int
    agent_name: str
    queue: str


async def set_queue_assignment(
    db: Database, queue: str, *, auto_assign: bool, capacity: int, by_agent_id: int
) -> QueueAssignment:
    """Switch a queue's automatic assignment on or off and set its per-agent capacity (admins only)."""
    check_queue(queue)
    if not 1 <= capacity <= ASSIGN_CAPACITY_MAX:
        raise ValueError(f"the capacity must be between 1 and {ASSIGN_CAPACITY_MAX} open tickets per agent")
    async with db.transaction() as session:
        admin = await get_agent(session, by_agent_id)
        if admin.role != AgentRole.admin:
            raise NotAllowed("only an admin can change how a queue is assigned")
        row = await session.get(QueueAssignment, queue, with_for_update=True)
        if row is None:
            row = QueueAssignment(queue=queue)
            session.add(row)
        row.auto_assign = auto_assign
        row.capacity = capacity
        row.updated_at = utcnow()
        row.updated_by = by_agent_id
        return row


async def set_away(db: Database, agent_id: int, away: bool) -> AgentPresence:
    """An agent marks themselves away (no new assignments; what they hold stays theirs) or back."""
    now = utcnow()
    async with db.transaction() as session:
        await get_agent(session, agent_id)
        await ensure_presence_row(session, agent_id, now)
        presence = await session.get(AgentPresence, agent_id, with_for_update=True, populate_existing=True)
        assert presence is not None
        presence.away = away
        presence.updated_at = now
        if not away:
            presence.last_seen_at = now  # coming back is being here
        return presence


async def assign_ticket(
    db: Database, ticket_id: int, *, online_window_s: float, now: datetime | None = None
) -> Assignment | None:
    """Give a queued ticket of an auto-assign queue to the next agent; None when it stays queued (the queue
    is by hand, nobody is online and free, or someone claimed it first)."""
    now = now or utcnow()
    async with db.transaction() as session:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None or ticket.status != TicketStatus.queued:
            return None
        queue = str(getattr(ticket.queue, "value", ticket.queue))
        setting = await session.get(QueueAssignment, queue)
        if setting is None or not setting.auto_assign:
            return None
        candidates = (
            await session.execute(
                select(AgentPresence)
                .join(Agent, Agent.id == AgentPresence.agent_id)  # type: ignore[arg-type]
                .where(
                    Agent.active.is_(True),  # type: ignore[attr-defined]
                    AgentPresence.away.is_(False),  # type: ignore[attr-defined]
                    AgentPresence.last_seen_at >= online_since(now, online_window_s),  # type: ignore[operator]
                )
                .order_by(AgentPresence.agent_id)  # one lock order for every assigner: no deadlock
                .with_for_update(of=AgentPresence)  # type: ignore[arg-type]
                .execution_options(populate_existing=True)
            )
        ).scalars().all()
        if not candidates:
            return None
        held = dict(
            (
                await session.execute(
                    select(Ticket.assignee_id, func.count())
                    .where(
                        Ticket.status == TicketStatus.assigned,
                        Ticket.assignee_id.in_([c.agent_id for c in candidates]),  # type: ignore[union-attr]
                    )
                    .group_by(Ticket.assignee_id)
                )
            ).all()
        )
        free = [c for c in candidates if held.get(c.agent_id, 0) < setting.capacity]
        if not free:
            return None
        # Round robin: whoever was assigned least recently (never first), then the lowest id.
        chosen = min(free, key=lambda c: (c.last_assigned_at is not None, _sortable(c.last_assigned_at), c.agent_id))
        won = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.queued)  # the claim's compare-and-set
            .values(status=TicketStatus.assigned, assignee_id=chosen.agent_id, updated_at=now)
            .returning(Ticket.id)
        )
        if won.scalar_one_or_none() is None:
            return None  # claimed meanwhile: theirs
        await session.execute(
            update(Conversation)
            .where(Conversation.id == ticket.conversation_id)
            .values(status=ConversationStatus.agent, updated_at=now)
        )
        chosen.last_assigned_at = now
        chosen.updated_at = now
        agent = await get_agent(session, chosen.agent_id)
        await session.refresh(ticket)
        audit(
            session, ticket, "assigned", actor="system", agent_id=chosen.agent_id,
            detail={"agent_id": chosen.agent_id, "agent_name": agent.name, "queue": queue,
                    "held_before": held.get(chosen.agent_id, 0), "capacity": setting.capacity},
        )
        assignment = Assignment(ticket_id=ticket_id, agent_id=chosen.agent_id, agent_name=agent.name, queue=queue)
    metrics.ticket_claimed(queue)  # counted once committed, as a claim is
    return assignment


async def assign_waiting(db: Database, *, online_window_s: float, limit: int = SWEEP_BATCH) -> list[Assignment]:
    """The sweep: assign queued tickets of auto-assign queues, most urgent and oldest first.

    A queue where one ticket found nobody is left for the next pass (nobody will be free a moment later).
    """
    async with db.session() as session:
        waiting = (
            await session.execute(
                select(Ticket.id, Ticket.queue)
                .join(QueueAssignment, QueueAssignment.queue == Ticket.queue)  # type: ignore[arg-type]
                .where(Ticket.status == TicketStatus.queued, QueueAssignment.auto_assign.is_(True))  # type: ignore[attr-defined]
                .order_by(Ticket.priority, Ticket.created_at, Ticket.id)
                .limit(limit)
            )
        ).all()
    done: list[Assignment] = []
    stuck: set[str] = set()
    for ticket_id, queue in waiting:
        name = str(getattr(queue, "value", queue))
        if name in stuck:
            continue
        assigned = await assign_ticket(db, ticket_id, online_window_s=online_window_s)
        if assigned is None:
            stuck.add(name)
        else:
            done.append(assigned)
    return done


def _sortable(value: datetime | None) -> str:
    # SQLite hands timestamps back naive, PostgreSQL aware: ISO text of the UTC time sorts either way.
    if value is None:
        return ""
    return (value.astimezone(timezone.utc) if value.tzinfo else value).replace(tzinfo=None).isoformat()


__all__ = ["Assignment", "assign_ticket", "assign_waiting", "set_away", "set_queue_assignment"]
