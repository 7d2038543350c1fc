"""The listening stream in the store, on SQLite and PostgreSQL: items kept once per post, the agent's
actions (note, dismiss, ticket, reply) each one transaction with its audit events, replies only where X and
the person allow them, and the per-window counts a spike detector reads."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storage import listening
from storage.actions import listening as actions
from storage.agents import create_agent
from storage.db import Database
from storage.errors import InvalidTransition, NotAllowed
from storage.models import (
    Conversation,
    ConversationKind,
    ListeningEvent,
    ListeningItem,
    Message,
    OutboxItem,
    Ticket,
    TicketEvent,
    TicketStatus,
)

pytestmark = pytest.mark.usefixtures("fast_password_hashing")
_ids = itertools.count(900_000)
ROUTE = actions.TicketRoute(queue="support", priority="high", category="support")


def _item(text: str = "acme checkout is broken", *, rule: str = "brand", addressed: bool = False,
          dms: bool | None = None, posted_at: datetime | None = None, sentiment: str = "negative",
          post_id: str | None = None) -> actions.NewListeningItem:
    post = post_id or str(next(_ids))
    return actions.NewListeningItem(
        platform_post_id=post, conversation_ref=post, rule=rule, author_id="4242", author_handle="carol",
        author_name="Carol", author_accepts_dms=dms, text=text, posted_at=posted_at or datetime.now(UTC),
        category="support", intent="complaint", confidence=0.9, sentiment=sentiment, addressed_brand=addressed,
    )


async def _agent(db: Database) -> int:
    agent = await create_agent(db, name="Ada", email="ada@example.com", password="correct horse battery")
    return agent.id


async def _count(db: Database, model: type) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_a_post_is_stored_once_whatever_rule_finds_it_again(db: Database) -> None:
    first = _item(post_id="777")
    assert len(await actions.record_items(db, [first])) == 1
    again = _item(post_id="777", rule="checkout")
    assert await actions.record_items(db, [again, _item()]) != []
    assert await _count(db, ListeningItem) == 2
    [kept] = [i for i in await listening.list_items(db) if i.platform_post_id == "777"]
    assert kept.rule == "brand" and kept.status.value == "new"
    assert await listening.known_post_ids(db, ["777", "nope"]) == {"777"}


async def test_the_stream_filters_by_rule_category_and_sentiment_and_pages(db: Database) -> None:
    await actions.record_items(db, [_item(rule="brand") for _ in range(3)])
    await actions.record_items(db, [_item(rule="checkout", sentiment="positive") for _ in range(2)])
    assert len(await listening.list_items(db, listening.ListeningFilter(rule="checkout"))) == 2
    assert len(await listening.list_items(db, listening.ListeningFilter(sentiment="negative"))) == 3
    assert await listening.list_items(db, listening.ListeningFilter(category="sales")) == []
    first = await listening.list_items(db, limit=2)
    rest = await listening.list_items(db, before_id=first[-1].id, limit=10)
    assert len(first) == 2 and len(rest) == 3 and first[-1].id > rest[0].id
    assert await listening.count_by_rule(db) == {"brand": 3, "checkout": 2}


async def test_note_and_dismiss_are_audited(db: Database) -> None:
    agent_id = await _agent(db)
    [item_id] = await actions.record_items(db, [_item()])
    noted = await actions.note_item(db, item_id, agent_id, "third one this week")
    assert noted.status.value == "noted" and noted.note == "third one this week"
    dismissed = await actions.dismiss_item(db, item_id, agent_id)
    assert dismissed.status.value == "dismissed"
    assert [e.action for e in await listening.item_events(db, item_id)] == ["noted", "dismissed"]


async def test_opening_a_ticket_makes_the_thread_and_a_queued_ticket_the_bot_never_answers(db: Database) -> None:
    agent_id = await _agent(db)
    [item_id] = await actions.record_items(db, [_item()])
    ticket = await actions.open_ticket(db, item_id, agent_id, ROUTE)
    assert ticket.status == TicketStatus.queued and ticket.queue.value == "support"
    again = await actions.open_ticket(db, item_id, agent_id, ROUTE)
    assert again.id == ticket.id  # idempotent
    async with db.session() as session:
        message = (await session.execute(select(Message))).scalar_one()
        assert message.handled_at is not None and message.ticket_id == ticket.id
        assert message.summons_brand is False
        events = (await session.execute(select(TicketEvent.action).where(TicketEvent.ticket_id == ticket.id))).scalars()
        assert set(events) >= {"escalated", "opened_from_listening"}
    item = await listening.get_item(db, item_id)
    assert item is not None and item.status.value == "ticketed" and item.ticket_id == ticket.id
    with pytest.raises(InvalidTransition):
        await actions.dismiss_item(db, item_id, agent_id)
    assert await _count(db, OutboxItem) == 0  # nothing sent


async def test_a_public_reply_goes_under_a_post_that_addressed_the_brand(db: Database) -> None:
    agent_id = await _agent(db)
    [item_id] = await actions.record_items(db, [_item("@acme my card was charged twice", addressed=True)])
    message = await actions.reply_to_item(db, item_id, agent_id, "Sorry! We'll sort it out.", ROUTE)
    async with db.session() as session:
        row = (await session.execute(select(OutboxItem))).scalar_one()
        ticket = await session.get(Ticket, message.ticket_id)
    item = await listening.get_item(db, item_id)
    assert row.target == {"kind": "reply", "in_reply_to": item.platform_post_id}
    assert ticket.status == TicketStatus.assigned and ticket.assignee_id == agent_id


async def test_a_public_reply_to_a_post_that_did_not_address_the_brand_is_refused_with_the_reason(
    db: Database,
) -> None:
    agent_id = await _agent(db)
    [closed, open_, unknown] = await actions.record_items(
        db, [_item(dms=False), _item(dms=True), _item(dms=None)]
    )
    with pytest.raises(actions.ListeningReplyNotAllowed, match="mentions it or quotes") as refused:
        await actions.reply_to_item(db, closed, agent_id, "hello", ROUTE)
    assert refused.value.dm_offered is False and "does not accept DMs" in str(refused.value)
    with pytest.raises(actions.ListeningReplyNotAllowed) as offered:
        await actions.reply_to_item(db, open_, agent_id, "hello", ROUTE)
    assert offered.value.dm_offered is True and "answer by DM" in str(offered.value)
    with pytest.raises(actions.ListeningReplyNotAllowed, match="did not say") as dm_unknown:
        await actions.reply_to_item(db, unknown, agent_id, "hello", ROUTE, dm=True)
    assert dm_unknown.value.dm_offered is False
    with pytest.raises(actions.ListeningReplyNotAllowed, match="does not accept"):
        await actions.reply_to_item(db, closed, agent_id, "hello", ROUTE, dm=True)
    assert await _count(db, OutboxItem) == 0 and await _count(db, Ticket) == 0  # refused: nothing written


async def test_a_dm_goes_to_an_author_who_accepts_the_brands_dms(db: Database) -> None:
    agent_id = await _agent(db)
    [item_id] = await actions.record_items(db, [_item(dms=True)])
    message = await actions.reply_to_item(db, item_id, agent_id, "Can we help? Tell us your order number.",
                                          ROUTE, dm=True)
    async with db.session() as session:
        row = (await session.execute(select(OutboxItem))).scalar_one()
        conversation = await session.get(Conversation, message.conversation_id)
        events = (await session.execute(select(ListeningEvent.action))).scalars().all()
    assert row.target == {"kind": "dm", "recipient_id": "4242"}
    assert conversation.kind == ConversationKind.dm
    assert events == ["ticketed", "replied"]


async def test_a_disabled_agent_cannot_act(db: Database) -> None:
    from storage.agents import set_active

    agent_id = await _agent(db)
    [item_id] = await actions.record_items(db, [_item()])
    await set_active(db, "ada@example.com", False)
    with pytest.raises(NotAllowed):
        await actions.dismiss_item(db, item_id, agent_id)


async def test_counts_per_window_for_spike_detection(db: Database) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    posted = [now - 3.5 * hour, now - 1.5 * hour, now - 0.5 * hour, now - 0.2 * hour, now - 0.1 * hour]
    await actions.record_items(db, [_item(posted_at=t) for t in posted])
    await actions.record_items(db, [_item(rule="checkout", posted_at=now - 0.1 * hour)])
    assert await listening.counts_per_window(db, "brand", window=hour, windows=4, now=now) == [1, 0, 1, 3]
    assert await listening.counts_per_window(db, "brand", window=hour, windows=4, now=now,
                                             sentiment="positive") == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        await listening.counts_per_window(db, "brand", window=hour, windows=0, now=now)
