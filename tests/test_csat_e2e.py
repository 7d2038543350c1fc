"""CSAT through the whole bot: real Rasa, the X emulator (driven by tweepy), the outbox, SQLite and PostgreSQL.

An agent resolves a ticket; the question arrives in the customer's X DMs; "5 great" is stored and thanked
and opens no ticket; the customer's next ticket, within the window, is resolved without a question.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.content import csat_policy
from storage.actions import agent_reply, claim, resolve
from storage.agents import create_agent
from storage.models import CsatResponse, Ticket, TicketEvent
from tests.fixtures.bot import BotHarness, eventually
from tests.test_bot_e2e import _tickets_of, _wait_ticket

pytestmark = [pytest.mark.rasa]


async def _resolve_with_a_reply(bot: BotHarness, ticket: Ticket, agent_id: int) -> None:
    await claim(bot.db, ticket.id, agent_id)
    await agent_reply(bot.db, ticket.id, agent_id, "Here now: what can I do for you?")
    await resolve(bot.db, ticket.id, agent_id, csat=csat_policy(bot.running.settings))


async def test_resolve_asks_the_customer_and_their_score_is_stored_not_routed(bot: BotHarness) -> None:
    agent = await create_agent(bot.db, name="Ada", email="ada@example.com", password="correct horse battery")
    await bot.dm("jana", "I want a real human")
    ticket = await _wait_ticket(bot, "jana")
    await bot.wait_dms_to("jana", 1)  # the bot's "a person will reply"
    await _resolve_with_a_reply(bot, ticket, agent.id)
    texts = await bot.wait_dms_to("jana", 3)
    assert texts[-1].startswith("How did we do? Reply 1–5")

    await bot.dm("jana", "5 great")
    texts = await bot.wait_dms_to("jana", 4)
    assert texts[-1] == "Thank you for your feedback! It helps us get better."
    async with bot.db.session() as session:
        response = (await session.execute(select(CsatResponse))).scalar_one()
    assert (response.ticket_id, response.score, response.comment) == (ticket.id, 5, "great")
    assert len(await _tickets_of(bot, "jana")) == 1  # the score opened no ticket

    # A second ticket within the window: resolved without a question.
    await bot.dm("jana", "I want to talk to a person again")
    async def second() -> Ticket | None:
        tickets = await _tickets_of(bot, "jana")
        return tickets[-1] if len(tickets) == 2 else None

    again = await eventually(second, what="jana's second ticket")
    sent_before = len(await bot.wait_dms_to("jana", 5))
    await _resolve_with_a_reply(bot, again, agent.id)
    await bot.wait_dms_to("jana", sent_before + 1)  # the agent's reply, and nothing after it
    async with bot.db.session() as session:
        skipped = (await session.execute(select(func.count()).select_from(TicketEvent).where(
            TicketEvent.ticket_id == again.id, TicketEvent.action == "csat_skipped"))).scalar_one()
    assert skipped == 1
    assert not any(t.startswith("How did we do") for t in (await bot.dms_to("jana"))[4:])
