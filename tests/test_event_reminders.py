"""Event reminders and change notices against the store (SQLite and PostgreSQL), on a test clock.

What a registrant notices: one reminder on the conversation they registered from, at its time, never twice
(two workers, a restart), never long after its moment; none after "cancel my registration"; one notice
when the event moves or is called off.  The end-to-end tests through the emulators are in
tests/test_event_reminders_e2e.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.content import Content, ContentError, Event, load_events
from bot.event_reminders import EventOutreach, due_offset
from storage import actions
from storage.actions import registrations
from storage.db import Database
from storage.models import Conversation, EventRegistration, Message, OutboxItem
from tests.store_helpers import dm, mention

START = datetime(2026, 12, 10, 13, 0, tzinfo=timezone.utc)
WEBINAR = Event(
    key="webinar", name="Routing webinar", kind="webinar", starts_at=START.astimezone(ZoneInfo("Europe/Berlin")),
    timezone="Europe/Berlin", duration_min=60,
    registration_url="https://events.example.com/routing", capacity=0, keywords=("webinar",),
    stream_url="https://events.example.com/live/routing",
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _outreach(db: Database, content: Content, clock: Clock, **kw) -> EventOutreach:  # type: ignore[no-untyped-def]
    return EventOutreach(db, lambda: content, default_offsets=(86400, 3600), interval_s=60, clock=clock, **kw)


async def _registered(db: Database, event_key: str = "webinar", *, sender: str = "111", handle: str = "alice",
                      public: bool = False) -> int:
    message = mention(f"@brand sign me up, {handle}", sender=sender, handle=handle) if public else dm(
        "sign me up", sender=sender, handle=handle)
    rec = await actions.record_inbound(db, message)
    async with db.session() as s:
        contact_id = (await s.get(Conversation, rec.conversation_id)).contact_id  # type: ignore[union-attr]
    await registrations.register(db, contact_id, event_key, conversation_id=rec.conversation_id)
    return contact_id


async def _sent(db: Database) -> list[tuple[str, str, dict]]:
    async with db.session() as s:
        rows = await s.execute(select(OutboxItem.idempotency_key, OutboxItem.text, OutboxItem.target)
                               .order_by(OutboxItem.id))
        return [(k, t, dict(g)) for k, t, g in rows if k.startswith("event-")]


async def _backdate_registrations(db: Database, when: datetime) -> None:
    async with db.transaction() as s:
        for row in (await s.execute(select(EventRegistration))).scalars():
            row.created_at = when


async def test_a_reminder_is_queued_once_at_its_time_in_the_events_zone_with_the_link(db: Database) -> None:
    await _registered(db)
    await _backdate_registrations(db, START - timedelta(days=3))
    clock = Clock(START - timedelta(hours=2))
    content = Content(events=(WEBINAR,))
    outreach = _outreach(db, content, clock)
    await outreach.tick()
    assert await _sent(db) == []  # 24h reminder long passed (more than 12 h late), 1h not yet

    clock.now = START - timedelta(minutes=59)
    await outreach.tick()
    await outreach.tick()
    await _outreach(db, content, clock).tick()  # a second worker (or a restarted one)
    [(key, text, target)] = await _sent(db)
    assert key.startswith("event-reminder:") and target["kind"] == "dm"
    assert "Routing webinar starts in 59 minutes" in text  # the time left when it is sent
    assert "14:00–15:00 CET (Europe/Berlin)" in text  # 13:00 UTC, said in the event's own zone
    assert "https://events.example.com/live/routing" in text


async def test_two_workers_at_once_queue_one_reminder(db: Database) -> None:
    for n in range(5):
        await _registered(db, sender=f"20{n}", handle=f"user{n}")
    await _backdate_registrations(db, START - timedelta(days=3))
    clock = Clock(START - timedelta(minutes=30))
    content = Content(events=(WEBINAR,))
    await asyncio.gather(*(_outreach(db, content, clock).tick() for _ in range(3)))
    keys = [k for k, _, _ in await _sent(db)]
    assert len(keys) == 5 and len(set(keys)) == 5


async def test_a_reminder_long_past_its_moment_is_not_sent_late(db: Database) -> None:
    await _registered(db)
    await _backdate_registrations(db, START - timedelta(days=3))
    content = Content(events=(WEBINAR,))
    await _outreach(db, content, Clock(START - timedelta(minutes=20))).tick()  # 40 min late: over half an hour
    await _outreach(db, content, Clock(START + timedelta(minutes=5))).tick()  # the event has started
    assert await _sent(db) == []


async def test_nobody_is_reminded_of_a_moment_before_they_registered(db: Database) -> None:
    await _registered(db)
    await _backdate_registrations(db, START - timedelta(hours=20))
    content = Content(events=(WEBINAR,))
    await _outreach(db, content, Clock(START - timedelta(hours=19))).tick()  # the 24h moment was before
    assert await _sent(db) == []
    await _outreach(db, content, Clock(START - timedelta(minutes=55))).tick()
    assert len(await _sent(db)) == 1


async def test_a_cancelled_registration_gets_no_reminder(db: Database) -> None:
    contact_id = await _registered(db)
    await _backdate_registrations(db, START - timedelta(days=3))
    assert await registrations.cancel(db, contact_id, "webinar")
    await _outreach(db, Content(events=(WEBINAR,)), Clock(START - timedelta(minutes=59))).tick()
    assert await _sent(db) == []


async def test_an_opted_out_contact_gets_no_reminder(db: Database) -> None:
    await _registered(db)
    await _backdate_registrations(db, START - timedelta(days=3))

    async def everyone_opted_out(session, contact_id: int) -> bool:  # type: ignore[no-untyped-def]
        return True

    outreach = _outreach(db, Content(events=(WEBINAR,)), Clock(START - timedelta(minutes=59)),
                         opted_out=everyone_opted_out)
    await outreach.tick()
    assert await _sent(db) == [] and outreach.counts.by_outcome == {"skipped": 1}


async def test_a_contact_who_said_stop_gets_no_reminder_with_the_real_consent_check(db: Database) -> None:
    from storage.actions.consent import opt_out
    from storage.outreach import opted_out_in

    stopped = await _registered(db, sender="401", handle="stopper")
    await _registered(db, sender="402", handle="keeper")
    await _backdate_registrations(db, START - timedelta(days=3))
    await opt_out(db, stopped)
    outreach = _outreach(db, Content(events=(WEBINAR,)), Clock(START - timedelta(minutes=59)), opted_out=opted_out_in)
    await outreach.tick()
    assert len(await _sent(db)) == 1 and outreach.counts.by_outcome == {"queued": 1, "skipped": 1}


async def test_the_reminder_goes_to_the_channel_registered_from_and_old_rows_use_the_latest(db: Database) -> None:
    # Registered in a public thread that summoned the brand: the reminder is a reply there, naming them.
    await _registered(db, sender="301", handle="pat", public=True)
    # An old row (no conversation kept): the contact's latest conversation.
    old = await _registered(db, sender="302", handle="sam")
    async with db.transaction() as s:
        row = (await s.execute(select(EventRegistration).where(EventRegistration.contact_id == old))).scalar_one()
        row.conversation_id = None
    await _backdate_registrations(db, START - timedelta(days=3))
    await _outreach(db, Content(events=(WEBINAR,)), Clock(START - timedelta(minutes=59))).tick()
    by_kind = {target["kind"]: text for _, text, target in await _sent(db)}
    assert set(by_kind) == {"reply", "dm"}
    assert by_kind["reply"].startswith(("pat, ", "Hi pat")) and "https://events.example.com/live/routing" in by_kind["reply"]


async def test_a_moved_event_notifies_each_registrant_once_and_reminds_for_the_new_time(db: Database) -> None:
    await _registered(db)
    await _backdate_registrations(db, START - timedelta(days=3))
    clock = Clock(START - timedelta(days=2))
    await _outreach(db, Content(events=(WEBINAR,)), clock).tick()  # first sight: stored, nobody told
    assert await _sent(db) == []

    moved = dataclasses.replace(WEBINAR, starts_at=WEBINAR.starts_at + timedelta(days=1))
    content = Content(events=(moved,))
    await _outreach(db, content, clock).tick()
    await _outreach(db, content, clock).tick()  # a reload, another worker: still one notice
    [(key, text, _)] = await _sent(db)
    assert key.startswith("event-notice:webinar:")
    assert "A change to Routing webinar" in text and "Friday 11 December" in text


async def test_a_cancelled_event_notifies_once_cancels_the_registration_and_no_reminder_follows(db: Database) -> None:
    await _registered(db)
    await _backdate_registrations(db, START - timedelta(days=3))
    clock = Clock(START - timedelta(days=2))
    await _outreach(db, Content(events=(WEBINAR,)), clock).tick()
    called_off = Content(events=(dataclasses.replace(WEBINAR, cancelled=True),))
    await _outreach(db, called_off, clock).tick()
    clock.now = START - timedelta(minutes=59)
    await _outreach(db, called_off, clock).tick()
    [(_, text, _)] = await _sent(db)
    assert "is cancelled" in text
    async with db.session() as s:
        assert (await s.execute(select(EventRegistration.status))).scalar_one() == "cancelled"
        # The notice is an ordinary outbound message of the customer's conversation (visible in the desk).
        assert (await s.execute(select(Message.text).where(Message.text == text))).scalar_one()


def test_due_offset_picks_the_latest_passed_moment_within_half_its_offset() -> None:
    offsets = (86400, 3600)
    assert due_offset(WEBINAR, offsets, START - timedelta(hours=23)) == 86400
    assert due_offset(WEBINAR, offsets, START - timedelta(hours=11)) is None  # 13 h late
    assert due_offset(WEBINAR, offsets, START - timedelta(minutes=45)) == 3600
    assert due_offset(WEBINAR, (), START - timedelta(minutes=45)) is None


@pytest.mark.parametrize(("value", "problem"), [
    ("[2x]", "is not a duration"), ("24h", "must be a list of durations"), ("[0h]", "more than 0"),
])
def test_reminders_in_events_yml_are_checked(tmp_path: Path, value: str, problem: str) -> None:
    path = tmp_path / "events.yml"
    path.write_text(
        "events:\n  - key: webinar\n    name: W\n    starts_at: \"2026-12-10T14:00:00+01:00\"\n"
        "    timezone: Europe/Berlin\n    stream_url: https://e.example/live\n"
        f"    registration_url: https://e.example/r\n    reminders: {value}\n", encoding="utf-8")
    with pytest.raises(ContentError, match=problem):
        load_events(path)
    path.write_text(path.read_text().replace(f"reminders: {value}", "reminders: [1h, 24h]"), encoding="utf-8")
    assert load_events(path)[0].reminders == (86400, 3600)
