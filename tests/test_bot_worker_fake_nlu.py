"""The inbox worker's mechanics with a fake parser (no Rasa): one transaction per message, store outcomes.

The worker takes any `Parser`; these tests give it a keyword table, so what they check is the worker and
the store (SQLite and PostgreSQL), not the model.  tests/test_bot_worker.py runs the same loop on real Rasa.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import effects
from bot.content import Content, load_content
from bot.router import RouterConfig, UpdateState
from bot.worker import BotWorker
from nlu.client import ParseResult
from storage.actions import record_inbound
from storage.actions.registrations import RegistrationOutcome, register
from storage.db import Database
from storage.models import Direction, EventRegistration, Message, OutboxItem
from tests.fixtures.bot import dated_content_dir, nlu_result
from tests.store_helpers import dm, mention

_INTENTS = (("register", "event_registration"), ("package", "order_problem"), ("hello", "greet"),
            ("person", "ask_human"))


class KeywordParser:
    """Stands in for the NLU: the first keyword found decides the intent."""

    def __init__(self) -> None:
        self.calls = 0

    async def parse(self, text: str) -> ParseResult:
        self.calls += 1
        intent = next((i for word, i in _INTENTS if word in text.lower()), "out_of_scope")
        return nlu_result(intent, 0.95, text)


@pytest.fixture
def dated_content(tmp_path: Path) -> Content:
    """The shipped catalogue with its events moved a week ahead of today, so they can be registered for."""
    return load_content(dated_content_dir(tmp_path / "content"))


def _worker(db: Database, content: Content, config: RouterConfig, owner: str = "w1") -> BotWorker:
    return BotWorker(db, KeywordParser(), content, config, owner=owner, idle_poll_s=0.05)


async def _answers(db: Database, conversation_id: int) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(
            select(OutboxItem.text).where(OutboxItem.conversation_id == conversation_id).order_by(OutboxItem.id)
        )
        return list(rows.scalars().all())


async def _unhandled(db: Database) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(Message).where(
            Message.direction == Direction.inbound, Message.handled_at.is_(None)  # type: ignore[union-attr]
        )
        return int((await session.execute(query)).scalar_one())


async def test_messages_are_answered_in_order_without_rasa(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    texts = ["hello there", "where is my package, it is late", "hello again"]
    recorded = [await record_inbound(db, dm(t, sender="801")) for t in texts]
    await _worker(db, content, router_config).drain()
    answers = await _answers(db, recorded[0].conversation_id)
    assert len(answers) == 3
    assert "shop.example.com/orders" in answers[1]
    assert await _unhandled(db) == 0


async def test_a_crash_half_way_applies_nothing_and_the_retry_answers_once(
    db: Database, content: Content, router_config: RouterConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is queued in the session, then the process fails before the commit: all of it rolls back."""
    recorded = await record_inbound(db, dm("where is my package, it is late", sender="802"))
    real = effects._APPLIERS[UpdateState]
    crashes = []

    async def crash_after_the_answer(*args: object) -> None:
        crashes.append(1)
        raise ConnectionResetError("the store went away mid-transaction")

    monkeypatch.setitem(effects._APPLIERS, UpdateState, crash_after_the_answer)
    first = _worker(db, content, router_config)
    assert await first.run_once() == 1
    assert crashes and first.stats.errors == 1
    assert await _answers(db, recorded.conversation_id) == []  # the queued answer went with the rollback
    assert await _unhandled(db) == 1

    monkeypatch.setitem(effects._APPLIERS, UpdateState, real)
    await _worker(db, content, router_config, owner="w2").drain()
    answers = await _answers(db, recorded.conversation_id)
    assert len(answers) == 1 and "shop.example.com/orders" in answers[0]
    assert await _unhandled(db) == 0


async def test_registration_outcomes_come_from_the_store(
    db: Database, dated_content: Content, router_config: RouterConfig
) -> None:
    [workshop] = [e for e in dated_content.events if e.key.startswith("workshop-automation")]
    worker = _worker(db, dated_content, router_config)
    first = await record_inbound(db, dm(f"register me for the {workshop.name}", sender="803"))
    await worker.drain()
    await record_inbound(db, dm(f"register me for the {workshop.name} please", sender="803"))
    await worker.drain()
    new, again = await _answers(db, first.conversation_id)
    assert "you're registered" in new and "already registered" in again
    async with db.session() as session:
        count = await session.execute(select(func.count()).select_from(EventRegistration))
        assert count.scalar_one() == 1


async def test_the_last_seats_are_never_overbooked_by_concurrent_registrations(db: Database) -> None:
    contacts = [(await record_inbound(db, dm("hi", sender=f"9{i:02d}"))).contact_id for i in range(12)]
    outcomes = await asyncio.gather(*(register(db, c, "tiny-workshop", capacity=3) for c in contacts))
    assert sorted(o.value for o in outcomes) == ["full"] * 9 + ["registered"] * 3
    again = await register(db, contacts[outcomes.index(RegistrationOutcome.registered)], "tiny-workshop", capacity=3)
    assert again is RegistrationOutcome.already  # a registered customer asking again is not "full"
    async with db.session() as session:
        taken = await session.execute(
            select(func.count()).select_from(EventRegistration).where(EventRegistration.event_key == "tiny-workshop")
        )
        assert taken.scalar_one() == 3


async def test_a_stranger_in_a_customers_public_thread_does_not_drive_the_bot_for_them(
    db: Database, dated_content: Content, router_config: RouterConfig
) -> None:
    """'register me' from someone else in Anna's thread must not register Anna, nor answer the stranger."""
    [workshop] = [e for e in dated_content.events if e.key.startswith("workshop-automation")]
    anna = await record_inbound(db, mention("@brand hello there", sender="1001", handle="anna"))
    await _worker(db, dated_content, router_config).drain()
    answered = len(await _answers(db, anna.conversation_id))
    stranger = await record_inbound(db, mention(
        f"@brand this is Anna, register me for the {workshop.name}", sender="1002", handle="mallory",
        thread=await _thread_of(db, anna.conversation_id),
    ))
    assert stranger.conversation_id == anna.conversation_id
    await _worker(db, dated_content, router_config).drain()
    assert len(await _answers(db, anna.conversation_id)) == answered  # nothing said on Anna's behalf
    assert await _unhandled(db) == 0
    async with db.session() as session:
        registrations = await session.execute(select(func.count()).select_from(EventRegistration))
        assert registrations.scalar_one() == 0


async def _thread_of(db: Database, conversation_id: int) -> str:
    from storage.models import Conversation

    async with db.session() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.platform_ref


async def test_an_escalation_wakes_the_assigner_once_committed(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    """The worker tells the assigner (bot/assigner.py) right after a decision that opened a ticket commits."""
    from storage.models import Ticket

    wakes: list[bool] = []
    worker = BotWorker(db, KeywordParser(), content, router_config, owner="w1", idle_poll_s=0.05,
                       on_escalated=lambda: wakes.append(True))
    await record_inbound(db, dm("hello there", sender="811"))
    await worker.drain()
    assert wakes == []  # answered by the bot: nothing to assign
    await record_inbound(db, dm("I want to talk to a person", sender="812"))
    await worker.drain()
    assert wakes == [True]
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar_one() == 1
