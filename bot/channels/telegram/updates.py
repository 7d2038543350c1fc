"""Every Telegram update, from polling or from the webhook, goes through one `UpdateDispatcher`.

One bot token has one stream of updates, so customers and agents share it: a button press or a message in
the agents' chat goes to the pager, a private message to the customer inbox, anything else is dropped.

Each update is handled once, in order.  The id of the last update handled is persisted (a channel cursor
named after the bot) right after handling it; an update at or below it is skipped.  The poller asks
Telegram for ``offset = last + 1``, which also confirms everything before it, so a restart neither loses
nor repeats updates.  The one window left, a crash between handling an update and saving the cursor, is
closed for customers by the store's de-duplication (the same message is stored once), and for agents by
claim being idempotent; an agent's reply caught in it could be sent twice (see docs/telegram.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from telegram import Update

from storage.cursors import get_cursor, set_cursor
from storage.db import Database
from storage.errors import StoreError

log = logging.getLogger("frontdesk.telegram")

# An update whose handling keeps failing (not the store being down: a bug, or a message the store
# refuses) is skipped after this many attempts, so one bad update cannot stop the channel for good.
MAX_ATTEMPTS_PER_UPDATE = 5


class UpdateHandler(Protocol):
    async def handle(self, update: Update) -> bool:
        """Handle the update if it is for this handler; True when it was."""
        ...


def cursor_name(bot_id: int) -> str:
    return f"telegram:{bot_id}:last_update_id"


class UpdateDispatcher:
    """Hands each update to the pager (agents' chat, button presses) or to the customer inbox, once."""

    def __init__(self, db: Database, bot_id: int, customers: UpdateHandler, pager: UpdateHandler | None = None) -> None:
        self.db = db
        self.bot_id = bot_id
        self.customers = customers
        self.pager = pager
        self.last_update_id: int | None = None
        self._lock = asyncio.Lock()
        self._failures: dict[int, int] = {}
        self.handled = 0

    async def load(self) -> int | None:
        """Read the persisted cursor; the id of the last update handled, or None on a first start."""
        value = await get_cursor(self.db, cursor_name(self.bot_id))
        self.last_update_id = int(value) if value is not None else None
        return self.last_update_id

    @property
    def next_offset(self) -> int | None:
        """The getUpdates offset that confirms everything handled so far."""
        return None if self.last_update_id is None else self.last_update_id + 1

    async def dispatch(self, update: Update) -> None:
        """Handle one update unless it was handled before; raises when it should be tried again."""
        async with self._lock:
            if self.last_update_id is not None and update.update_id <= self.last_update_id:
                log.debug("telegram: update %s was handled before; skipped", update.update_id)
                return
            try:
                await self._route(update)
            except StoreError as exc:
                # The store refused the content for good (e.g. text it cannot hold): retrying will not help.
                log.warning("telegram: update %s refused by the store (%s); skipped", update.update_id, exc)
            except Exception:
                attempts = self._failures.get(update.update_id, 0) + 1
                self._failures[update.update_id] = attempts
                if attempts < MAX_ATTEMPTS_PER_UPDATE:
                    raise
                log.exception("telegram: update %s failed %d times; skipped", update.update_id, attempts)
            self._failures.pop(update.update_id, None)
            await set_cursor(self.db, cursor_name(self.bot_id), str(update.update_id))
            self.last_update_id = update.update_id
            self.handled += 1

    async def _route(self, update: Update) -> None:
        if self.pager is not None and await self.pager.handle(update):
            return
        if await self.customers.handle(update):
            return
        log.debug("telegram: update %s is neither a customer's nor an agent's; ignored", update.update_id)
