"""Reminding registrants before an event, and telling them once when an event changes or is cancelled.

A loop per worker (started by the supervisor with the router) looks every FRONTDESK_EVENT_REMINDER_INTERVAL_S
seconds, and at once after a content reload:

- **reminders**: for each event not yet started, the most recent reminder moment (`starts_at - offset`,
  offsets from the event's `reminders:` or FRONTDESK_EVENT_REMINDERS) that has passed is due while it is at
  most half its offset old (a 24h reminder may go up to 12 h late, a 1h one 30 min; never after the start).
  A registration made after that moment gets no reminder for it (they just registered).
- **changes**: each event's fingerprint (start, duration, stream link, place, cancelled) is compared with
  the one stored; the first sight only stores it; a different one sends every registrant one notice
  (a cancellation also cancels their registration), then is stored.

Every message is queued by `storage.actions.event_outreach` under an idempotency key (registration, offset
and start; event, fingerprint and registration), so workers that restart or run side by side send it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bot import replies
from bot.content import Content, Event
from bot.replies import Voice
from storage.actions import event_outreach as outreach
from storage.db import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class OutreachCounts:
    reminders: int = 0
    notices: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


def fingerprint(event: Event) -> str:
    """What registrants were told that a change would make wrong: when, how long, where, whether on."""
    facts = {"starts_at": event.starts_at.astimezone(timezone.utc).isoformat(), "duration_min": event.duration_min,
             "stream_url": event.stream_url, "place": event.place, "cancelled": event.cancelled}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def due_offset(event: Event, offsets: tuple[int, ...], now: datetime) -> int | None:
    """The reminder offset (seconds) due at `now`, or None (see the module docstring)."""
    if event.cancelled or now >= event.starts_at:
        return None
    passed = [o for o in offsets if event.starts_at - timedelta(seconds=o) <= now]
    if not passed:
        return None
    offset = min(passed)  # the most recent moment: earlier ones it supersedes are not sent late
    moment = event.starts_at - timedelta(seconds=offset)
    return offset if now - moment <= timedelta(seconds=offset / 2) else None


def reminder_key(registration_id: int, offset_s: int, event: Event) -> str:
    # The start is part of it: an event moved to another day is reminded of again for its new time.
    return f"event-reminder:{registration_id}:{offset_s}:{int(event.starts_at.timestamp())}"


def notice_key(event: Event, registration_id: int) -> str:
    return f"event-notice:{event.key}:{fingerprint(event)}:{registration_id}"


class EventOutreach:
    def __init__(
        self,
        db: Database,
        content: Callable[[], Content],
        *,
        default_offsets: tuple[int, ...],
        interval_s: float,
        clock: Clock = utcnow,
        opted_out: outreach.OptedOut | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.content = content
        self.default_offsets = default_offsets
        self.interval_s = interval_s
        self.clock = clock
        self.opted_out = opted_out
        self.on_queued = on_queued
        self.counts = OutreachCounts()
        self._checked: Content | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look now (the supervisor calls it on a content reload)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - one failed look must not end reminders; the next one retries
                log.exception("event outreach: this round failed; trying again in %.0f s", self.interval_s)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def tick(self) -> None:
        content = self.content()
        if content is not self._checked:  # on start-up and after each reload
            await self.notify_changes(content)
            self._checked = content
        await self.send_due_reminders(content)

    # --- reminders ---------------------------------------------------------------------------------------

    async def send_due_reminders(self, content: Content) -> int:
        now = self.clock()
        queued = 0
        for event in content.events:
            offsets = event.reminders if event.reminders is not None else self.default_offsets
            offset = due_offset(event, offsets, now)
            if offset is None:
                continue
            moment = event.starts_at - timedelta(seconds=offset)
            people = [r for r in await outreach.registrants(self.db, event.key) if _aware(r.created_at) <= moment]
            queued += await self._queue_all(
                content, event, people, key=lambda r, o=offset, e=event: reminder_key(r.registration_id, o, e),
                text=lambda voice, e=event: replies.event_reminder(voice, e, self._seconds_to(e)),
            )
        self.counts.reminders += queued
        return queued

    def _seconds_to(self, event: Event) -> int:
        return max(0, int((event.starts_at - self.clock()).total_seconds()))

    # --- changed or cancelled events ---------------------------------------------------------------------

    async def notify_changes(self, content: Content) -> int:
        queued = 0
        for event in content.events:
            current = fingerprint(event)
            stored = await outreach.stored_fingerprint(self.db, event.key)
            if stored is None:
                await outreach.store_fingerprint(self.db, event.key, current, only_if_absent=True)
                continue
            if stored == current:
                continue
            if event.ends_at > self.clock():  # nobody needs to hear that a past event changed
                people = await outreach.registrants(self.db, event.key)
                text = replies.event_cancelled if event.cancelled else replies.event_changed
                queued += await self._queue_all(
                    content, event, people, key=lambda r, e=event: notice_key(e, r.registration_id),
                    text=lambda voice, e=event, say=text: say(voice, e), cancel=event.cancelled,
                )
                log.info("event %s changed: %d registrants notified", event.key, len(people))
            # Stored last: a worker stopped halfway finds the change again and queues only what is missing.
            await outreach.store_fingerprint(self.db, event.key, current)
        self.counts.notices += queued
        return queued

    # --- both -------------------------------------------------------------------------------------------

    async def _queue_all(
        self, content: Content, event: Event, people: list[outreach.Registrant], *,
        key: Callable[[outreach.Registrant], str], text: Callable[[Voice], str], cancel: bool = False,
    ) -> int:
        keys = {r.registration_id: key(r) for r in people}
        done = await outreach.queued_keys(self.db, list(keys.values()))
        queued = 0
        for person in people:
            if keys[person.registration_id] in done:
                continue

            def compose(public: bool, handle: str, seed: int = person.registration_id) -> str:
                return text(Voice(texts=content.texts, public=public, handle=handle, seed=seed))

            outcome = await outreach.queue_for_registration(
                self.db, person.registration_id, key=keys[person.registration_id], compose=compose,
                cancel=cancel, skip_contact=self.opted_out,
            )
            self.counts.by_outcome[outcome.value] = self.counts.by_outcome.get(outcome.value, 0) + 1
            if outcome == outreach.Queued.queued:
                queued += 1
        if queued and self.on_queued is not None:
            self.on_queued()
        return queued


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
