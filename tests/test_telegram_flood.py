"""Telegram's flood limits are obeyed: bursts of answers are paced, not refused; a 429 loses nothing (issue 21).

Bots FAQ ("My bot is hitting limits, how do I avoid this?", https://core.telegram.org/bots/faq): about one
message a second per chat, 20 a minute per group, ~30 a second overall; beyond them Telegram answers 429
"Too Many Requests: retry after N", and a bot that keeps hitting them is held back for longer.  The
emulator enforces them strictly (no bursts); real OutboxLoop, real python-telegram-bot, real store.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from storage import actions
from storage.models import OutboxItem, OutboxStatus
from tests.fixtures.bot import eventually
from tests.fixtures.telegram_channel import AGENTS_CHAT, TelegramHarness, make_agent


async def _held(tg: TelegramHarness, user_id: int, agent_id: int) -> int:
    ticket = await tg.escalated(user_id, f"help, I am customer {user_id}")
    await actions.claim(tg.db, ticket.id, agent_id)  # type: ignore[arg-type]
    return ticket.id  # type: ignore[return-value]


async def _refusals(tg: TelegramHarness) -> int:
    return (await tg.control.state())["flood_refusals"]


async def test_a_burst_of_replies_to_one_customer_goes_out_paced_in_order_and_once(tg: TelegramHarness) -> None:
    ada = await make_agent(tg.db, "Ada")
    ticket_id = await _held(tg, 6001, ada.id)  # type: ignore[arg-type]
    await tg.card_of(ticket_id)
    texts = [f"part {i} of the answer" for i in range(1, 5)]
    started = time.monotonic()
    for text in texts:
        await actions.agent_reply(tg.db, ticket_id, ada.id, text)  # type: ignore[arg-type]
    tg.outbox.wake()

    async def all_out() -> list[str] | None:
        got = [m["text"] for m in await tg.messages_in(6001)]
        return got if len(got) >= len(texts) else None

    assert await eventually(all_out, what="the four replies", timeout_s=20) == texts
    assert time.monotonic() - started >= 3.0  # one a second in that chat: four messages span three seconds
    assert await _refusals(tg) == 0, "Telegram had to refuse a send: the sender did not pace"


async def test_many_customers_at_once_and_a_busy_agents_group_are_paced_and_nobody_is_starved(
    tg: TelegramHarness,
) -> None:
    ada = await make_agent(tg.db, "Ada")
    customers = list(range(6100, 6132))  # 32 customers: more than 30 a second, more than 20 cards a minute
    tickets = [await _held(tg, user, ada.id) for user in customers]  # type: ignore[arg-type]
    started = time.monotonic()
    replies = [await actions.agent_reply(tg.db, t, ada.id, f"Answer for ticket {t}") for t in tickets]  # type: ignore[arg-type]
    tg.outbox.wake()

    async def delivered() -> int | None:
        async with tg.db.session() as session:
            rows = (await session.execute(select(OutboxItem.status).where(
                OutboxItem.message_id.in_([r.id for r in replies])))).scalars().all()  # type: ignore[union-attr]
        return len(rows) if all(s == OutboxStatus.sent for s in rows) else None

    # The agents' group takes a card a second (20 a minute at most): the pager queues, the customers do not.
    assert await eventually(delivered, what="every customer's reply", timeout_s=30) == len(customers)
    assert time.monotonic() - started < 20
    for user, ticket in zip(customers, tickets):
        assert [m["text"] for m in await tg.messages_in(user)] == [f"Answer for ticket {ticket}"]
    cards = [m for m in await tg.messages_in(AGENTS_CHAT) if not m["edited"]]
    assert 1 <= len(cards) < len(customers)  # the rest of the cards are still waiting for their turn
    assert await _refusals(tg) == 0, "Telegram had to refuse a send: the sender or the pager did not pace"
