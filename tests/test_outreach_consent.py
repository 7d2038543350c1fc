"""Consent to announcements through the real clients: "keep me posted" and "stop" on X (DM and a public
post, real tweepy against the emulator) and Telegram (real python-telegram-bot against its emulator),
decided before the NLU, confirmed once; and the router's rule as data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot.channels.x import XSender
from bot.content import Content, load_content
from bot.outbox import OutboxLoop
from bot.router import OptIn, OptOut, RouterConfig, route
from bot.worker import BotWorker
from nlu.client import ParseResult
from sandbox.server import RunningSandbox
from storage.actions import claim, escalate
from storage.agents import create_agent
from storage.db import Database
from storage.models import Channel, Contact, Queue
from storage.outreach import opted_out
from tests.fixtures.bot import dated_content_dir, incoming, nlu_result
from tests.fixtures.telegram_channel import TelegramHarness
from tests.fixtures.x_channel import conversation_of, ingest

OPTED_OUT = "Done: you won't get any more announcements from us."
OPTED_IN = "Thanks! We'll keep you posted"


class NoNLU:
    """Consent words are decided before the NLU: this parser counts the calls it should never get."""

    def __init__(self) -> None:
        self.calls = 0

    async def parse(self, text: str) -> ParseResult:
        self.calls += 1
        intent = "event_registration" if "register" in text.lower() else "greet"
        return nlu_result(intent, 0.95, text)


@pytest.fixture
def content(tmp_path: Path) -> Content:
    return load_content(dated_content_dir(tmp_path / "content"))


def _worker(db: Database, content: Content, nlu: NoNLU) -> BotWorker:
    return BotWorker(db, nlu, content, RouterConfig(), owner="consent", idle_poll_s=0.05)


async def _contact_of(db: Database, platform_user_id: str) -> Contact:
    from sqlalchemy import select

    async with db.session() as session:
        return (await session.execute(select(Contact).where(Contact.platform_user_id == platform_user_id))).scalar_one()


# --- X ---------------------------------------------------------------------------------------------------------
async def test_on_x_dm_keep_me_posted_then_stop_each_confirmed_once_without_the_nlu(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, content: Content
) -> None:
    brand = x_sandbox.x.brand.id
    nlu = NoNLU()
    worker = _worker(db, content, nlu)
    outbox = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="consent-outbox", idle_s=0.05)

    first = (await x_control.dm("olga", "Keep me posted!"))["id"]
    await ingest(db, x_client, brand)
    await worker.drain()
    await outbox.run_once()
    contact_id = (await _contact_of(db, (await x_control.users())["users"][-1]["id"])).id
    assert not await opted_out(db, contact_id)

    for text in ("STOP", "stop"):  # the second stop changes nothing and is not confirmed again
        await x_control.dm("olga", text)
        await ingest(db, x_client, brand)
        await worker.drain()
        await outbox.run_once()
    assert nlu.calls == 0
    assert await opted_out(db, contact_id)
    dms = [d["text"] for d in (await x_control.sent())["dms"] if d["recipient"] == "olga"]
    assert len(dms) == 2 and dms[0].startswith(OPTED_IN) and dms[1].startswith(OPTED_OUT)
    assert await conversation_of(db, first)  # the conversation exists: the answers went where she wrote


async def test_on_x_a_public_stop_opts_out_with_a_public_confirmation(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, content: Content
) -> None:
    brand = x_sandbox.x.brand.id
    worker = _worker(db, content, NoNLU())
    outbox = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="consent-outbox", idle_s=0.05)
    await x_control.mention("pia", "@frontdesk unsubscribe")
    await ingest(db, x_client, brand)
    await worker.drain()
    await outbox.run_once()
    tweets = (await x_control.sent())["tweets"]
    assert len(tweets) == 1 and "pia" in tweets[0]["text"] and "announcements" in tweets[0]["text"]
    users = {u["username"]: u["id"] for u in (await x_control.users())["users"]}
    assert await opted_out(db, (await _contact_of(db, users["pia"])).id)


async def test_while_an_agent_holds_the_conversation_stop_is_recorded_and_the_bot_stays_silent(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, content: Content, fast_password_hashing: None
) -> None:
    brand = x_sandbox.x.brand.id
    dm = (await x_control.dm("quinn", "my order is late"))["id"]
    await ingest(db, x_client, brand)
    agent = await create_agent(db, email="ann@example.com", name="Ann", password="correct horse")
    ticket = await escalate(db, await conversation_of(db, dm), queue=Queue.support)
    await claim(db, ticket.id, agent.id)
    worker = _worker(db, content, NoNLU())
    await x_control.dm("quinn", "stop")
    await ingest(db, x_client, brand)
    await worker.drain()
    outbox = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="consent-outbox", idle_s=0.05)
    await outbox.run_once()
    assert (await x_control.sent())["dms"] == []
    users = {u["username"]: u["id"] for u in (await x_control.users())["users"]}
    assert await opted_out(db, (await _contact_of(db, users["quinn"])).id)


async def test_registering_for_an_event_is_an_opt_in(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, content: Content
) -> None:
    brand = x_sandbox.x.brand.id
    worker = _worker(db, content, NoNLU())
    await x_control.dm("rosa", "please register me for the Frontdesk user meetup Berlin")
    await ingest(db, x_client, brand)
    await worker.drain()
    from sqlalchemy import select

    from storage.outreach import opted_in_clause

    users = {u["username"]: u["id"] for u in (await x_control.users())["users"]}
    async with db.session() as session:
        found = (await session.execute(select(Contact.id).where(Contact.platform_user_id == users["rosa"],
                                                                opted_in_clause()))).first()
    assert found is not None


# --- Telegram --------------------------------------------------------------------------------------------------
async def test_on_telegram_unsubscribe_opts_out_and_is_confirmed_once(tg: TelegramHarness, content: Content) -> None:
    worker = _worker(tg.db, content, NoNLU())
    first = await tg.control.message(4343, "subscribe", username="tina")
    await tg.customer_message(f"4343:{first['message_id']}")
    await worker.drain()
    second = await tg.control.message(4343, "Unsubscribe please", username="tina")
    await tg.customer_message(f"4343:{second['message_id']}")
    await worker.drain()
    third = await tg.control.message(4343, "unsubscribe", username="tina")
    await tg.customer_message(f"4343:{third['message_id']}")
    await worker.drain()

    async def replies() -> list[str]:
        return [m["text"] for m in await tg.messages_in(4343)]

    from tests.fixtures.bot import eventually

    await eventually(lambda: _at_least(replies, 2), what="the two confirmations")
    said = await replies()
    assert len(said) == 2 and said[0].startswith(OPTED_IN) and said[1].startswith(OPTED_OUT)
    assert await opted_out(tg.db, (await _contact_of(tg.db, "4343")).id)


async def _at_least(probe: Any, n: int) -> Any:
    found = await probe()
    return found if len(found) >= n else None


# --- the rule, as data -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "effect"),
    [("stop", OptOut), ("Unsubscribe me from these", OptOut), ("@frontdesk STOP", OptOut),
     ("keep me posted about the launch", OptIn), ("subscribe", OptIn)],
)
def test_consent_words_decide_before_anything_else(content: Content, text: str, effect: type) -> None:
    msg = incoming(text, status="queued", nlu_error="not asked")  # no NLU result: the rule needs none
    decision = route(msg, content, RouterConfig())
    assert [type(e) for e in decision.effects] == [effect] and decision.effects[0].confirm


@pytest.mark.parametrize("text", ["please stop charging me twice", "I want to subscribe to the premium plan",
                                  "how do I stop the app from crashing"])
def test_stop_inside_a_request_is_not_an_opt_out(content: Content, text: str) -> None:
    msg = incoming(text, "complaint", 0.95)
    assert not [e for e in route(msg, content, RouterConfig()).effects if isinstance(e, (OptIn, OptOut))]


def test_a_stranger_in_a_customers_thread_opts_nobody_out(content: Content) -> None:
    msg = dataclasses.replace(incoming("stop", kind="public", nlu_error="not asked"), from_third_party=True)
    assert route(msg, content, RouterConfig()).effects == []


def test_while_an_agent_holds_it_the_opt_out_is_not_confirmed(content: Content) -> None:
    decision = route(incoming("stop", status="agent", nlu_error="not asked"), content, RouterConfig())
    assert [(type(e), e.confirm) for e in decision.effects] == [(OptOut, False)]
