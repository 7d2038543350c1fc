"""The inbox worker against a real store (SQLite and PostgreSQL) and the session's real Rasa server:
order within a conversation, several workers at once, a failing message handed to a person.  A crash
half-way through a message (nothing applied, answered once on retry) is in test_bot_worker_fake_nlu.py."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.content import Content
from bot.router import RouterConfig
from bot.worker import BotWorker
from nlu.client import NLUClient
from storage.actions import record_inbound
from storage.db import Database
from storage.models import Conversation, Message, OutboxItem
from tests.store_helpers import dm

pytestmark = [pytest.mark.rasa]


def _worker(db: Database, nlu: NLUClient, content: Content, config: RouterConfig, owner: str = "w1") -> BotWorker:
    return BotWorker(db, nlu, content, config, owner=owner, idle_poll_s=0.05)


async def _outbox_texts(db: Database, conversation_id: int) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(
            select(OutboxItem.text).where(OutboxItem.conversation_id == conversation_id).order_by(OutboxItem.id)
        )
        return list(rows.scalars().all())


async def test_one_conversation_is_answered_in_order(
    db: Database, nlu_client: NLUClient, content: Content, router_config: RouterConfig
) -> None:
    texts = ["hello there", "where is my package, it is late", "thanks"]
    recorded = [await record_inbound(db, dm(t, sender="501")) for t in texts]
    await _worker(db, nlu_client, content, router_config).drain()
    answers = await _outbox_texts(db, recorded[0].conversation_id)
    assert len(answers) == 3
    assert "Frontdesk assistant" in answers[0]
    assert "shop.example.com/orders" in answers[1]
    assert "welcome" in answers[2].lower()


async def test_two_workers_share_the_inbox_without_double_answers(
    db: Database, nlu_client: NLUClient, content: Content, router_config: RouterConfig
) -> None:
    conversations = []
    for i in range(6):
        first = await record_inbound(db, dm("hello", sender=f"6{i:02d}"))
        await record_inbound(db, dm("where is my package, it is late", sender=f"6{i:02d}"))
        conversations.append(first.conversation_id)
    workers = [_worker(db, nlu_client, content, router_config, owner=f"w{i}") for i in range(2)]
    await asyncio.gather(*(w.drain() for w in workers))
    for conversation_id in conversations:
        answers = await _outbox_texts(db, conversation_id)
        assert len(answers) == 2, answers
        assert "Frontdesk assistant" in answers[0] and "shop.example.com/orders" in answers[1]
    assert sum(w.stats.handled for w in workers) == 12


async def test_a_message_that_keeps_failing_goes_to_a_person_and_unblocks_its_conversation(
    db: Database, nlu_client: NLUClient, content: Content, router_config: RouterConfig
) -> None:
    from dataclasses import replace

    from bot.content import FAQEntry
    from storage.models import Direction, Ticket

    # Content edited in a hurry: an answer no store accepts (a NUL character), so every attempt fails.
    broken = replace(content, faq=tuple(
        FAQEntry(e.key, e.intents, e.keywords, "oops\x00") if e.key == "order-tracking" else e for e in content.faq
    ))
    first = await record_inbound(db, dm("where is my package, it is late", sender="701"))
    await record_inbound(db, dm("hello there", sender="701"))
    worker = _worker(db, nlu_client, broken, router_config)
    await worker.drain()
    async with db.session() as session:
        ticket = (await session.execute(select(Ticket).where(Ticket.conversation_id == first.conversation_id))).scalar_one()
        unhandled = (await session.execute(
            select(Message.id).where(
                Message.conversation_id == first.conversation_id,
                Message.direction == Direction.inbound,
                Message.handled_at.is_(None),  # type: ignore[union-attr]
            )
        )).scalars().all()
    assert ticket.queue.value == "general" and ticket.data["reason"].startswith("bot error")
    assert unhandled == []  # the next message was handled too: the conversation is not stuck


class _RecordsDuringParse:
    """A customer who writes again while the bot is still thinking about their first message."""

    def __init__(self, nlu: NLUClient, db: Database, follow_up: object) -> None:
        self.nlu, self.db, self.follow_up = nlu, db, follow_up
        self.done = False

    async def parse(self, text: str):  # type: ignore[no-untyped-def]
        if not self.done:
            self.done = True
            await record_inbound(self.db, self.follow_up)  # type: ignore[arg-type]
        return await self.nlu.parse(text)


async def test_a_message_arriving_mid_conversation_is_answered_in_order_and_the_lease_is_given_back(
    db: Database, nlu_client: NLUClient, content: Content, router_config: RouterConfig
) -> None:
    first = await record_inbound(db, dm("hello there", sender="551"))
    parser = _RecordsDuringParse(nlu_client, db, dm("where is my package, it is late", sender="551"))
    worker = BotWorker(db, parser, content, router_config, owner="w1", idle_poll_s=0.05)
    assert await worker.run_once() == 1  # one lease covered both messages
    answers = await _outbox_texts(db, first.conversation_id)
    assert len(answers) == 2
    assert "Frontdesk assistant" in answers[0] and "shop.example.com/orders" in answers[1]
    async with db.session() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None and conversation.lease_owner is None
        intents = (await session.execute(
            select(Message.intent).where(Message.conversation_id == first.conversation_id, Message.intent.is_not(None))
        )).scalars().all()
    assert len(intents) == 2
