"""Reads for automatic assignment (queue settings, who is online) and the presence heartbeat.

The changes themselves (switching a queue, going away, assigning a ticket) are actions
(storage/actions/assignment.py).  `seen` is housekeeping, not a state change anyone audits: the desk's live
feed and the pager call it on every use, and it writes at most once per agent per `SEEN_WRITE_EVERY_S`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.vocabulary import ASSIGN_CAPACITY_DEFAULT, QUEUES
from storage.db import Database
from storage.errors import NotFound
from storage.models import Agent, AgentPresence, QueueAssignment, Ticket, TicketStatus, utcnow

SEEN_WRITE_EVERY_S = 30.0
_MEMO_LIMIT = 10_000

# agent id -> when this process last wrote their last_seen_at (monotonic): a request storm writes once.
_last_written: dict[int, float] = {}


@dataclass(frozen=True)
class QueueSetting:
    queue: str
    auto_assign: bool
    capacity: int
    updated_at: datetime | None
    updated_by: int | None


@dataclass(frozen=True)
class Presence:
    agent_id: int
    name: str
    online: bool
    away: bool
    last_seen_at: datetime | None
    open_tickets: int


def check_queue(queue: str) -> str:
    """The queue's name, or ValueError naming the ones there are."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; use one of {', '.join(QUEUES)}")
    return queue


async def queue_settings(db: Database) -> list[QueueSetting]:
    """Every queue's setting, in the vocabulary's order; a queue nobody configured is by hand only."""
    async with db.session() as session:
        rows = {r.queue: r for r in (await session.execute(select(QueueAssignment))).scalars().all()}
    return [_setting(q, rows.get(q)) for q in QUEUES]


def _setting(queue: str, row: QueueAssignment | None) -> QueueSetting:
    if row is None:
        return QueueSetting(queue, False, ASSIGN_CAPACITY_DEFAULT, None, None)
    return QueueSetting(queue, row.auto_assign, row.capacity, row.updated_at, row.updated_by)


def online_since(now: datetime, window_s: float) -> datetime:
    return now - timedelta(seconds=window_s)


async def seen(db: Database, agent_id: int, *, now: datetime | None = None) -> bool:
    """Mark the agent as just seen (desk live feed, pager); True when it wrote.

    Skipped when this process wrote for them less than `SEEN_WRITE_EVERY_S` ago; the UPDATE's own condition
    keeps other processes (several desks) from writing more often than that either.
    """
    clock = time.monotonic()
    last = _last_written.get(agent_id)
    if last is not None and clock - last < SEEN_WRITE_EVERY_S:
        return False
    if len(_last_written) > _MEMO_LIMIT:
        _last_written.clear()
    _last_written[agent_id] = clock
    now = now or utcnow()
    async with db.transaction() as session:
        await ensure_presence_row(session, agent_id, now)
        result = await session.execute(
            AgentPresence.__table__.update()  # type: ignore[attr-defined]
            .where(
                AgentPresence.agent_id == agent_id,
                (AgentPresence.last_seen_at.is_(None))  # type: ignore[union-attr]
                | (AgentPresence.last_seen_at < now - timedelta(seconds=SEEN_WRITE_EVERY_S)),  # type: ignore[operator]
            )
            .values(last_seen_at=now)
        )
    return bool(result.rowcount)


def forget_seen_memo() -> None:
    """Tests: the next `seen` writes again."""
    _last_written.clear()


async def ensure_presence_row(session: AsyncSession, agent_id: int, now: datetime) -> None:
    """The agent's presence row exists afterwards (concurrent callers: the database picks one insert)."""
    values = {"agent_id": agent_id, "away": False, "updated_at": now}
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(
        AgentPresence.__table__  # type: ignore[attr-defined]
    )
    await session.execute(insert.values(values).on_conflict_do_nothing(index_elements=["agent_id"]))


async def is_away(db: Database, agent_id: int) -> bool:
    """Only the flag (every desk page shows it in the top bar)."""
    async with db.session() as session:
        return bool((await session.execute(
            select(AgentPresence.away).where(AgentPresence.agent_id == agent_id)
        )).scalar_one_or_none())


async def presence_of(db: Database, agent_id: int, *, window_s: float, now: datetime | None = None) -> Presence:
    found = await presences(db, window_s=window_s, now=now, agent_id=agent_id)
    if not found:
        raise NotFound("Agent", agent_id)
    return found[0]


async def presences(
    db: Database, *, window_s: float, now: datetime | None = None, agent_id: int | None = None
) -> list[Presence]:
    """Active agents (or the one asked for) with whether they are online and away, and what they hold."""
    since = online_since(now or utcnow(), window_s)
    held = (
        select(Ticket.assignee_id, func.count().label("n"))
        .where(Ticket.status == TicketStatus.assigned)
        .group_by(Ticket.assignee_id)
        .subquery()
    )
    query = (
        select(Agent.id, Agent.name, AgentPresence.last_seen_at, AgentPresence.away, held.c.n)
        .outerjoin(AgentPresence, AgentPresence.agent_id == Agent.id)  # type: ignore[arg-type]
        .outerjoin(held, held.c.assignee_id == Agent.id)
        .order_by(Agent.id)
    )
    query = query.where(Agent.id == agent_id) if agent_id is not None else query.where(Agent.active.is_(True))  # type: ignore[attr-defined]
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        Presence(
            agent_id=row[0], name=row[1], last_seen_at=row[2], away=bool(row[3]), open_tickets=int(row[4] or 0),
            online=row[2] is not None and _aware(row[2]) >= since,
        )
        for row in rows
    ]


def _aware(value: datetime) -> datetime:
    from datetime import timezone

    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC
