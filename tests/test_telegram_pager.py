"""The agents' pager end to end: cards in the agents' group, Claim, replies, commands, refusals.

Agents play through the emulator's control API (button presses and replies in the group), the channel
runs for real (python-telegram-bot polling the emulator) on a real store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func, select

from bot.channels.telegram.agents import TelegramPager
from storage import actions
from storage.db import Database
from storage.models import (
    ConversationStatus,
    Message,
    MessageKind,
    OutboxItem,
    TicketEvent,
    TicketStatus,
)
from tests.fixtures.bot import eventually
from tests.fixtures.telegram_channel import AGENTS_CHAT, TelegramHarness, make_agent, telegram_harness
from tests.fixtures.telegram_sandbox import TelegramSandbox

ADA_TG, BOB_TG, EVE_TG = 7001, 7002, 7666


async def _answers(tg: TelegramHarness) -> list[str]:
    return [a["text"] for a in (await tg.control.sent())["callback_answers"]]


async def _answered(tg: TelegramHarness, count: int) -> list[str] | None:
    answers = await _answers(tg)
    return answers if len(answers) >= count else None


async def _replies_to(tg: TelegramHarness, message_id: int) -> list[str]:
    return [m["text"] for m in await tg.messages_in(AGENTS_CHAT)
            if m["reply_to_message_id"] == message_id and not m["edited"]]


async def _reply_in_group(tg: TelegramHarness, user_id: int, card_id: int, text: str) -> str:
    """An agent answers the card in the group; returns the bot's short answer to them."""
    sent = await tg.control.message(user_id, text, chat_id=AGENTS_CHAT, chat_type="supergroup",
                                    reply_to_message_id=card_id)

    async def answer() -> list[str] | None:
        found = await _replies_to(tg, sent["message_id"])
        return found or None

    return (await eventually(answer, what=f"the bot's answer to {text!r}"))[0]


async def _count(tg: TelegramHarness, model: type, *where) -> int:  # type: ignore[no-untyped-def]
    async with tg.db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_an_escalation_is_posted_with_a_claim_button(tg: TelegramHarness) -> None:
    ticket = await tg.escalated(4100, "My order #1234 arrived broken", username="carol", priority="high")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]

    assert f"Ticket #{ticket.id}" in card["text"] and "support" in card["text"] and "high" in card["text"]
    assert "@carol" in card["text"] and "on Telegram" in card["text"]
    assert "carol: My order #1234 arrived broken" in card["text"]
    [[button]] = card["reply_markup"]["inline_keyboard"]
    assert button["text"] == "Claim" and button["callback_data"] == f"claim:{ticket.id}"


async def test_two_agents_press_claim_at_once_exactly_one_holds_it(tg: TelegramHarness) -> None:
    ada = await make_agent(tg.db, "Ada", ADA_TG)
    bob = await make_agent(tg.db, "Bob", BOB_TG)
    ticket = await tg.escalated(4200, "I was charged twice")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]

    # Both presses are queued before the bot sees either.
    await asyncio.gather(
        tg.control.press(ADA_TG, AGENTS_CHAT, card["message_id"], f"claim:{ticket.id}"),
        tg.control.press(BOB_TG, AGENTS_CHAT, card["message_id"], f"claim:{ticket.id}"),
    )
    answers = await eventually(lambda: _answered(tg, 2), what="both presses to be answered")

    held = await tg.ticket(ticket.id)  # type: ignore[arg-type]
    assert held.status == TicketStatus.assigned and held.assignee_id in (ada.id, bob.id)
    winner, loser = ("Ada", "Bob") if held.assignee_id == ada.id else ("Bob", "Ada")
    assert sorted(answers) == sorted([
        f"Ticket #{ticket.id} is yours, {winner}. Reply to its message to answer.",
        f"Ticket #{ticket.id} is already held by {winner}.",
    ])
    assert await _count(tg, TicketEvent, TicketEvent.action == "claimed") == 1

    async def card_shows_holder() -> str | None:
        text = await tg.latest_card_text(ticket.id)  # type: ignore[arg-type]
        return text if f"Held by {winner}" in text else None

    await eventually(card_shows_holder, what="the card to name the holder")
    edits = [m for m in await tg.messages_in(AGENTS_CHAT) if m["edited"]]
    assert edits and edits[-1]["reply_markup"] in (None, {}, {"inline_keyboard": []})
    assert loser not in (await tg.latest_card_text(ticket.id))  # type: ignore[arg-type]


