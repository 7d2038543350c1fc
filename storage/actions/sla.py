"""SLA alerts: a warning (80% of a target used) or a breach, written once per ticket, metric and state.

The sweeper (bot/sla_sweeper.py) runs in every router process; several may see the same clock cross at
the same moment.  The ticket row is locked, the audit trail re-read under the lock, and the event written
only if it is not there yet: exactly one `sla_warning` / `sla_breach` row per (ticket, metric), across
processes and restarts.  The pager and the desk's live feed pick the row up from `ticket_events`.
"""

from __future__ import annotations

from frontdesk.core import metrics
from frontdesk.core.sla import EVENT_ACTIONS, Metric, SlaState
from storage.actions._common import audit, get_for_update
from storage.db import Database
from storage.errors import NotFound
from storage.models import Ticket
from storage.sla import alerts_recorded, waiting_since


async def record_sla_alert(db: Database, ticket_id: int, metric: Metric | str, state: SlaState | str) -> bool:
    """Write the ticket's `sla_warning` or `sla_breach` event for `metric` unless it exists; True if written.

    Nothing is written for a ticket that has closed, or whose clock for `metric` has stopped (an agent
    answered), since the caller looked.
    """
    metric, state = Metric(metric), SlaState(state)
    if state not in EVENT_ACTIONS:
        raise ValueError(f"only {', '.join(s.value for s in EVENT_ACTIONS)} are recorded, not {state.value!r}")
    async with db.transaction() as session:
        try:
            ticket = await get_for_update(session, Ticket, ticket_id)
        except NotFound:
            return False
        if not ticket.status.is_open or (metric == Metric.first_response and ticket.first_response_at is not None):
            return False
        if metric == Metric.next_response and not await waiting_since(session, [ticket_id]):
            return False
        if (ticket_id, metric, state) in await alerts_recorded(session, [ticket_id]):
            return False
        audit(session, ticket, EVENT_ACTIONS[state], actor="system", detail={"metric": metric.value})
        queue = ticket.queue.value
    metrics.sla_alert(queue, metric.value, state.value)
    return True
