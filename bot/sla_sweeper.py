"""The SLA sweeper: every so often, look at the open tickets' clocks and record each new warning or breach.

Started by the supervisor in every process that runs the router (frontdesk/app/supervisor.py).  Several
may run at once: `storage.actions.record_sla_alert` writes each (ticket, metric, state) once, whoever gets
there first, so a pass here only decides what to try.  What it records is posted to the agents' pager and
shown in the desk by the parts that watch `ticket_events` (bot/channels/telegram/agents.py, desk/live.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from frontdesk.core.sla import EVENT_ACTIONS, SlaPolicy, clocks
from storage import actions
from storage.db import Database
from storage.models import utcnow
from storage.sla import alerts_recorded, open_ticket_times

log = logging.getLogger("frontdesk.sla")
BATCH = 500


class SlaSweeper:
    """`policy()` is asked on every pass, so a content reload (new targets) takes effect at the next one."""

    def __init__(self, db: Database, policy: Callable[[], SlaPolicy], *, interval_s: float = 30.0,
                 on_alert: Callable[[], None] | None = None) -> None:
        self.db = db
        self.policy = policy
        self.interval_s = interval_s
        self.on_alert = on_alert

    async def sweep(self, now: datetime | None = None) -> int:
        """One pass over every open ticket; returns how many alerts this pass wrote."""
        policy = self.policy()
        if not policy.targets.enabled:
            return 0
        now = now or utcnow()
        written, after = 0, 0
        while True:
            async with self.db.session() as session:
                batch = await open_ticket_times(session, after_id=after, limit=BATCH)
                done = await alerts_recorded(session, [ticket_id for ticket_id, _ in batch])
            for ticket_id, times in batch:
                for clock in clocks(times, policy, now):
                    new = clock.state in EVENT_ACTIONS and (ticket_id, clock.metric, clock.state) not in done
                    if new and await actions.record_sla_alert(self.db, ticket_id, clock.metric, clock.state):
                        written += 1
            if len(batch) < BATCH:
                break
            after = batch[-1][0]
        if written and self.on_alert is not None:
            self.on_alert()
        return written

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sla sweeper: pass failed; retrying in %.0f s", self.interval_s)
            await asyncio.sleep(self.interval_s)