async def test_the_holder_works_the_ticket_by_replying_to_its_card(tg: TelegramHarness) -> None:
    ada = await make_agent(tg.db, "Ada", ADA_TG)
    ticket = await tg.escalated(4300, "Can I change my delivery address?", username="dan")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]
    await tg.control.press(ADA_TG, AGENTS_CHAT, card["message_id"], f"claim:{ticket.id}")
    await eventually(lambda: _answered(tg, 1), what="the claim to be answered")

    # A plain reply goes to the customer, on Telegram.
    assert "On its way" in await _reply_in_group(tg, ADA_TG, card["message_id"], "Yes! Send me the new one.")

    async def delivered() -> list[str] | None:
        texts = [m["text"] for m in await tg.messages_in(4300)]
        return texts or None

    assert await eventually(delivered, what="the agent's reply in the customer's chat") == ["Yes! Send me the new one."]

    # The customer's follow-up shows up under the card.
    await tg.control.message(4300, "12 Baker Street", username="dan")

    async def relayed() -> list[str] | None:
        found = [t for t in await _replies_to(tg, card["message_id"]) if "12 Baker Street" in t]
        return found or None

    assert (await eventually(relayed, what="the follow-up relayed to the group"))[0].startswith("💬 dan")

    assert "Note added" in await _reply_in_group(tg, ADA_TG, card["message_id"], "/note customer moved house")
    assert "Resolved" in await _reply_in_group(tg, ADA_TG, card["message_id"], "/resolve")

    closed = await tg.ticket(ticket.id)  # type: ignore[arg-type]
    assert closed.status == TicketStatus.resolved and closed.assignee_id == ada.id
    assert (await tg.conversation(closed.conversation_id)).status == ConversationStatus.resolved
    assert await _count(tg, Message, Message.ticket_id == ticket.id, Message.kind == MessageKind.note) == 1
    assert "Resolved by Ada" in await tg.latest_card_text(ticket.id)  # type: ignore[arg-type]


async def test_handback_from_the_group_returns_the_conversation_to_the_bot(tg: TelegramHarness) -> None:
    await make_agent(tg.db, "Ada", ADA_TG)
    ticket = await tg.escalated(4400, "hello? a human please")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]
    # Replying before claiming is refused with the way out.
    assert "Press Claim first" in await _reply_in_group(tg, ADA_TG, card["message_id"], "hi there")
    assert "yours" in await _reply_in_group(tg, ADA_TG, card["message_id"], "/claim")
    assert "Handed back" in await _reply_in_group(tg, ADA_TG, card["message_id"], "/handback")
    closed = await tg.ticket(ticket.id)  # type: ignore[arg-type]
    assert closed.status == TicketStatus.handed_back
    assert (await tg.conversation(closed.conversation_id)).status == ConversationStatus.bot
    assert await _count(tg, OutboxItem) == 0  # the refused "hi there" was never queued


async def test_someone_not_linked_to_an_agent_is_refused_and_nothing_changes(tg: TelegramHarness) -> None:
    await make_agent(tg.db, "Ada", ADA_TG)
    await make_agent(tg.db, "Zed")  # an agent, but not linked to this Telegram user
    ticket = await tg.escalated(4500, "where is my refund")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]
    events_before = await _count(tg, TicketEvent)

    await tg.control.press(EVE_TG, AGENTS_CHAT, card["message_id"], f"claim:{ticket.id}")
    [answer] = await eventually(lambda: _answered(tg, 1), what="the press to be answered")
    assert "only Frontdesk agents" in answer and str(EVE_TG) in answer
    refusal = await _reply_in_group(tg, EVE_TG, card["message_id"], "Refund is on its way, trust me")
    assert "only Frontdesk agents" in refusal
    await _reply_in_group(tg, EVE_TG, card["message_id"], "/resolve")

    unchanged = await tg.ticket(ticket.id)  # type: ignore[arg-type]
    assert unchanged.status == TicketStatus.queued and unchanged.assignee_id is None
    assert await _count(tg, TicketEvent) == events_before
    assert await _count(tg, OutboxItem) == 0
    assert await tg.messages_in(4500) == []


