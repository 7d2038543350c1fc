"""The announcements pacer: releases waiting deliveries to the outbox at the pace the platforms allow.

Runs in every process that runs the outbox (`frontdesk run`, `frontdesk worker`); any number of them may
run, because each step (storage.actions.announcements.release_due) locks the announcements it works on
and counts what every process released.  The outbox then delivers the rows like any other, announcements
after agents' and the bot's replies; the outbox loop drops one whose contact opted out meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot import replies
from bot.content import Content
from storage.actions.announcements import finish_done, release_due
from storage.announcements import Pace
from storage.db import Database

log = logging.getLogger(__name__)


class AnnouncementPacer:
    """`run()` until cancelled; `step()` is one release (tests).  `on_released` wakes the outbox."""

    def __init__(
        self, db: Database, content: Callable[[], Content], pace: Pace, *, tick_s: float = 1.0,
        on_released: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.content = content  # the current content (reloads change the stop note too)
        self.pace = pace
        self.tick_s = tick_s
        self.on_released = on_released
        self.released = 0

    async def step(self) -> int:
        footer = replies.announcement_footer(replies.Voice(self.content().texts))
        released = await release_due(self.db, self.pace, footer=footer)
        count = sum(released.values())
        if count:
            self.released += count
            log.info("announcements: %s released to the outbox",
                     ", ".join(f"{n} on {channel}" for channel, n in released.items()))
            if self.on_released is not None:
                self.on_released()
        for done in await finish_done(self.db):
            log.info("announcements: announcement %s is done", done)
        return count

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("announcements: pacer step failed; retrying in %.1f s", self.tick_s)
            await asyncio.sleep(self.tick_s)
