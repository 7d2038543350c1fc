"""The assignment loop: queued tickets of auto-assign queues go to online agents (storage/actions/assignment.py).

Woken right after the router escalates (`wake()`), and otherwise every `sweep_s` for the tickets that
queued while nobody was online or free.  Every worker process runs one; the store action makes that safe
(one holder per ticket, capacity never exceeded), so no lease is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from storage.actions import assign_waiting
from storage.db import Database

log = logging.getLogger("frontdesk.assigner")


class Assigner:
    def __init__(self, db: Database, *, online_window_s: float, sweep_s: float) -> None:
        self.db = db
        self.online_window_s = online_window_s
        self.sweep_s = sweep_s
        self.assigned = 0
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Look now (a ticket was just escalated in this process)."""
        self._wakeup.set()

    async def sweep(self) -> int:
        """One pass; how many tickets it assigned."""
        done = await assign_waiting(self.db, online_window_s=self.online_window_s)
        for assignment in done:
            log.info("ticket %s assigned to agent %s (%s queue)", assignment.ticket_id, assignment.agent_id,
                     assignment.queue)
        self.assigned += len(done)
        return len(done)

    async def run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a lost connection or a deadlock victim: the next pass retries
                log.exception("assigner: pass failed; retrying")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.sweep_s)