async def test_a_claim_made_in_the_desk_updates_the_card(tg: TelegramHarness) -> None:
    zed = await make_agent(tg.db, "Zed")
    ticket = await tg.escalated(4600, "my account is locked")
    await tg.card_of(ticket.id)  # type: ignore[arg-type]
    await actions.claim(tg.db, ticket.id, zed.id)  # type: ignore[arg-type]

    async def card_shows_zed() -> str | None:
        text = await tg.latest_card_text(ticket.id)  # type: ignore[arg-type]
        return text if "Held by Zed" in text else None

    await eventually(card_shows_zed, what="the card to show the desk's claim")


async def test_cards_wait_until_the_bot_can_post_in_the_group(
    db: Database, telegram_sandbox: TelegramSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="frontdesk.telegram.pager")
    async with telegram_harness(db, telegram_sandbox, agents_chat_exists=False) as tg:
        ticket = await tg.escalated(4700, "nobody is listening")

        async def refused() -> bool:
            return "add the bot to the agents' group" in caplog.text

        await eventually(refused, what="the pager to fail to post and say how to fix it")
        assert await tg.messages_in(AGENTS_CHAT) == []
        await tg.control.add_chat(AGENTS_CHAT, title="Brand agents")  # someone adds the bot to the group
        card = await tg.card_of(ticket.id)  # type: ignore[arg-type]
        assert "nobody is listening" in card["text"]


async def test_reply_name_sends_a_saved_reply_filled_in_for_the_ticket(tg: TelegramHarness) -> None:
    from storage.saved_replies import create_saved_reply

    await make_agent(tg.db, "Ada", ADA_TG)
    await create_saved_reply(tg.db, name="on-it", text="Hi {customer_name}, {agent_name} is on ticket #{ticket_id}.",
                             agent_id=None)
    await create_saved_reply(tg.db, name="join", text="Join {event_name} at {event_link}", agent_id=None)
    ticket = await tg.escalated(4400, "Where is my refund?", username="ola")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]
    await tg.control.press(ADA_TG, AGENTS_CHAT, card["message_id"], f"claim:{ticket.id}")
    await eventually(lambda: _answered(tg, 1), what="the claim to be answered")

    assert "/on-it is on its way" in await _reply_in_group(tg, ADA_TG, card["message_id"], "/reply on-it")

    async def delivered() -> list[str] | None:
        return [m["text"] for m in await tg.messages_in(4400)] or None

    assert await eventually(delivered, what="the saved reply in the customer's chat") == [
        f"Hi ola, Ada is on ticket #{ticket.id}."
    ]
    # A reply the pager cannot fill, or one that does not exist, is not sent; the agent is told why.
    gap = await _reply_in_group(tg, ADA_TG, card["message_id"], "/reply join")
    assert "{event_name}, {event_link}" in gap and "send it from the desk" in gap
    missing = await _reply_in_group(tg, ADA_TG, card["message_id"], "/reply nope")
    assert "no saved reply /nope" in missing
    assert await _count(tg, OutboxItem) == 1  # only the first was queued


async def test_an_sla_breach_is_posted_once_as_a_reply_to_the_card(tg: TelegramHarness) -> None:
    ticket = await tg.escalated(4800, "still no refund", username="dora", priority="high")
    assert ticket.id is not None
    card = await tg.card_of(ticket.id)
    assert await actions.record_sla_alert(tg.db, ticket.id, "first_response", "warning")
    assert await actions.record_sla_alert(tg.db, ticket.id, "first_response", "breached")

    async def both() -> list[str] | None:
        found = [t for t in await _replies_to(tg, card["message_id"]) if "SLA" in t]
        return found if len(found) >= 2 else None

    alerts = await eventually(both, what="the SLA warning and breach under the card")
    assert alerts == [
        f"🟠 SLA warning: first response on ticket #{ticket.id} (support, high) has used 80% of its time",
        f"🔴 SLA breached: first response on ticket #{ticket.id} (support, high)",
    ]
    # The pager re-reads the last minutes of events on every pass (and after a restart): still one of each.
    await asyncio.sleep(0.5)
    restarted = TelegramPager(tg.channel.bot, tg.db, AGENTS_CHAT)
    await restarted.sync()
    assert [t for t in await _replies_to(tg, card["message_id"]) if "SLA" in t] == alerts


