"""Gauges read from the store: queue depths and the inbox/outbox backlog, for `/metrics`.

Every process that runs `run_store_gauges` reports the same values (they are the store's), so any one
replica's scrape is right.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select

from frontdesk.core import metrics
from storage.db import Database
from storage.models import WAITING_MESSAGES, Message, OutboxItem, OutboxStatus, Ticket, TicketStatus

log = logging.getLogger(__name__)


async def refresh_store_gauges(db: Database) -> None:
    """Read queue depth and inbox/outbox backlog from the store (three aggregate queries)."""
    async with db.session() as session:
        queued = (
            await session.execute(
                select(Ticket.queue, func.count()).where(Ticket.status == TicketStatus.queued).group_by(Ticket.queue)
            )
        ).all()
        inbox = (
            await session.execute(
                select(func.count()).select_from(Message).where(WAITING_MESSAGES)  # ix_messages_waiting
            )
        ).scalar_one()
        outbox = (
            await session.execute(
                select(OutboxItem.status, func.count())
                .where(OutboxItem.status != OutboxStatus.sent)
                .group_by(OutboxItem.status)
            )
        ).all()
    metrics.set_queue_depths({getattr(q, "value", q): n for q, n in queued})
    metrics.INBOX_BACKLOG.set(inbox)
    by_status = {getattr(s, "value", s): n for s, n in outbox}
    for status in ("pending", "sending", "failed"):
        metrics.OUTBOX_BACKLOG.labels(status).set(by_status.get(status, 0))


async def run_store_gauges(db: Database, interval_s: float = 15.0) -> None:
    """Refresh the store gauges every `interval_s` until cancelled; a failed read is logged, not fatal."""
    while True:
        try:
            await refresh_store_gauges(db)
        except Exception as exc:  # noqa: BLE001 - metrics must never take a worker down
            log.warning("metrics: reading the store failed (%s); gauges keep their last values", type(exc).__name__)
        await asyncio.sleep(interval_s)
