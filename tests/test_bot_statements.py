"""What one handled message costs the store: the router worker's statements (SQLite and PostgreSQL).

The pipeline benchmark (bench/pipeline.py, via bench/statements.py) prints these per phase; this test pins
the route phase of one DM: the lease reads the waiting messages with it, and the conversation row is
written once for the message (its time and bot state go with the lease release), while what the bot
wrote still reads back: the answer, the bot's state, the lease given back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from bot.content import Content
from bot.router import RouterConfig
from bot.worker import BotWorker
from nlu.client import ParseResult
from storage.actions import record_inbound
from storage.db import Database
from storage.models import Conversation, Message, OutboxItem
from tests.fixtures.bot import nlu_result
from tests.store_helpers import dm


class _Greeting:
    async def parse(self, text: str) -> ParseResult:
        return nlu_result("greet", 0.95, text)


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_one_dm_writes_its_conversation_once_and_is_not_read_twice(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    recorded = await record_inbound(db, dm("hello there", sender="9301"))
    worker = BotWorker(db, _Greeting(), content, router_config, owner="w1", idle_poll_s=0.05)
    with _statements(db) as seen:
        await worker.drain()
    assert worker.stats.handled == 1 and worker.stats.replied == 1
    # Handling the message writes the conversation row once: the lease release carries the answer's time
    # and the bot's state (before: the ORM's UPDATE of those, then the release).  The waiting message was
    # read with the lease (before: a read of its own), and leasing is one statement (before: two).
    leases = [s for s in seen if "UPDATE conversations SET lease_owner" in s and "candidate" in s]
    assert len(leases) == 2, seen  # the lease, and drain's last look that finds nothing
    handling = [s for s in seen if "UPDATE conversations SET" in s and s not in leases]
    assert len(handling) == 1 and "bot_state" in handling[0] and "lease_owner" in handling[0], seen
    reads_of_waiting = [s for s in seen if s.startswith("SELECT messages.") and "handled_at IS NULL" in s]
    if db.dialect == "postgresql":  # the lease is a CTE, and the same statement joins the waiting messages
        assert not reads_of_waiting and all(s.startswith("WITH leased AS") for s in leases), seen
    else:
        assert len(reads_of_waiting) == 1, seen
    # Lease + read, then BEGIN, lock, answer, its outbox row, release, mark handled, then the empty lease.
    # On PostgreSQL the lease and the read are one statement (in autocommit: no BEGIN or COMMIT either),
    # the answer and its outbox row are one (WITH … INSERT), and so are the handled mark and the release (WITH handled AS (UPDATE messages …) UPDATE conversations …).
    expected = 5 if db.dialect == "postgresql" else 8
    assert len([s for s in seen if not s.startswith("BEGIN")]) == expected, seen
    if db.dialect == "postgresql":
        assert any(s.startswith("WITH new_message AS (INSERT INTO messages") and "INSERT INTO outbox" in s
                   for s in seen), seen
        assert handling[0].startswith("WITH handled AS (UPDATE messages"), seen

    async with db.session() as session:
        conversation = await session.get(Conversation, recorded.conversation_id)
        answer = (await session.execute(
            select(OutboxItem).where(OutboxItem.conversation_id == recorded.conversation_id)
        )).scalar_one()
        message = await session.get(Message, recorded.message_id)
    assert conversation is not None and message is not None
    assert conversation.bot_state.get("last_message_id") == recorded.message_id
    assert conversation.lease_owner is None and conversation.lease_until is None
    assert conversation.updated_at >= answer.created_at  # the answer's time reached the row
    assert message.handled_at is not None and message.intent == "greet"


async def test_marking_delivered_rows_sent_is_two_statements_for_the_batch_one_on_postgresql(db: Database) -> None:
    from storage.actions import bot_reply
    from storage.outbox import lease_due, mark_sent_many

    for i in range(3):
        recorded = await record_inbound(db, dm("hello", sender=f"931{i}"))
        await bot_reply(db, recorded.conversation_id, f"hi {i}", idempotency_key=f"answer:{recorded.message_id}")
    leased = await lease_due(db, "sender-1")
    with _statements(db) as seen:
        await mark_sent_many(db, [(d.id, f"x-{d.id}") for d in leased])
    # The rows, then their messages: no read of the rows first (before: a SELECT ... FOR UPDATE).
    if db.dialect == "postgresql":  # one statement, both updates (WITH marked AS (UPDATE outbox …) UPDATE messages)
        assert len(seen) == 1 and seen[0].startswith("WITH marked AS (UPDATE outbox") and "UPDATE messages" in seen[0]
    else:
        assert [s.split()[:2] for s in seen if not s.startswith("BEGIN")] == [["UPDATE", "outbox"], ["UPDATE", "messages"]]
    async with db.session() as session:
        delivered = (await session.execute(
            select(Message.platform_message_id).where(Message.delivered_at.is_not(None))  # type: ignore[union-attr]
        )).scalars().all()
    assert sorted(delivered) == sorted(f"x-{d.id}" for d in leased)


class _SlowFor:
    """Parses at once, except texts with `slow` in them, which take `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def parse(self, text: str) -> ParseResult:
        if "slow" in text:
            await asyncio.sleep(self.delay_s)
        return nlu_result("greet", 0.95, text)


async def _handled(db: Database, message_id: int, within_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        async with db.session() as session:
            message = await session.get(Message, message_id)
            if message is not None and message.handled_at is not None:
                return True
        await asyncio.sleep(0.02)
    return False


async def test_a_woken_worker_does_not_lease_again_for_nothing(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    worker = BotWorker(db, _SlowFor(0), content, router_config, owner="w1", idle_poll_s=5)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.1)  # its first look, at an empty inbox
        with _statements(db) as seen:
            recorded = await record_inbound(db, dm("hello there", sender="9321"))
            worker.wake()  # what the channel does after recording
            assert await _handled(db, recorded.message_id, within_s=5)
            await asyncio.sleep(0.3)
        leases = [s for s in seen if "UPDATE conversations SET lease_owner" in s and "candidate" in s]
        # The look that found the message, and one when its conversation finished (a message recorded
        # just as the lease was given back is found then, not at the idle poll).  Before: a third, right
        # after the first, because that lease had not filled the room.
        assert len(leases) == 2, leases
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_busy_worker_nobody_wakes_still_finds_new_conversations(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    """`frontdesk worker` beside the process that records: no wake, only its own looks."""
    worker = BotWorker(db, _SlowFor(0.3), content, router_config, owner="w1", idle_poll_s=30)
    first = await record_inbound(db, dm("slow one", sender="9331"))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.1)  # leased and in flight
        second = await record_inbound(db, dm("hello there", sender="9332"))  # no wake
        assert await _handled(db, first.message_id, within_s=5)
        # Well before the 30 s idle poll: a finished conversation makes the worker look again.
        assert await _handled(db, second.message_id, within_s=3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_page_of_dms_from_known_customers_is_three_statements_and_keeps_its_order(db: Database) -> None:
    """Ingest: a page's contacts (with any waiting public ticket) in one query, its conversations (with their
    open tickets) in another, and its messages in ONE multi-row INSERT, whatever the page's size (a repeat
    of a message costs the lookup of the stored one)."""
    from storage.actions import record_inbound_many

    senders = [str(9400 + n) for n in range(5)]
    for sender in senders:  # known customers, as most are
        await record_inbound(db, dm("hello", sender=sender))
    page = [dm(f"second message {n}", sender=sender) for n, sender in enumerate(senders)]
    page.append(page[1])  # X re-sends an event: the repeat is not recorded twice
    with _statements(db) as seen:
        results = await record_inbound_many(db, page)
    statements = [s for s in seen if not s.startswith(("BEGIN", "COMMIT"))]
    repeat_lookups = [s for s in statements if s.startswith("SELECT messages.id, messages.ticket_id")]
    assert len(statements) - len(repeat_lookups) == 3 and len(repeat_lookups) == 1, statements
    assert [r.is_new for r in results] == [True] * 5 + [False]
    assert results[5].message_id == results[1].message_id
    ids = [r.message_id for r in results[:5]]
    assert ids == sorted(ids)  # the page's order is the order the bot handles them in
    async with db.session() as session:
        texts = (await session.execute(select(Message.text).where(Message.id.in_(ids)).order_by(Message.id))).scalars()
        assert list(texts) == [f"second message {n}" for n in range(5)]