async def _say_in_group(tg: TelegramHarness, user_id: int, text: str) -> str:
    """An agent writes in the group (not as a reply to a card); returns the bot's answer to them."""
    sent = await tg.control.message(user_id, text, chat_id=AGENTS_CHAT, chat_type="supergroup")

    async def answer() -> list[str] | None:
        return await _replies_to(tg, sent["message_id"]) or None

    return (await eventually(answer, what=f"the bot's answer to {text!r}"))[0]


async def test_away_and_back_from_the_pager_and_the_assigned_agent_is_told_under_the_card(
    tg: TelegramHarness,
) -> None:
    from storage.assignment import forget_seen_memo, presence_of

    forget_seen_memo()
    root = await make_agent(tg.db, "Root")
    async with tg.db.transaction() as session:  # an admin of the desk switches support to round robin
        from storage.models import Agent, AgentRole

        (await session.get(Agent, root.id)).role = AgentRole.admin  # type: ignore[union-attr]
    await actions.set_queue_assignment(tg.db, "support", auto_assign=True, capacity=2, by_agent_id=root.id)  # type: ignore[arg-type]
    ada = await make_agent(tg.db, "Ada", ADA_TG)

    assert "Ada, you are away" in await _say_in_group(tg, ADA_TG, "/away")
    assert (await presence_of(tg.db, ada.id, window_s=120)).away  # type: ignore[arg-type]
    ticket = await tg.escalated(4700, "Where is my refund?", username="fay")
    card = await tg.card_of(ticket.id)  # type: ignore[arg-type]
    assert await actions.assign_waiting(tg.db, online_window_s=120) == []  # away: nobody to give it to

    assert "Welcome back, Ada" in await _say_in_group(tg, ADA_TG, "/back@FrontdeskBot")
    presence = await presence_of(tg.db, ada.id, window_s=120)  # type: ignore[arg-type]
    assert not presence.away and presence.online
    [assigned] = await actions.assign_waiting(tg.db, online_window_s=120)
    assert assigned.agent_id == ada.id

    async def told() -> list[str] | None:
        return [t for t in await _replies_to(tg, card["message_id"]) if t.startswith("📌")] or None

    assert await eventually(told, what="the assignment told under the card") == [
        f"📌 Ada, ticket #{ticket.id} is yours (assigned automatically). Reply to its card to answer."
    ]

    async def card_shows_holder() -> str | None:
        text = await tg.latest_card_text(ticket.id)  # type: ignore[arg-type]
        return text if "Held by Ada" in text else None

    await eventually(card_shows_holder, what="the card to name Ada")
    # The pager is a way of being online too: Bob presses Claim on a card, and counts as online.
    bob = await make_agent(tg.db, "Bob", BOB_TG)
    other = await tg.escalated(4701, "Broken zipper", username="gus")
    other_card = await tg.card_of(other.id)  # type: ignore[arg-type]
    assert not (await presence_of(tg.db, bob.id, window_s=120)).online  # type: ignore[arg-type]
    await tg.control.press(BOB_TG, AGENTS_CHAT, other_card["message_id"], f"claim:{other.id}")
    await eventually(lambda: _answered(tg, 1), what="Bob's press to be answered")
    assert (await presence_of(tg.db, bob.id, window_s=120)).online  # type: ignore[arg-type]


async def test_away_from_someone_not_linked_is_refused(tg: TelegramHarness) -> None:
    answer = await _say_in_group(tg, EVE_TG, "/away")
    assert "only Frontdesk agents" in answer and str(EVE_TG) in answer
