"""Concurrent X webhook deliveries share transactions (bot/channels/recording.py), on SQLite and
PostgreSQL: every message is recorded exactly once and in each sender's order, each request is answered
only after its own messages are committed, and one bad message costs no one else theirs."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.channels.recording import InboundRecorder
from storage.db import Database
from storage.errors import InvalidText
from storage.models import Message
from tests.store_helpers import dm


async def _texts(db: Database) -> list[tuple[str, str]]:
    async with db.session() as s:
        rows = (await s.execute(select(Message.platform_message_id, Message.text).order_by(Message.id))).all()
    return [(r.platform_message_id, r.text) for r in rows]


async def test_concurrent_deliveries_are_recorded_once_in_few_transactions(db: Database) -> None:
    recorder = InboundRecorder(db)
    senders = [f"90{n}" for n in range(8)]

    async def deliver(sender: str) -> list[bool]:
        new = []
        for i in range(10):  # one sender's messages arrive one after the other, like a webhook lane
            results = await recorder.record([dm(f"{sender} says {i}", sender=sender, msg_id=f"{sender}-{i}")])
            new.append(results[0].is_new)
        return new

    outcomes = await asyncio.gather(*(deliver(s) for s in senders))
    assert all(all(flags) for flags in outcomes)
    rows = await _texts(db)
    assert len(rows) == 80
    for sender in senders:  # each sender's messages were stored in the order they were sent
        assert [t for pid, t in rows if pid.startswith(f"{sender}-")] == [f"{sender} says {i}" for i in range(10)]
    assert recorder.transactions < 80  # deliveries that arrived during a commit shared the next one

    again = await recorder.record([dm("repeat", sender="900", msg_id="900-3")])
    assert not again[0].is_new and len(await _texts(db)) == 80


async def test_a_bad_message_fails_only_its_own_delivery(db: Database) -> None:
    recorder = InboundRecorder(db)
    good = [recorder.record([dm(f"fine {i}", sender=f"95{i}", msg_id=f"ok-{i}")]) for i in range(5)]
    bad = recorder.record([dm("x" * 200_000, sender="959", msg_id="bad-1")])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(not isinstance(r, BaseException) and r[0].is_new for r in results[:5])
    assert isinstance(results[5], InvalidText)
    assert sorted(pid for pid, _ in await _texts(db)) == [f"ok-{i}" for i in range(5)]


async def test_nothing_to_record_is_answered_at_once(db: Database) -> None:
    recorder = InboundRecorder(db)
    assert await recorder.record([]) == []
    assert recorder.transactions == 0
