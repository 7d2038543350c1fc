"""TelegramSender through the real OutboxLoop: agents' replies reach the customer's Telegram chat, once.

A 429 with retry_after is obeyed (the send happens after the wait, once); a user who blocked the bot is a
permanent failure the desk can show; a row whose sender died mid-send is not sent twice by a sender that
already delivered it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from storage import actions
from storage.models import OutboxItem, OutboxStatus, utcnow
from storage.outbox import lease_due, mark_retry
from tests.fixtures.bot import eventually
from tests.fixtures.telegram_channel import TelegramHarness, make_agent


def _aware(value: datetime | None) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones."""
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


async def _row(tg: TelegramHarness, message_id: int) -> OutboxItem:
    async with tg.db.session() as session:
        return (await session.execute(select(OutboxItem).where(OutboxItem.message_id == message_id))).scalar_one()


async def _settled(tg: TelegramHarness, message_id: int) -> OutboxItem | None:
    row = await _row(tg, message_id)
    return row if row.status in (OutboxStatus.sent, OutboxStatus.failed) else None


async def _held_ticket(tg: TelegramHarness, user_id: int) -> int:
    ada = await make_agent(tg.db, "Ada")
    ticket = await tg.escalated(user_id, "my parcel is lost")
    await actions.claim(tg.db, ticket.id, ada.id)  # type: ignore[arg-type]
    # The pager's card is a sendMessage too: let it go out before faults are armed for the reply.
    await tg.card_of(ticket.id)  # type: ignore[arg-type]
    return ticket.id  # type: ignore[return-value]


async def test_an_agent_reply_is_delivered_to_the_customer_chat(tg: TelegramHarness) -> None:
    ticket_id = await _held_ticket(tg, 3001)
    agent_id = (await tg.ticket(ticket_id)).assignee_id
    reply = await actions.agent_reply(tg.db, ticket_id, agent_id, "Found it: it arrives tomorrow.")  # type: ignore[arg-type]
    tg.outbox.wake()
    row = await eventually(lambda: _settled(tg, reply.id), what="the reply to be delivered")

    assert row.status == OutboxStatus.sent
    to_customer = await tg.messages_in(3001)
    assert [m["text"] for m in to_customer] == ["Found it: it arrives tomorrow."]
    assert row.platform_message_id == f"3001:{to_customer[0]['message_id']}"


# python-telegram-bot's own RetryAfter constructor warns about its retry_after type change (22.2).
@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_a_429_is_obeyed_and_the_message_sent_once_after_the_wait(tg: TelegramHarness) -> None:
    ticket_id = await _held_ticket(tg, 3002)
    agent_id = (await tg.ticket(ticket_id)).assignee_id
    await tg.control.fault(429, count=1, method="sendMessage", retry_after=2)
    before = utcnow()
    reply = await actions.agent_reply(tg.db, ticket_id, agent_id, "Sorry for the wait!")  # type: ignore[arg-type]
    tg.outbox.wake()

    async def refused_once() -> OutboxItem | None:
        row = await _row(tg, reply.id)
        return row if row.last_error and row.status == OutboxStatus.pending else None

    refused = await eventually(refused_once, what="the first attempt to be refused with 429")
    assert "retry after 2" in (refused.last_error or "")
    # The next attempt is scheduled no earlier than Telegram asked.
    assert _aware(refused.next_attempt_at) >= before + timedelta(seconds=2)
    assert await tg.messages_in(3002) == []

    row = await eventually(lambda: _settled(tg, reply.id), what="the reply to be delivered after the wait")
    assert row.status == OutboxStatus.sent and row.attempts == 2
    assert _aware(row.sent_at) >= _aware(refused.next_attempt_at)
    assert [m["text"] for m in await tg.messages_in(3002)] == ["Sorry for the wait!"]


async def test_a_user_who_blocked_the_bot_is_a_permanent_failure(tg: TelegramHarness) -> None:
    ticket_id = await _held_ticket(tg, 3003)
    agent_id = (await tg.ticket(ticket_id)).assignee_id
    await tg.control.block(3003)
    reply = await actions.agent_reply(tg.db, ticket_id, agent_id, "Hello?")  # type: ignore[arg-type]
    tg.outbox.wake()
    row = await eventually(lambda: _settled(tg, reply.id), what="the reply to be given up")
    assert row.status == OutboxStatus.failed
    assert "blocked" in (row.last_error or "")
    assert row.attempts == 1


async def test_a_delivery_whose_bookkeeping_failed_is_not_sent_again(tg: TelegramHarness) -> None:
    ticket_id = await _held_ticket(tg, 3004)
    agent_id = (await tg.ticket(ticket_id)).assignee_id
    # Play the outbox loop's part by hand: deliver, then "lose" the mark_sent (the store hiccupped after
    # Telegram accepted the message).
    await tg.stop_outbox()
    reply = await actions.agent_reply(tg.db, ticket_id, agent_id, "Once only, please.")  # type: ignore[arg-type]
    [delivery] = [d for d in await lease_due(tg.db, "someone-else", lease_s=600) if d.message_id == reply.id]
    await tg.channel.sender.deliver(delivery)
    await mark_retry(tg.db, delivery.id, "store error after send", delay_s=0)
    async with tg.db.transaction() as session:  # the lapsed lease comes back as needs_reconcile
        row = await session.get(OutboxItem, delivery.id)
        assert row is not None
        row.status = OutboxStatus.sending
        row.lease_until = utcnow() - timedelta(seconds=1)
    tg.start_outbox()
    row = await eventually(lambda: _settled(tg, reply.id), what="the row to be reconciled")
    assert row.status == OutboxStatus.sent
    assert [m["text"] for m in await tg.messages_in(3004)] == ["Once only, please."]
    assert tg.outbox.reconciled == 1
