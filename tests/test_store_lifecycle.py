"""The ticket lifecycle as agents and customers experience it, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage import actions
from storage.agents import create_agent
from storage.db import Database
from storage.errors import AlreadyClaimed, InvalidTransition, NotAllowed
from storage.models import (
    Author,
    Conversation,
    ConversationStatus,
    Message,
    OutboxItem,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from tests.store_helpers import dm, mention


async def _agent(db: Database, name: str = "Ada", role: str = "agent"):  # type: ignore[no-untyped-def]
    return await create_agent(db, email=f"{name.lower()}@brand.example", name=name, password="correct horse", role=role)


async def _events(db: Database, ticket_id: int) -> list[str]:
    async with db.session() as s:
        rows = await s.execute(select(TicketEvent.action).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id))
        return list(rows.scalars())


async def _conversation(db: Database, conversation_id: int) -> Conversation:
    async with db.session() as s:
        conv = await s.get(Conversation, conversation_id)
        assert conv is not None
        return conv


async def test_the_same_platform_message_is_stored_once(db: Database) -> None:
    first = await actions.record_inbound(db, dm("hello", msg_id="dm-42"))
    again = await actions.record_inbound(db, dm("hello", msg_id="dm-42"))
    assert first.is_new and not again.is_new
    assert again.message_id == first.message_id
    async with db.session() as s:
        assert len((await s.execute(select(Message))).scalars().all()) == 1


async def test_escalate_claim_reply_resolve_and_a_new_round(db: Database) -> None:
    ada = await _agent(db)
    rec = await actions.record_inbound(db, dm("my order #123 never arrived"))
    ticket = await actions.escalate(db, rec.conversation_id, queue="support", priority="high", category="support",
                                    subject="order never arrived", notice_text="A person will reply here soon.")
    assert ticket.status == TicketStatus.queued
    assert (await _conversation(db, rec.conversation_id)).status == ConversationStatus.queued

    # The customer's earlier message is on the ticket, so the agent sees what led here.
    async with db.session() as s:
        on_ticket = (await s.execute(select(Message.text).where(Message.ticket_id == ticket.id))).scalars().all()
    assert "my order #123 never arrived" in on_ticket

    claimed = await actions.claim(db, ticket.id, ada.id)
    assert claimed.status == TicketStatus.assigned and claimed.assignee_id == ada.id
    assert (await _conversation(db, rec.conversation_id)).status == ConversationStatus.agent

    reply = await actions.agent_reply(db, ticket.id, ada.id, "So sorry! A new parcel is on its way.")
    async with db.session() as s:
        outbox = (await s.execute(select(OutboxItem).where(OutboxItem.message_id == reply.id))).scalar_one()
        t = await s.get(Ticket, ticket.id)
    assert outbox.target == {"kind": "dm", "recipient_id": "111"}
    assert outbox.text == "So sorry! A new parcel is on its way."
    assert t is not None and t.first_response_at is not None

    resolved = await actions.resolve(db, ticket.id, ada.id)
    assert resolved.status == TicketStatus.resolved and resolved.resolved_at is not None
    assert (await _conversation(db, rec.conversation_id)).status == ConversationStatus.resolved

    # Writing again after the resolve starts a new round with the bot, not the old ticket.
    later = await actions.record_inbound(db, dm("thanks, it came!"))
    assert later.is_new and later.ticket_id is None
    assert (await _conversation(db, later.conversation_id)).status == ConversationStatus.bot
    assert await _events(db, ticket.id) == ["escalated", "claimed", "replied", "resolved"]


async def test_escalation_is_idempotent_and_keeps_the_highest_priority(db: Database) -> None:
    rec = await actions.record_inbound(db, dm())
    first = await actions.escalate(db, rec.conversation_id, queue="support", priority="normal")
    again = await actions.escalate(db, rec.conversation_id, queue="support", priority="urgent", data={"angry": True})
    assert again.id == first.id
    async with db.session() as s:
        tickets = (await s.execute(select(Ticket))).scalars().all()
    assert len(tickets) == 1
    assert tickets[0].priority.name == "urgent" and tickets[0].data == {"angry": True}


async def test_a_second_claimer_is_told_who_has_it(db: Database) -> None:
    ada, bob = await _agent(db, "Ada"), await _agent(db, "Bob")
    rec = await actions.record_inbound(db, dm())
    ticket = await actions.escalate(db, rec.conversation_id, queue="support")
    await actions.claim(db, ticket.id, ada.id)
    with pytest.raises(AlreadyClaimed, match="already claimed by Ada"):
        await actions.claim(db, ticket.id, bob.id)
    # Claiming what you already hold is harmless.
    assert (await actions.claim(db, ticket.id, ada.id)).assignee_id == ada.id


async def test_only_the_holder_replies_and_invalid_transitions_name_the_state(db: Database) -> None:
    ada, bob = await _agent(db, "Ada"), await _agent(db, "Bob")
    rec = await actions.record_inbound(db, dm())
    ticket = await actions.escalate(db, rec.conversation_id, queue="support")
    with pytest.raises(InvalidTransition, match="the ticket is queued"):
        await actions.agent_reply(db, ticket.id, ada.id, "hi")
    await actions.claim(db, ticket.id, ada.id)
    with pytest.raises(NotAllowed, match="held by Ada"):
        await actions.agent_reply(db, ticket.id, bob.id, "hi")
    await actions.resolve(db, ticket.id, ada.id)
    with pytest.raises(InvalidTransition, match="the ticket is resolved") as info:
        await actions.claim(db, ticket.id, bob.id)
    assert info.value.current_state == "resolved"
    with pytest.raises(InvalidTransition, match="resolved"):
        await actions.hand_back(db, ticket.id, ada.id)


async def test_while_an_agent_holds_it_the_bot_is_silent_and_messages_land_on_the_ticket(db: Database) -> None:
    ada = await _agent(db)
    rec = await actions.record_inbound(db, dm())
    ticket = await actions.escalate(db, rec.conversation_id, queue="support")
    await actions.claim(db, ticket.id, ada.id)
    follow_up = await actions.record_inbound(db, dm("any news?"))
    assert follow_up.ticket_id == ticket.id
    assert await actions.bot_reply(db, rec.conversation_id, "Hi! How can I help?") is None
    # After the hand-back the bot speaks again.
    await actions.hand_back(db, ticket.id, ada.id)
    assert (await _conversation(db, rec.conversation_id)).status == ConversationStatus.bot
    message = await actions.bot_reply(db, rec.conversation_id, "I'm back: anything else?")
    assert message is not None and message.author == Author.bot


async def test_the_queue_notice_goes_out_once_per_ticket(db: Database) -> None:
    rec = await actions.record_inbound(db, dm())
    await actions.escalate(db, rec.conversation_id, queue="support")
    first = await actions.send_queue_notice(db, rec.conversation_id, "You're in the queue.")
    second = await actions.send_queue_notice(db, rec.conversation_id, "You're in the queue.")
    assert first is not None and second is None


async def test_notes_are_internal_and_reassign_is_for_admins(db: Database) -> None:
    ada, bob, boss = await _agent(db, "Ada"), await _agent(db, "Bob"), await _agent(db, "Boss", role="admin")
    rec = await actions.record_inbound(db, dm())
    ticket = await actions.escalate(db, rec.conversation_id, queue="sales")
    note = await actions.add_note(db, ticket.id, bob.id, "VIP customer, be nice")
    async with db.session() as s:
        assert (await s.execute(select(OutboxItem).where(OutboxItem.message_id == note.id))).first() is None
    with pytest.raises(NotAllowed, match="only an admin"):
        await actions.reassign(db, ticket.id, ada.id, by_agent_id=bob.id)
    moved = await actions.reassign(db, ticket.id, ada.id, by_agent_id=boss.id)
    assert moved.assignee_id == ada.id and moved.status == TicketStatus.assigned
    assert await _events(db, ticket.id) == ["escalated", "note", "reassigned"]


async def test_a_public_complaint_follows_the_customer_into_their_dm(db: Database) -> None:
    public = await actions.record_inbound(db, mention("@brand worst service ever", sender="222", handle="carol"))
    ticket = await actions.escalate(db, public.conversation_id, queue="support", priority="high")
    private = await actions.record_inbound(db, dm("here is my order number 98765", sender="222", handle="carol"))
    assert private.moved_ticket_id == ticket.id and private.ticket_id == ticket.id
    async with db.session() as s:
        t = await s.get(Ticket, ticket.id)
        texts = (await s.execute(select(Message.text).where(Message.ticket_id == ticket.id).order_by(Message.id))).scalars().all()
    assert t is not None and t.conversation_id == private.conversation_id
    assert texts == ["@brand worst service ever", "here is my order number 98765"]
    assert (await _conversation(db, private.conversation_id)).status == ConversationStatus.queued
    assert "moved_to_dm" in await _events(db, ticket.id)


async def test_public_replies_keep_to_280_characters(db: Database) -> None:
    ada = await _agent(db)
    public = await actions.record_inbound(db, mention("@brand help", msg_id="9001"))
    ticket = await actions.escalate(db, public.conversation_id, queue="support")
    await actions.claim(db, ticket.id, ada.id)
    with pytest.raises(ValueError, match="at most 280"):
        await actions.agent_reply(db, ticket.id, ada.id, "x" * 281)
    reply = await actions.agent_reply(db, ticket.id, ada.id, "We're on it: please DM us.")
    async with db.session() as s:
        outbox = (await s.execute(select(OutboxItem).where(OutboxItem.message_id == reply.id))).scalar_one()
    assert outbox.target == {"kind": "reply", "in_reply_to": "9001"}
