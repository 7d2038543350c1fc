"""Public replies on X as the real X allows them, end to end (issue 21).

The whole bot in-process (`tests.fixtures.bot.bot`: X channel through the real tweepy AsyncClient, router,
outbox) against the X emulator, the session's real Rasa and both stores.  The emulator refuses what X refuses
(sandbox/x/state.py cites X's rules): a reply under a post that did not summon the brand, a reply to a deleted
post.  Frontdesk must never try the first, must fail the second for good with the reason on the ticket, must
not answer an edited post twice, and must give a public thread at most one bot reply per ticket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from tweepy.asynchronous import AsyncClient

from bot.channels.x.client import close_x_client, make_x_client
from storage.actions import agent_reply, claim
from storage.agents import create_agent
from storage.errors import PublicReplyNotAllowed
from storage.models import (
    Contact,
    Direction,
    Message,
    OutboxItem,
    OutboxStatus,
    Ticket,
    TicketEvent,
)
from tests.fixtures.bot import BotHarness, eventually
from tests.fixtures.sandbox import sandbox_settings

pytestmark = [pytest.mark.rasa]


@pytest.fixture
async def brand_client(bot: BotHarness) -> AsyncIterator[AsyncClient]:
    """The brand account's own tweepy client (to post something customers can reply to)."""
    client = make_x_client(sandbox_settings(bot.sandbox_url))
    try:
        yield client
    finally:
        await close_x_client(client)


async def _post(bot: BotHarness, **body: Any) -> dict[str, Any]:
    response = await bot.http.post(f"{bot.sandbox_url}/_sandbox/mentions", json=body)
    assert response.status_code == 201, response.text
    bot.running.channel.poke()
    return response.json()


async def _ticket_of(bot: BotHarness, username: str) -> Ticket:
    async def probe() -> Ticket | None:
        async with bot.db.session() as session:
            return (
                await session.execute(
                    select(Ticket).join(Contact, Contact.id == Ticket.contact_id).where(Contact.handle == username)
                )
            ).scalars().first()

    return await eventually(probe, what=f"a ticket for {username}")


async def _events(bot: BotHarness, ticket_id: int) -> list[TicketEvent]:
    async with bot.db.session() as session:
        rows = await session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id))
        return list(rows.scalars().all())


async def _replies_under(bot: BotHarness, tweet_ids: set[str]) -> list[dict[str, Any]]:
    return [t for t in (await bot.sent())["tweets"] if t["in_reply_to_tweet_id"] in tweet_ids]


async def _inbound_of(bot: BotHarness, username: str) -> list[Message]:
    async with bot.db.session() as session:
        rows = await session.execute(
            select(Message).join(Contact, Contact.id == Message.contact_id)
            .where(Contact.handle == username, Message.direction == Direction.inbound).order_by(Message.id)
        )
        return list(rows.scalars().all())


async def _all_handled(bot: BotHarness, username: str, count: int) -> bool:
    messages = await _inbound_of(bot, username)
    return len(messages) >= count and all(m.handled_at is not None for m in messages)


async def _outbox(bot: BotHarness) -> list[OutboxItem]:
    async with bot.db.session() as session:
        return list((await session.execute(select(OutboxItem).order_by(OutboxItem.id))).scalars().all())


# --- 1. replies X forbids --------------------------------------------------------------------------------------
async def test_a_post_that_does_not_summon_the_brand_gets_no_public_reply_and_the_desk_says_why(
    bot: BotHarness, brand_client: AsyncClient
) -> None:
    announcement = await brand_client.create_tweet(text="Our spring sale starts today", user_auth=True)
    # Nora answers the brand's post with @frontdesk unticked: it reaches the brand, but X takes no reply under it.
    post = await _post(
        bot, author="nora", text="my order AB-1 never arrived, this is unacceptable",
        in_reply_to=str(announcement.data["id"]), mention_brand=False,
    )
    ticket = await _ticket_of(bot, "nora")
    await eventually(lambda: _all_handled(bot, "nora", 1), what="nora's post handled")
    [stored] = await _inbound_of(bot, "nora")
    assert stored.summons_brand is False
    withheld = [e for e in await _events(bot, ticket.id) if e.action == "public_reply_withheld"]
    assert withheld and "@mentions it or quotes one of its posts" in withheld[0].detail["reason"]
    # Nothing was tried: no reply under her post, no outbox row failing against X.
    assert await _replies_under(bot, {post["id"]}) == []
    assert [r for r in await _outbox(bot) if r.status == OutboxStatus.failed] == []

    # An agent who tries gets the reason at once, not a failure later.
    agent = await create_agent(bot.db, name="Ada", email="ada@example.com", password="correct horse battery")
    await claim(bot.db, ticket.id, agent.id)
    with pytest.raises(PublicReplyNotAllowed, match="X lets the brand reply only under a post that @mentions it"):
        await agent_reply(bot.db, ticket.id, agent.id, "Sorry to hear that, Nora")
    assert await _outbox(bot) == []

    # Once she mentions the brand in the thread, a reply goes under that post.
    mention = await _post(bot, author="nora", text="@frontdesk hello??", in_reply_to=post["id"])
    await eventually(lambda: _all_handled(bot, "nora", 2), what="nora's mention handled")
    await agent_reply(bot.db, ticket.id, agent.id, "Sorry to hear that, Nora: please DM us the order number")

    async def replied() -> list[dict[str, Any]] | None:
        return await _replies_under(bot, {mention["id"]}) or None

    await eventually(replied, what="the agent's reply under nora's mention")


