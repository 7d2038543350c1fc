"""Run a channel's pollers only while this process holds that account's leader lease.

Every `frontdesk worker` (and `frontdesk run`) contends for `x:<brand id>` and `telegram:<bot id>`; the
holder starts the channel's pollers, the others wait and take over within `lease_s / 3` seconds of the
holder's death (at once on PostgreSQL when its connection closes).  See storage/leadership.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from frontdesk.core import metrics
from storage.db import Database
from storage.leadership import LeaderLease, leader_lease

log = logging.getLogger("bot.channels.leading")

Action = Callable[[], Awaitable[None]]


class PollingLeader:
    """`run()` until cancelled; `first_attempt` is set once the first try for the lease is over."""

    def __init__(
        self, db: Database, name: str, start: Action, stop: Action, *, lease_s: float = 15.0,
        check_s: float = 0.5,
    ) -> None:
        self.db = db
        self.name = name
        self._start = start
        self._stop = stop
        self.lease_s = lease_s
        self.check_s = check_s
        self.leading = False
        self.takeovers = 0
        self.first_attempt = asyncio.Event()

    async def run(self) -> None:
        def on_change(held: bool) -> None:
            metrics.set_leader(self.name, held)

        try:
            async with leader_lease(self.db, self.name, lease_s=self.lease_s, on_change=on_change) as lease:
                if not lease.held:
                    log.info("%s: another process polls; standing by to take over", self.name)
                    self.first_attempt.set()
                while True:
                    await lease.wait_held()
                    await self._lead(lease)
        finally:
            self.first_attempt.set()
            if self.leading:
                self.leading = False
                await asyncio.shield(self._stop())

    async def _lead(self, lease: LeaderLease) -> None:
        self.takeovers += 1
        log.info("%s: this process leads; starting the pollers", self.name)
        await self._start()
        self.leading = True
        self.first_attempt.set()
        while lease.held:  # the keeper task renews it; a failed renewal flips `held`
            await asyncio.sleep(self.check_s)
        log.warning("%s: leadership lost; stopping the pollers", self.name)
        self.leading = False
        await self._stop()
