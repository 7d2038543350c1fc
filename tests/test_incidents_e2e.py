"""Spike alerts and incidents end to end: the whole bot (`started`, real Rasa, router, outbox, the spike loop)
against the X and Telegram emulators through the real tweepy and python-telegram-bot clients, on SQLite and
PostgreSQL.

1. A burst of complaints by DM raises exactly one alert, posted once to the agents' Telegram group; more
   complaints while it goes on raise none.
2. An incident's status update reaches three linked customers: an X DM, a reply in an X public thread and a
   Telegram chat; resolving it sends the final message and resolves the tickets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from frontdesk.core.settings import SANDBOX_TELEGRAM_TOKEN, Settings
from storage import actions
from storage.actions import incidents as incident_actions
from storage.models import Alert, Contact, Conversation, Direction, Message, Ticket, TicketStatus
from tests.fixtures.bot import BotHarness, bot_harness, e2e_settings, eventually
from tests.fixtures.telegram_channel import AGENTS_CHAT, make_agent
from tests.fixtures.telegram_sandbox import TelegramControl

pytestmark = [pytest.mark.rasa]

COMPLAINTS = [
    "worst customer service ever. 45 mins on hold and they hung up",
    "absolutely disgusted with how your staff treated me today",
    "your support is a joke. 3 emails no reply",
    "been a customer 10 years and this is how you treat me?",
    "i'm done. cancelling everything. never again",
    "thanks for nothing. 4th time i explain my issue",
]


@pytest.fixture
async def spikebot(db, database_url: str, nlu_settings: Settings, nlu_server_url: str) -> AsyncIterator[BotHarness]:  # type: ignore[no-untyped-def]
    def settings_for(sandbox_url: str) -> Settings:
        return e2e_settings(
            nlu_settings, database_url, nlu_server_url, sandbox_url,
            telegram_token=SecretStr(SANDBOX_TELEGRAM_TOKEN), telegram_api_base=sandbox_url,
            telegram_agents_chat=AGENTS_CHAT, telegram_poll_timeout_s=1, telegram_pager_poll_s=0.2,
            # A day-long window (aligned on UTC midnight): the burst cannot straddle two windows mid-test.
            spike_window_s=86_400, spike_baseline_windows=7, spike_min_count=4, spike_check_s=0.2,
            desk_public_url="https://desk.example.com",
        )

    async with bot_harness(settings_for) as harness:
        control = TelegramControl(harness.sandbox_url, harness.http)
        await control.add_chat(AGENTS_CHAT, title="Brand agents")
        yield harness


async def _handled(bot: BotHarness, count: int) -> int | None:
    async with bot.db.session() as session:
        n = (await session.execute(
            select(func.count()).select_from(Message)
            .where(Message.direction == Direction.inbound, Message.handled_at.is_not(None))  # type: ignore[union-attr]
        )).scalar_one()
    return n if n >= count else None


async def _alerts(bot: BotHarness) -> list[Alert]:
    async with bot.db.session() as session:
        return list((await session.execute(select(Alert))).scalars().all())


async def test_a_burst_of_complaints_raises_exactly_one_alert_on_the_pager(spikebot: BotHarness) -> None:
    control = TelegramControl(spikebot.sandbox_url, spikebot.http)
    for i, text in enumerate(COMPLAINTS[:5]):
        await spikebot.dm(f"angry{i}", text)

    async def alerted() -> list[Alert] | None:
        return await _alerts(spikebot) or None

    [alert] = await eventually(alerted, what="a spike alert for the burst of complaints")
    assert alert.key in ("intent:complaint", "category:support") and alert.count >= 4

    async def posted() -> list[str] | None:
        texts = [m["text"] for m in (await control.sent())["messages"]
                 if m["chat_id"] == AGENTS_CHAT and m["text"].startswith("🚨 Spike")]
        return texts or None

    [page] = await eventually(posted, what="the alert in the agents' group")
    assert f"https://desk.example.com/incidents/new?alert={alert.id}" in page

    # The burst goes on: more complaints, parsed and checked many times over, and still one alert.
    for i, text in enumerate(COMPLAINTS[5:] + COMPLAINTS[:2]):
        await spikebot.dm(f"angrier{i}", text)
    await eventually(lambda: _handled(spikebot, 8), what="every complaint parsed")
    await asyncio.sleep(1.0)  # five more checks
    assert [a.id for a in await _alerts(spikebot)] == [alert.id]
    assert len(await posted() or []) == 1


async def _conversation_of(bot: BotHarness, handle: str) -> int | None:
    async with bot.db.session() as session:
        return (await session.execute(
            select(Conversation.id).join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.handle == handle).order_by(Conversation.id).limit(1)
        )).scalar_one_or_none()


async def test_an_incident_update_reaches_x_dm_an_x_thread_and_telegram(spikebot: BotHarness) -> None:
    control = TelegramControl(spikebot.sandbox_url, spikebot.http)
    ada = await make_agent(spikebot.db, "Ada", 9101)

    await spikebot.dm("sam", "checkout keeps failing when I pay with my card")
    tweet = await spikebot.mention("pat", "@brand checkout is broken, payment failed twice")
    await control.message(5551, "your checkout won't take my card", username="tia")

    tickets = []
    for handle in ("sam", "pat", "tia"):
        conversation_id = await eventually(lambda h=handle: _conversation_of(spikebot, h), what=f"{handle}'s message")
        tickets.append(await actions.escalate(spikebot.db, conversation_id, queue="support", reason="test"))
    await eventually(lambda: _handled(spikebot, 3), what="the three messages handled")
    ticket_ids = [t.id for t in tickets]

    incident = await incident_actions.open_incident(spikebot.db, title="Checkout fails", agent_id=ada.id,
                                                    keywords=["checkout"])
    assert await incident_actions.link_tickets(spikebot.db, incident.id, ticket_ids, agent_id=ada.id) == ticket_ids

    update = "We know checkout is failing and are fixing it. Your order is safe."
    sent = await incident_actions.send_update(spikebot.db, incident.id, agent_id=ada.id, text=update)
    assert sent.sent_to == 3

    async def delivered(text: str) -> bool | None:
        x = await spikebot.sent()
        in_dm = text in [d["text"] for d in x["dms"] if d["recipient"] == "sam"]
        in_thread = any(t["text"] == text and t["in_reply_to_tweet_id"] == tweet["id"] for t in x["tweets"])
        on_telegram = text in [m["text"] for m in (await control.sent())["messages"] if m["chat_id"] == 5551]
        return (in_dm and in_thread and on_telegram) or None

    await eventually(lambda: delivered(update), what="the update in sam's DMs, pat's thread and tia's chat")

    await incident_actions.resolve_incident(spikebot.db, incident.id, agent_id=ada.id,
                                            text="Checkout works again. Thank you for waiting!", resolve_tickets=True)
    await eventually(lambda: delivered("Checkout works again. Thank you for waiting!"), what="the final message")
    async with spikebot.db.session() as session:
        statuses = [(await session.get(Ticket, t)).status for t in ticket_ids]  # type: ignore[union-attr]
    assert statuses == [TicketStatus.resolved] * 3
    # Each customer got the update once, however often the outbox looked.
    x = await spikebot.sent()
    assert [d["text"] for d in x["dms"] if d["recipient"] == "sam"].count(update) == 1
