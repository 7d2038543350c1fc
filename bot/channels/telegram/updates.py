"""Every Telegram update, from polling or from the webhook, goes through one `UpdateDispatcher`.

One bot token has one stream of updates, so customers and agents share it: a button press or a message in
the agents' chat goes to the pager, a private message to the customer inbox, anything else is dropped.

Each update is handled once, in order.  The last update handled is persisted (a channel cursor named after
the bot: its update_id and what it carried; the row's time says when) right after handling it.  The poller asks Telegram for
``offset = last + 1``, which also confirms everything before it, so a restart neither loses nor repeats
updates.  The one window left, a crash between handling an update and saving the cursor, is closed for
customers by the store's de-duplication (the same message is stored once), and for agents by claim being
idempotent; an agent's reply caught in it could be sent twice (see docs/telegram.md).

**update_id is not always increasing.**  The Bot API (Update.update_id, ../shared/specs/telegram-bot-api.json):
"If there are no new updates for at least a week, then identifier of the next update will be chosen randomly
instead of sequentially".  So a repeat is recognised by *what* the update carries (the chat and message id
of a message, the id of a button press: Telegram never reuses those), not by its id being at or below the
last one; an update with a lower id that carries something new is a restarted numbering: logged, handled,
and the cursor follows it down.  And after `RESTART_SUSPECT_IDLE_S` without updates, the poller asks without
an offset (see `next_offset`), because ``last + 1`` would confirm, i.e. drop, an update with a lower id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from telegram import Update

from storage.cursors import get_cursor_with_time, set_cursor
from storage.db import Database
from storage.errors import StoreError

log = logging.getLogger("frontdesk.telegram")

# An update whose handling keeps failing (not the store being down: a bug, or a message the store
# refuses) is skipped after this many attempts, so one bad update cannot stop the channel for good.
MAX_ATTEMPTS_PER_UPDATE = 5

# Telegram restarts the numbering after "at least a week" without updates; a day's margin below that.
RESTART_SUSPECT_IDLE_S = 6 * 24 * 3600.0

# How many handled updates are remembered (by content) to recognise a repeated delivery.  Telegram repeats
# only what it has not seen confirmed (the newest few), so this is plenty.
_REMEMBERED_UPDATES = 1_000


class UpdateHandler(Protocol):
    async def handle(self, update: Update) -> bool:
        """Handle the update if it is for this handler; True when it was."""
        ...


def cursor_name(bot_id: int) -> str:
    return f"telegram:{bot_id}:last_update_id"


def update_key(update: Update) -> str:
    """What the update carries, as an id Telegram never gives to anything else (unlike update_id)."""
    if update.message is not None:
        return f"message:{update.message.chat.id}:{update.message.message_id}"
    if update.callback_query is not None:
        return f"callback:{update.callback_query.id}"
    return f"update:{update.update_id}"


def _parse_cursor(value: str) -> tuple[int, str | None]:
    """(update_id, key) from the stored cursor; a bare number is the format before issue 21."""
    if value.lstrip("-").isdigit():
        return int(value), None
    data = json.loads(value)
    return int(data["update_id"]), data.get("key")


class UpdateDispatcher:
    """Hands each update to the pager (agents' chat, button presses) or to the customer inbox, once."""

    def __init__(self, db: Database, bot_id: int, customers: UpdateHandler, pager: UpdateHandler | None = None,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.bot_id = bot_id
        self.customers = customers
        self.pager = pager
        self.last_update_id: int | None = None
        self.last_handled_at: float | None = None  # Unix time the last update was handled (None: unknown)
        self.clock = clock
        self._lock = asyncio.Lock()
        self._failures: dict[int, int] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()  # keys of the updates handled lately
        self._idle_logged = False
        self.handled = 0
        self.restarts = 0  # how often update_id went back (Telegram restarted the numbering)

    async def load(self) -> int | None:
        """Read the persisted cursor; the id of the last update handled, or None on a first start."""
        stored = await get_cursor_with_time(self.db, cursor_name(self.bot_id))
        if stored is None:
            self.last_update_id = self.last_handled_at = None
            return None
        value, written_at = stored
        # The cursor is written right after each update is handled: its time is when the last one came.
        self.last_update_id, key = _parse_cursor(value)
        self.last_handled_at = written_at.timestamp()
        if key is not None:
            self._remember(key)
        return self.last_update_id

    @property
    def next_offset(self) -> int | None:
        """The getUpdates offset that confirms everything handled so far.

        None (no offset: every update not confirmed yet) once no update came for `RESTART_SUSPECT_IDLE_S`:
        Telegram may restart the numbering below ``last + 1``, and that offset would confirm, i.e. drop,
        the first update of the new numbering.  Asking without an offset is safe then: every earlier update
        was confirmed by the polls of the idle week (and Telegram keeps none longer than 24 hours).
        """
        if self.last_update_id is None:
            return None
        if self.last_handled_at is not None and self.clock() - self.last_handled_at >= RESTART_SUSPECT_IDLE_S:
            if not self._idle_logged:
                self._idle_logged = True
                log.info("telegram: no update since update %s, %.1f days ago; polling without an offset, as "
                         "Telegram may now restart update ids below it", self.last_update_id,
                         (self.clock() - self.last_handled_at) / 86400)
            return None
        return self.last_update_id + 1

    async def dispatch(self, update: Update) -> None:
        """Handle one update unless it was handled before; raises when it should be tried again."""
        key = update_key(update)
        async with self._lock:
            if key in self._recent:
                log.debug("telegram: update %s (%s) was handled before; skipped", update.update_id, key)
                return
            if self.last_update_id is not None and update.update_id <= self.last_update_id:
                # Something new under an id at or below the last: Telegram restarted the numbering.
                self.restarts += 1
                log.warning("telegram: update_id went back from %s to %s carrying a new %s; Telegram restarts "
                            "update ids after a week without updates: handling it and continuing from %s",
                            self.last_update_id, update.update_id, key.split(":", 1)[0], update.update_id)
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
            await set_cursor(self.db, cursor_name(self.bot_id), json.dumps({"update_id": update.update_id, "key": key}))
            self.last_update_id, self.last_handled_at = update.update_id, self.clock()
            self._idle_logged = False
            self._remember(key)
            self.handled += 1

    def _remember(self, key: str) -> None:
        self._recent[key] = None
        self._recent.move_to_end(key)
        while len(self._recent) > _REMEMBERED_UPDATES:
            self._recent.popitem(last=False)

    async def _route(self, update: Update) -> None:
        if self.pager is not None and await self.pager.handle(update):
            return
        if await self.customers.handle(update):
            return
        log.debug("telegram: update %s is neither a customer's nor an agent's; ignored", update.update_id)
