"""The inbox against a brand's history (SQLite and PostgreSQL).

The worker leases "conversations with a waiting message" on every wake.  Before migration 0018 both stores
read every conversation the brand ever had to find them (100,000 past conversations: 19 ms per lease on
PostgreSQL, 36 ms on SQLite, growing with the history; bench/inbox_history.py).  Now the lease starts from
the waiting messages' own index, and outbound messages are stored handled so that PostgreSQL's planner
knows how few messages wait.
"""

from __future__ import annotations

from sqlalchemy import select

from bench.inbox_history import lease_plan, seed_conversations
from storage import actions, inbox
from storage.agents import create_agent
from storage.db import Database
from storage.models import Direction, Message
from tests.store_helpers import dm

PAST = 5_000  # enough that reading them all is the planner's worst choice, quick to write in a test


async def test_a_lease_reads_the_waiting_conversations_not_the_whole_history(db: Database) -> None:
    await seed_conversations(db, prefix="past", count=PAST, waiting=False)
    await seed_conversations(db, prefix="now", count=3, waiting=True)

    plan = "\n".join(await lease_plan(db))
    assert "ix_messages_waiting" in plan, plan
    if db.dialect == "postgresql":
        assert "Seq Scan on conversations" not in plan, plan
    else:
        assert "SCAN candidate" not in plan and "SCAN conversations" not in plan, plan

    leased = await inbox.lease_conversations_with_messages(db, "w1", limit=20)
    assert len(leased) == 3 and all(len(waiting) == 1 for waiting in leased.values())


async def test_only_waiting_inbound_messages_are_unhandled(db: Database) -> None:
    """What the bot and the agents write is stored handled: the inbox (and its index) holds only what waits."""
    ada = await create_agent(db, email="ada@brand.example", name="Ada", password="correct horse", role="agent")
    first = await actions.record_inbound(db, dm("my parcel is lost", sender="7001"))
    ticket = await actions.escalate(db, first.conversation_id, queue="support", category="support",
                                    subject="lost parcel", notice_text="A person will reply here soon.")
    await actions.claim(db, ticket.id, ada.id)
    await actions.agent_reply(db, ticket.id, ada.id, "So sorry, a new one is on its way.")
    await actions.add_note(db, ticket.id, ada.id, "sent a replacement")
    waiting = await actions.record_inbound(db, dm("thanks, and the invoice?", sender="7001"))

    async with db.session() as session:
        rows = (await session.execute(select(Message.id, Message.direction, Message.handled_at))).all()
    outbound = [r for r in rows if r.direction == Direction.outbound]
    assert len(outbound) == 3  # the bot's notice, the agent's reply, the note
    assert all(r.handled_at is not None for r in outbound), rows
    unhandled = {r.id for r in rows if r.handled_at is None}
    assert unhandled == {first.message_id, waiting.message_id}
