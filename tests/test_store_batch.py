"""The store functions the bot pipeline uses to do more per commit, on SQLite and PostgreSQL:
a poller's page recorded in one transaction, and a decision's effects applied in one."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage import actions
from storage.db import Database
from storage.errors import InvalidText
from storage.models import Conversation, ConversationStatus, Message, OutboxItem, TicketEvent
from tests.store_helpers import dm, mention


async def _count(db: Database, model: type) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_a_page_is_recorded_in_order_and_lines_up_with_its_results(db: Database) -> None:
    page = [dm("hi", sender="701"), dm("order late", sender="702"), dm("and again", sender="701")]
    results = await actions.record_inbound_many(db, page)
    assert [r.is_new for r in results] == [True, True, True]
    assert results[0].conversation_id == results[2].conversation_id != results[1].conversation_id
    async with db.session() as s:
        texts = (await s.execute(select(Message.text).order_by(Message.id))).scalars().all()
    assert texts == ["hi", "order late", "and again"]


async def test_the_recorders_largest_page_is_recorded_whole_and_in_order(db: Database) -> None:
    """200 DMs (the recorder's largest batch; several INSERTs of at most 50 rows) from 70 people, with the
    same event twice across two of those INSERTs: every message once, in page order."""
    page = [dm(f"message {n}", sender=str(7200 + n % 70), msg_id=f"dm-72-{n}") for n in range(200)]
    page[120] = page[10]  # X sends an event again, 110 places later
    results = await actions.record_inbound_many(db, page)
    assert sum(r.is_new for r in results) == 199
    assert results[120].message_id == results[10].message_id and not results[120].is_new
    async with db.session() as s:
        texts = (await s.execute(select(Message.text).order_by(Message.id))).scalars().all()
    assert texts == [f"message {n}" for n in range(200) if n != 120]
    assert len({r.conversation_id for r in results}) == 70


async def test_a_page_deduplicates_like_one_at_a_time(db: Database) -> None:
    earlier = await actions.record_inbound(db, dm("seen before", sender="711", msg_id="dm-711-1"))
    page = [
        dm("seen before", sender="711", msg_id="dm-711-1"),
        dm("new", sender="711", msg_id="dm-711-2"),
        dm("new", sender="711", msg_id="dm-711-2"),  # the same event twice in one page
    ]
    results = await actions.record_inbound_many(db, page)
    assert [r.is_new for r in results] == [False, True, False]
    assert results[0].message_id == earlier.message_id
    assert results[2].message_id == results[1].message_id
    assert await _count(db, Message) == 2
    assert await actions.record_inbound_many(db, []) == []


async def test_a_bad_text_in_a_page_records_nothing(db: Database) -> None:
    with pytest.raises(InvalidText):
        await actions.record_inbound_many(db, [dm("fine", sender="721"), dm("x" * 200_000, sender="722")])
    assert await _count(db, Message) == 0


async def test_a_decision_applied_in_one_transaction_is_all_or_nothing(db: Database) -> None:
    recorded = await actions.record_inbound(db, dm("where is my order", sender="731"))

    async def apply(session) -> None:  # type: ignore[no-untyped-def]
        await actions.record_nlu_result_in(
            session, recorded.message_id, intent="order_status", confidence=0.9, category="support"
        )
        await actions.bot_reply_in(
            session, recorded.conversation_id, "Track it here", idempotency_key=f"answer:{recorded.message_id}"
        )
        await actions.update_bot_state_in(session, recorded.conversation_id, {"last_message_id": recorded.message_id})
        await actions.mark_handled_in(session, recorded.message_id)

    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await apply(session)
            raise RuntimeError("the worker died before the commit")
    async with db.session() as s:
        message = await s.get(Message, recorded.message_id)
        conversation = await s.get(Conversation, recorded.conversation_id)
        assert message is not None and conversation is not None
        assert (message.intent, message.handled_at, conversation.bot_state) == (None, None, {})
    assert await _count(db, OutboxItem) == 0

    async with db.transaction() as session:
        await apply(session)
    async with db.transaction() as session:  # a retry: the answer key keeps it to one reply
        assert await actions.bot_reply_in(
            session, recorded.conversation_id, "Track it here", idempotency_key=f"answer:{recorded.message_id}"
        ) is None
    async with db.session() as s:
        message = await s.get(Message, recorded.message_id)
        assert message is not None and message.intent == "order_status" and message.handled_at is not None
    assert await _count(db, OutboxItem) == 1


async def test_an_escalation_inside_a_transaction_keeps_its_audit_event_and_notice(db: Database) -> None:
    recorded = await actions.record_inbound(db, dm("I want a refund", sender="741"))
    async with db.transaction() as session:
        ticket = await actions.escalate_in(
            session, recorded.conversation_id, queue="general", reason="refund asked", notice_text="A person will help"
        )
        await actions.mark_handled_in(session, recorded.message_id)
    async with db.session() as s:
        events = (await s.execute(select(TicketEvent.action).where(TicketEvent.ticket_id == ticket.id))).scalars().all()
        conversation = await s.get(Conversation, recorded.conversation_id)
        assert conversation is not None and conversation.status == ConversationStatus.queued
    assert list(events) == ["escalated"]
    assert await _count(db, OutboxItem) == 1


async def test_several_deliveries_are_marked_sent_in_one_commit(db: Database) -> None:
    from storage.outbox import lease_due, mark_sent_many

    for i in range(3):
        recorded = await actions.record_inbound(db, dm("hello", sender=f"75{i}"))
        await actions.bot_reply(db, recorded.conversation_id, f"hi {i}", idempotency_key=f"answer:{recorded.message_id}")
    leased = await lease_due(db, "sender-1")
    assert len(leased) == 3
    await mark_sent_many(db, [(d.id, f"x-{d.id}") for d in leased[:2]])
    await mark_sent_many(db, [(leased[0].id, "x-other")])  # already sent: left alone
    async with db.session() as s:
        rows = {r.id: r for r in (await s.execute(select(OutboxItem))).scalars().all()}
        delivered = (await s.execute(select(Message.platform_message_id).where(Message.delivered_at.is_not(None)))).scalars().all()
    assert [rows[d.id].status.value for d in leased] == ["sent", "sent", "sending"]
    assert rows[leased[0].id].platform_message_id == f"x-{leased[0].id}"
    assert sorted(delivered) == sorted(f"x-{d.id}" for d in leased[:2])


async def test_a_page_follows_tickets_like_one_at_a_time(db: Database) -> None:
    """The page path looks tickets up once per page: a public complaint's ticket still follows its
    customer into the DM, a waiting DM's message lands on its ticket, and a resolved DM starts afresh."""
    public = await actions.record_inbound(db, mention("@brand you lost my parcel", sender="741"))
    complaint = await actions.escalate(db, public.conversation_id, queue="support", subject="lost parcel")
    waiting = await actions.record_inbound(db, dm("I want a human", sender="742"))
    queued = await actions.escalate(db, waiting.conversation_id, queue="general", subject="human")
    done = await actions.record_inbound(db, dm("thanks", sender="743"))
    closed = await actions.escalate(db, done.conversation_id, queue="general", subject="x")
    agent = await _agent(db)
    await actions.claim(db, closed.id, agent)
    await actions.resolve(db, closed.id, agent_id=agent)

    page = [dm("here are my details", sender="741"), dm("hello?", sender="742"), dm("new question", sender="743"),
            dm("and another", sender="741")]
    results = await actions.record_inbound_many(db, page)

    assert results[0].moved_ticket_id == complaint.id and results[0].ticket_id == complaint.id
    assert results[3].ticket_id == complaint.id  # later in the same page: the moved ticket is the DM's now
    assert results[1].ticket_id == queued.id
    assert results[2].ticket_id is None
    async with db.session() as s:
        statuses = {
            c.platform_ref: c.status
            for c in (await s.execute(select(Conversation).where(Conversation.kind == "dm"))).scalars()
        }
    assert statuses == {"741": ConversationStatus.queued, "742": ConversationStatus.queued,
                        "743": ConversationStatus.bot}


async def test_a_message_recorded_as_its_conversation_is_escalated_joins_the_ticket(db: Database) -> None:
    """Recording does not lock the conversation, so a message can miss the escalation that commits beside
    it; `attach_to_open_ticket_in` (called by the router for such a message) puts it on the ticket."""
    first = await actions.record_inbound(db, dm("my order is late", sender="751"))
    late = await actions.record_inbound(db, dm("still waiting", sender="751"))
    async with db.transaction() as session:  # the race: the message commits without a ticket
        ticket = await actions.escalate_in(session, first.conversation_id, queue="support", subject="late")
        await session.execute(
            Message.__table__.update().where(Message.id == late.message_id).values(ticket_id=None)  # type: ignore[attr-defined]
        )
    async with db.transaction() as session:
        await actions.attach_to_open_ticket_in(session, late.message_id, late.conversation_id)
    async with db.session() as s:
        assert (await s.get(Message, late.message_id)).ticket_id == ticket.id  # type: ignore[union-attr]


async def _agent(db: Database) -> int:
    from storage.agents import create_agent

    agent = await create_agent(db, email="batch@example.com", name="Batch Agent", password="correct horse battery")
    assert agent.id is not None
    return agent.id
