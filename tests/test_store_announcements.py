"""Consent and announcements in the store, on SQLite and PostgreSQL: who is reached, at what pace, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.actions import InboundMessage, bot_reply, record_inbound
from storage.actions.announcements import (
    OPTED_OUT_DELIVERY,
    AlreadySent,
    BadAudience,
    create_announcement,
    drop_if_opted_out,
    finish_done,
    release_due,
    start_sending,
)
from storage.actions.consent import ConsentOutcome, opt_in, opt_out
from storage.actions.registrations import register
from storage.agents import create_agent
from storage.announcements import Pace, Window, failures, preview, progress
from storage.customers import link_contacts
from storage.db import Database
from storage.errors import InvalidText
from storage.models import (
    AnnouncementDelivery,
    AnnouncementStatus,
    Author,
    Channel,
    ConversationKind,
    Message,
    OutboxItem,
    OutboxStatus,
    utcnow,
)
from storage.outbox import lease_due, mark_sent
from storage.outreach import opted_out
from storage.usage import load_prices
from tests.store_helpers import dm, mention

FOOTER = 'Reply "stop" to get no more announcements.'
CONTENT = Path(__file__).resolve().parents[1] / "content"


def _telegram(chat: str, text: str = "hello") -> InboundMessage:
    return InboundMessage(
        channel=Channel.telegram, conversation_kind=ConversationKind.telegram, conversation_ref=chat,
        sender_id=chat, sender_handle=f"tg{chat}", text=text, platform_message_id=f"{chat}:1",
    )


async def _admin(db: Database) -> int:
    agent = await create_agent(db, email="root@brand.example", name="Root", password="correct horse", role="admin")
    assert agent.id is not None
    return agent.id


async def _contacts(db: Database, n: int) -> list[int]:
    return [(await record_inbound(db, dm("hi", sender=str(500 + i), handle=f"c{i}"))).contact_id for i in range(n)]


async def _announce(db: Database, admin: int, **kw: str) -> int:
    values = {"text": "Our spring sale starts Monday!", "audience": "opted_in", "audience_key": "", **kw}
    announcement = await create_announcement(
        db, footer=FOOTER, agent_id=admin, event_keys=frozenset({"meetup-berlin-2027-01"}), **values  # type: ignore[arg-type]
    )
    assert announcement.id is not None
    return announcement.id


async def _deliveries(db: Database, announcement_id: int) -> list[AnnouncementDelivery]:
    async with db.session() as s:
        rows = await s.execute(select(AnnouncementDelivery).where(AnnouncementDelivery.announcement_id == announcement_id)
                               .order_by(AnnouncementDelivery.id))
        return list(rows.scalars())


# --- consent ------------------------------------------------------------------------------------------------
async def test_stop_is_new_once_and_the_later_answer_wins(db: Database) -> None:
    (alice,) = await _contacts(db, 1)
    assert not await opted_out(db, alice)
    assert await opt_out(db, alice) is ConsentOutcome.changed
    assert await opt_out(db, alice) is ConsentOutcome.already  # a second "stop": nothing to confirm
    assert await opted_out(db, alice)
    assert await opt_in(db, alice) is ConsentOutcome.changed  # "keep me posted" later: back in
    assert await opt_in(db, alice) is ConsentOutcome.already
    assert not await opted_out(db, alice)


async def test_stop_on_telegram_holds_for_the_same_persons_x_contact(db: Database) -> None:
    (on_x,) = await _contacts(db, 1)
    on_telegram = (await record_inbound(db, _telegram("9001"))).contact_id
    await opt_in(db, on_x)
    await link_contacts(db, on_x, on_telegram)
    await opt_out(db, on_telegram)
    assert await opted_out(db, on_x) and await opted_out(db, on_telegram)


async def test_an_events_audience_is_its_registrants_less_those_who_said_stop(db: Database) -> None:
    admin = await _admin(db)
    registrant, other, stopped = await _contacts(db, 3)
    for contact in (registrant, stopped):
        await register(db, contact, "meetup-berlin-2027-01")
    await opt_out(db, stopped)
    await opt_in(db, other)
    prices = load_prices(CONTENT)
    seen = await preview(db, audience="event", key="meetup-berlin-2027-01", text="Doors open at 18:00",
                         footer=FOOTER, pace=Pace(), prices=prices)
    assert (seen.total, seen.opted_out) == (1, 1)  # the one who said stop is counted apart, not reached
    assert seen.cost_usd == pytest.approx(prices.unit_price("dms_created"))
    assert seen.text.endswith(FOOTER)
    announcement = await _announce(db, admin, audience="event", audience_key="meetup-berlin-2027-01")
    await start_sending(db, announcement, admin)
    assert [d.contact_id for d in await _deliveries(db, announcement)] == [registrant]


# --- drafts ---------------------------------------------------------------------------------------------------
async def test_a_draft_is_refused_for_empty_text_too_long_text_or_an_unknown_event(db: Database) -> None:
    admin = await _admin(db)
    with pytest.raises(InvalidText, match="no text"):
        await _announce(db, admin, text="   ")
    with pytest.raises(InvalidText, match="Telegram takes at most 4,096"):
        await _announce(db, admin, text="x" * 4_070)  # fits alone, not with the stop note
    with pytest.raises(BadAudience, match="no event 'nope'"):
        await create_announcement(db, text="hi", audience="event", audience_key="nope", footer=FOOTER,
                                  agent_id=admin, event_keys=frozenset({"meetup"}))
    with pytest.raises(BadAudience, match="unknown audience"):
        await _announce(db, admin, audience="everyone")


# --- sending ----------------------------------------------------------------------------------------------------
async def test_sending_twice_sends_once_and_the_pace_holds_per_window(db: Database) -> None:
    admin = await _admin(db)
    contacts = await _contacts(db, 5)
    for contact in contacts:
        await opt_in(db, contact)
    await opt_out(db, contacts[4])
    announcement = await _announce(db, admin)
    assert await start_sending(db, announcement, admin) == 4  # the one who said stop gets no delivery
    with pytest.raises(AlreadySent):
        await start_sending(db, announcement, admin)

    pace = Pace({Channel.x: (Window(3, 60.0),)})
    now = utcnow()
    assert await release_due(db, pace, footer=FOOTER, now=now) == {"x": 3}
    assert await release_due(db, pace, footer=FOOTER, now=now + timedelta(seconds=30)) == {}  # window used up
    assert await release_due(db, pace, footer=FOOTER, now=now + timedelta(seconds=61)) == {"x": 1}
    assert await release_due(db, pace, footer=FOOTER, now=now + timedelta(seconds=200)) == {}  # nothing left

    async with db.session() as s:
        rows = list((await s.execute(select(OutboxItem).order_by(OutboxItem.id))).scalars())
        authors = set((await s.execute(select(Message.author).where(Message.id.in_([r.message_id for r in rows])))).scalars())
    assert len(rows) == 4 and len({r.idempotency_key for r in rows}) == 4
    assert all(r.text == f"Our spring sale starts Monday!\n\n{FOOTER}" and r.target["kind"] == "dm" for r in rows)
    assert authors == {Author.system}
    assert (await progress(db, announcement)).pending == 4


async def test_a_contact_who_says_stop_after_queueing_is_dropped_at_send_time(db: Database) -> None:
    admin = await _admin(db)
    first, second = await _contacts(db, 2)
    for contact in (first, second):
        await opt_in(db, contact)
    announcement = await _announce(db, admin)
    await start_sending(db, announcement, admin)
    await release_due(db, Pace(), footer=FOOTER)
    await opt_out(db, second)

    leased = await lease_due(db, "test")
    assert len(leased) == 2
    outcomes = {}
    for row in leased:
        dropped = await drop_if_opted_out(db, row.id, int(row.target["announcement"]))
        if not dropped:
            await mark_sent(db, row.id, f"dm-{row.id}")
        outcomes[row.target["recipient_id"]] = dropped
    assert sorted(outcomes.values()) == [False, True]
    async with db.session() as s:
        failed = (await s.execute(select(OutboxItem).where(OutboxItem.status == OutboxStatus.failed))).scalar_one()
    assert failed.last_error == OPTED_OUT_DELIVERY
    done = await progress(db, announcement)
    assert (done.sent, done.opted_out, done.failed, done.pending) == (1, 1, 0, 0)
    assert await failures(db, announcement) == []
    assert await finish_done(db) == [announcement]


async def test_replies_go_before_announcements_in_the_outbox(db: Database) -> None:
    admin = await _admin(db)
    contacts = await _contacts(db, 3)
    for contact in contacts:
        await opt_in(db, contact)
    announcement = await _announce(db, admin)
    await start_sending(db, announcement, admin)
    await release_due(db, Pace(), footer=FOOTER)
    late = await record_inbound(db, dm("where is my parcel", sender="777", handle="late"))
    await bot_reply(db, late.conversation_id, "Let me check.")
    first = (await lease_due(db, "test", limit=1))[0]
    assert first.text == "Let me check."


async def test_a_public_only_x_contact_gets_a_dm_conversation_and_telegram_its_chat(db: Database) -> None:
    admin = await _admin(db)
    public = (await record_inbound(db, mention("@brand keep me posted", sender="321", handle="pub"))).contact_id
    telegram = (await record_inbound(db, _telegram("4242"))).contact_id
    for contact in (public, telegram):
        await opt_in(db, contact)
    announcement = await _announce(db, admin)
    await start_sending(db, announcement, admin)
    assert await release_due(db, Pace(), footer=FOOTER) == {"x": 1, "telegram": 1}
    async with db.session() as s:
        targets = sorted((r.target["kind"], r.target.get("recipient_id") or r.target.get("chat_id"))
                         for r in (await s.execute(select(OutboxItem))).scalars())
    assert targets == [("dm", "321"), ("telegram", "4242")]


async def test_an_announcement_with_nobody_to_reach_is_done_at_once(db: Database) -> None:
    admin = await _admin(db)
    announcement = await _announce(db, admin)
    assert await start_sending(db, announcement, admin) == 0
    async with db.session() as s:
        from storage.models import Announcement

        row = await s.get(Announcement, announcement)
        assert row is not None and row.status == AnnouncementStatus.done
