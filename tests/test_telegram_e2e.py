"""Telegram end to end through the whole bot: `frontdesk.app.supervisor.started` with the real Rasa server, the router
worker, the outbox loop and the Telegram channel polling the sandbox's Telegram emulator, on SQLite and
PostgreSQL.  A customer's support question is escalated by the router, an agent claims it from the agents'
group and answers there, and the answer arrives in the customer's Telegram chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from frontdesk.core.settings import SANDBOX_TELEGRAM_TOKEN, Settings
from storage import actions
from storage.models import Contact, Ticket, TicketStatus
from tests.fixtures.bot import BotHarness, bot_harness, e2e_settings, eventually
from tests.fixtures.telegram_channel import AGENTS_CHAT, make_agent
from tests.fixtures.telegram_sandbox import TelegramControl

pytestmark = [pytest.mark.rasa]

ADA_TG = 9001


@pytest.fixture
async def tgbot(db, database_url: str, nlu_settings: Settings, nlu_server_url: str) -> AsyncIterator[BotHarness]:  # type: ignore[no-untyped-def]
    def settings_for(sandbox_url: str) -> Settings:
        return e2e_settings(
            nlu_settings, database_url, nlu_server_url, sandbox_url,
            telegram_token=SecretStr(SANDBOX_TELEGRAM_TOKEN), telegram_api_base=sandbox_url,
            telegram_agents_chat=AGENTS_CHAT, telegram_poll_timeout_s=1, telegram_pager_poll_s=0.2,
        )

    async with bot_harness(settings_for) as harness:
        yield harness


async def _texts_in(control: TelegramControl, chat_id: int) -> list[str]:
    return [m["text"] for m in (await control.sent())["messages"] if m["chat_id"] == chat_id and not m["edited"]]


async def test_a_telegram_question_is_escalated_claimed_in_the_group_and_answered(tgbot: BotHarness) -> None:
    control = TelegramControl(tgbot.sandbox_url, tgbot.http)
    await control.add_chat(AGENTS_CHAT, title="Brand agents")
    ada = await make_agent(tgbot.db, "Ada", ADA_TG)

    await control.message(5550, "the headphones I ordered came broken", username="erin")

    async def ticket() -> Ticket | None:
        async with tgbot.db.session() as session:
            return (await session.execute(
                select(Ticket).join(Contact, Contact.id == Ticket.contact_id).where(Contact.handle == "erin")
            )).scalar_one_or_none()

    opened = await eventually(ticket, what="the router to escalate erin's message")
    assert opened.queue.value == "support"

    async def notice() -> list[str] | None:
        return await _texts_in(control, 5550) or None

    [queued_notice] = await eventually(notice, what="the queue notice in erin's Telegram chat")
    assert "support team" in queued_notice

    async def card() -> dict | None:
        for m in (await control.sent())["messages"]:
            if m["chat_id"] == AGENTS_CHAT and m["text"].startswith(f"🎫 Ticket #{opened.id} "):
                return m
        return None

    posted = await eventually(card, what="the ticket's card in the agents' group")
    assert "erin: the headphones I ordered came broken" in posted["text"]

    await control.press(ADA_TG, AGENTS_CHAT, posted["message_id"], f"claim:{opened.id}")

    async def claimed() -> Ticket | None:
        current = await ticket()
        return current if current is not None and current.status == TicketStatus.assigned else None

    assert (await eventually(claimed, what="Ada's claim")).assignee_id == ada.id

    await control.message(ADA_TG, "So sorry! A replacement ships today.", chat_id=AGENTS_CHAT,
                          chat_type="supergroup", reply_to_message_id=posted["message_id"])

    async def answered() -> list[str] | None:
        texts = await _texts_in(control, 5550)
        return texts if len(texts) >= 2 else None

    assert (await eventually(answered, what="Ada's answer in erin's chat"))[1] == "So sorry! A replacement ships today."

    # The same ticket answered from the desk's side (the store action the desk API calls).
    await actions.agent_reply(tgbot.db, opened.id, ada.id, "Tracking number: 1Z999.")  # type: ignore[arg-type]

    async def desk_answer() -> list[str] | None:
        texts = await _texts_in(control, 5550)
        return texts if len(texts) >= 3 else None

    texts = await eventually(desk_answer, what="the desk's answer in erin's chat")
    assert texts[2] == "Tracking number: 1Z999."
    assert len(texts) == 3  # the bot stayed quiet while an agent held the conversation


async def test_sandbox_mode_serves_telegram_customers_on_the_in_process_emulator(
    db, database_url: str, nlu_settings: Settings, nlu_server_url: str  # type: ignore[no-untyped-def]
) -> None:
    from dataclasses import replace

    from frontdesk.app.roles import ROLE_RUN
    from frontdesk.app.supervisor import started
    from nlu.serving import free_port

    settings = e2e_settings(
        nlu_settings, database_url, nlu_server_url, "", x_api_base="", sandbox_port=free_port(),
        telegram_token=None, telegram_agents_chat=None, telegram_poll_timeout_s=1, telegram_pager_poll_s=0.2,
    )
    said: list[str] = []
    no_http = replace(ROLE_RUN, http=False, metrics_port=False)
    async with started(settings, no_http, say=said.append) as running, httpx.AsyncClient(timeout=10) as http:
        control = TelegramControl(running.sandbox.base_url, http)
        await control.message(6001, "where is my package, it is late", username="fay")

        async def answered() -> list[str] | None:
            return await _texts_in(control, 6001) or None

        [answer] = await eventually(answered, what="the bot's answer in fay's Telegram chat")
        assert "https://shop.example.com/orders" in answer
        assert running.telegram.pager is not None  # the sandbox registers an agents' group for the pager
    banner = "\n".join(said)
    assert "SANDBOX MODE (Telegram)" in banner and "/_sandbox/telegram/messages" in banner
