"""What the SLA clocks read from the store: each ticket's timestamps (frontdesk/core/sla.py computes the rest).

Reads only; the alerts the sweeper writes go through `storage.actions.sla`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.sla import EVENT_ACTIONS, Metric, SlaState, TicketTimes
from storage.models import Author, Message, MessageKind, Ticket, TicketEvent, TicketStatus

OPEN_STATUSES = (TicketStatus.queued, TicketStatus.assigned)
_STATE_OF_ACTION = {action: state for state, action in EVENT_ACTIONS.items()}


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; the store writes UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def waiting_since(session: AsyncSession, ticket_ids: list[int]) -> dict[int, datetime]:
    """Per ticket, the first customer message after the last agent reply (absent: nobody is waiting)."""
    if not ticket_ids:
        return {}
    rows = (
        await session.execute(
            select(Message.ticket_id, Message.author, Message.created_at)
            .where(
                Message.ticket_id.in_(ticket_ids),  # type: ignore[union-attr]
                Message.kind == MessageKind.message,
                Message.author.in_([Author.customer, Author.agent]),  # type: ignore[attr-defined]
            )
            .order_by(Message.ticket_id, Message.created_at, Message.id)
        )
    ).all()
    waiting: dict[int, datetime] = {}
    for ticket_id, author, created_at in rows:
        if author == Author.agent:
            waiting.pop(ticket_id, None)
        elif ticket_id not in waiting:
            waiting[ticket_id] = _aware(created_at)  # type: ignore[assignment]
    return waiting


def ticket_times(ticket: Ticket, waiting: datetime | None) -> TicketTimes:
    return TicketTimes(
        queue=ticket.queue.value,
        priority=ticket.priority.name,
        is_open=ticket.status.is_open,
        created_at=_aware(ticket.created_at),  # type: ignore[arg-type]
        first_response_at=_aware(ticket.first_response_at),
        waiting_since=waiting,
    )


async def open_ticket_times(session: AsyncSession, *, after_id: int = 0, limit: int = 500) -> list[tuple[int, TicketTimes]]:
    """A batch of open tickets (id > `after_id`, by id) with their clocks' timestamps."""
    tickets = (
        await session.execute(
            select(Ticket)
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.id > after_id)  # type: ignore[attr-defined,operator]
            .order_by(Ticket.id)
            .limit(limit)
        )
    ).scalars().all()
    waiting = await waiting_since(session, [t.id for t in tickets if t.id is not None])
    return [(t.id, ticket_times(t, waiting.get(t.id))) for t in tickets if t.id is not None]


async def alerts_recorded(session: AsyncSession, ticket_ids: list[int]) -> set[tuple[int, Metric, SlaState]]:
    """(ticket, metric, state) of the warnings and breaches already written for these tickets."""
    if not ticket_ids:
        return set()
    rows = (
        await session.execute(
            select(TicketEvent.ticket_id, TicketEvent.action, TicketEvent.detail).where(
                TicketEvent.ticket_id.in_(ticket_ids),  # type: ignore[attr-defined]
                TicketEvent.action.in_(tuple(_STATE_OF_ACTION)),  # type: ignore[attr-defined]
            )
        )
    ).all()
    found = set()
    for ticket_id, action, detail in rows:
        metric = (detail or {}).get("metric")
        if metric in Metric._value2member_map_:
            found.add((ticket_id, Metric(metric), _STATE_OF_ACTION[action]))
    return found