async def test_a_bot_answer_x_would_refuse_goes_to_a_person_instead(
    bot: BotHarness, brand_client: AsyncClient
) -> None:
    announcement = await brand_client.create_tweet(text="Meet the new speakers", user_auth=True)
    post = await _post(
        bot, author="otto", text="hello there!", in_reply_to=str(announcement.data["id"]), mention_brand=False
    )
    ticket = await _ticket_of(bot, "otto")  # small talk the bot would have answered in public
    await eventually(lambda: _all_handled(bot, "otto", 1), what="otto's post handled")
    reasons = [str(e.detail.get("reason")) for e in await _events(bot, ticket.id)]
    assert any("no public answer possible" in r and "@mentions it" in r for r in reasons), reasons
    assert ticket.queue.value == "general"
    assert await _replies_under(bot, {post["id"]}) == []


# --- 2. edits answered twice -----------------------------------------------------------------------------------
async def test_an_edited_mention_updates_the_message_and_is_not_answered_twice(bot: BotHarness) -> None:
    first = await _post(bot, author="olga", text="@frontdesk my order never arived, unacceptable!")
    ticket = await _ticket_of(bot, "olga")

    async def public_reply() -> list[dict[str, Any]] | None:
        return await _replies_under(bot, {first["id"]}) or None

    [reply] = await eventually(public_reply, what="the public reply to olga")
    edited = await _post(bot, author="olga", text="@frontdesk my order never arrived, unacceptable!", edit_of=first["id"])

    async def updated() -> Message | None:
        messages = await _inbound_of(bot, "olga")
        return messages[0] if messages and messages[0].platform_message_id == edited["id"] else None

    message = await eventually(updated, what="olga's message showing her edit")
    assert message.text == "@frontdesk my order never arrived, unacceptable!" and message.ticket_id == ticket.id
    assert len(await _inbound_of(bot, "olga")) == 1  # an edit is not a second message
    [event] = [e for e in await _events(bot, ticket.id) if e.action == "message_edited"]
    assert event.detail["from_platform_id"] == first["id"] and event.detail["to_platform_id"] == edited["id"]
    # A later message is handled (so the worker has been round): still the one public reply.
    await _post(bot, author="olga", text="@frontdesk any news?", in_reply_to=reply["id"])
    await eventually(lambda: _all_handled(bot, "olga", 2), what="olga's next mention handled")
    brand_tweets = (await bot.sent())["tweets"]
    assert [t["in_reply_to_tweet_id"] for t in brand_tweets] == [first["id"]]


# --- 3. deleted parent posts -------------------------------------------------------------------------------------
async def test_a_reply_to_a_deleted_post_fails_for_good_and_the_ticket_says_why(bot: BotHarness) -> None:
    post = await _post(bot, author="pia", text="@frontdesk my headphones broke after a day, unacceptable")
    ticket = await _ticket_of(bot, "pia")

    async def public_reply() -> list[dict[str, Any]] | None:
        return await _replies_under(bot, {post["id"]}) or None

    await eventually(public_reply, what="the public reply to pia")
    response = await bot.http.delete(f"{bot.sandbox_url}/_sandbox/tweets/{post['id']}")
    assert response.status_code == 200
    agent = await create_agent(bot.db, name="Bea", email="bea@example.com", password="correct horse battery")
    await claim(bot.db, ticket.id, agent.id)
    message = await agent_reply(bot.db, ticket.id, agent.id, "Sorry Pia, we will replace them")

    async def failed() -> OutboxItem | None:
        rows = [r for r in await _outbox(bot) if r.message_id == message.id and r.status == OutboxStatus.failed]
        return rows[0] if rows else None

    row = await eventually(failed, what="the agent's reply marked as failed")
    assert row.attempts == 1  # permanent: not retried in a loop
    assert "was deleted" in (row.last_error or "") and "deleted or not visible to you" in (row.last_error or "")
    [event] = [e for e in await _events(bot, ticket.id) if e.action == "delivery_failed"]
    assert "The customer's post this replies to was deleted" in event.detail["reason"]


# --- 4. one public reply per public thread per ticket --------------------------------------------------------------
async def test_a_second_mention_in_the_thread_while_queued_gets_no_second_public_reply(bot: BotHarness) -> None:
    first = await _post(bot, author="quinn", text="@frontdesk my order AB-77 never arrived, unacceptable!")
    ticket = await _ticket_of(bot, "quinn")

    async def public_reply() -> list[dict[str, Any]] | None:
        return await _replies_under(bot, {first["id"]}) or None

    [reply] = await eventually(public_reply, what="the public reply to quinn")
    await _post(bot, author="quinn", text="@frontdesk hello?? still nothing", in_reply_to=reply["id"])
    await _post(bot, author="quinn", text="@frontdesk anyone there?", in_reply_to=first["id"])
    await eventually(lambda: _all_handled(bot, "quinn", 3), what="quinn's three mentions handled")
    async with bot.db.session() as session:
        on_ticket = (await session.execute(select(Message).where(Message.ticket_id == ticket.id))).scalars().all()
    assert len([m for m in on_ticket if m.direction == Direction.inbound]) == 3
    brand_tweets = (await bot.sent())["tweets"]
    assert len(brand_tweets) == 1, [t["text"] for t in brand_tweets]
    assert await bot.dms_to("quinn") == []

