"""The ticket lifecycle.  Each function is one state change in one transaction: the row, its audit
event and any outbound message are written together or not at all.

    bot ──escalate──▶ queued ──claim──▶ agent ──resolve──▶ resolved ──customer writes──▶ bot
                        │                 │ └──hand back──▶ bot
                        └──── resolve / hand back ────────▶
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core import metrics
from frontdesk.core.vocabulary import TICKET_SUBJECT_MAX_CHARS
from storage.actions._common import (
    agent_actor,
    audit,
    get_agent,
    get_for_update,
    insert_ignoring_conflict,
    queue_outbound,
)
from storage.actions.csat import CsatPolicy, ask_after_resolve_in
from storage.db import Database
from storage.errors import AlreadyClaimed, InvalidTransition, NotAllowed, NotFound, PublicReplyNotAllowed
from storage.models import (
    AgentRole,
    Author,
    Contact,
    Conversation,
    ConversationKind,
    ConversationStatus,
    Direction,
    Message,
    MessageKind,
    Priority,
    Queue,
    Ticket,
    TicketStatus,
    utcnow,
)
from storage.text import validate_text


async def escalate(
    db: Database,
    conversation_id: int,
    *,
    queue: Queue | str,
    priority: Priority | str = Priority.normal,
    category: str = "other",
    subject: str = "",
    reason: str = "",
    data: dict[str, Any] | None = None,
    actor: str = "bot",
    notice_text: str | None = None,
) -> Ticket:
    """Open a ticket for the conversation, or return the one already open (idempotent).

    A repeated escalation never opens a second ticket; it may raise the priority and adds what it
    learnt to the ticket's data.  `notice_text`, if given, is sent to the customer once, with the ticket.
    """
    async with db.transaction() as session:
        return await escalate_in(
            session, conversation_id, queue=queue, priority=priority, category=category, subject=subject,
            reason=reason, data=data, actor=actor, notice_text=notice_text,
        )


async def escalate_in(
    session: AsyncSession,
    conversation_id: int,
    *,
    queue: Queue | str,
    priority: Priority | str = Priority.normal,
    category: str = "other",
    subject: str = "",
    reason: str = "",
    data: dict[str, Any] | None = None,
    actor: str = "bot",
    notice_text: str | None = None,
) -> Ticket:
    """`escalate` inside the caller's transaction (the bot worker applies a whole decision in one)."""
    queue = Queue(queue)
    priority = Priority.from_name(priority) if isinstance(priority, str) else Priority(priority)
    now = utcnow()
    conversation = await get_for_update(session, Conversation, conversation_id)
    ticket = await _open_ticket(session, conversation_id)
    created = False
    if ticket is None:
        ticket_id = await insert_ignoring_conflict(
            session,
            Ticket,
            {
                "conversation_id": conversation_id,
                "open_conversation_id": conversation_id,
                "contact_id": conversation.contact_id,
                "queue": queue,
                "status": TicketStatus.queued,
                "priority": priority,
                "category": category,
                "subject": subject[:TICKET_SUBJECT_MAX_CHARS],
                "data": data or {},
                "queued_note_sent": False,
                "created_at": now,
                "updated_at": now,
            },
            ["open_conversation_id"],
        )
        ticket = await _open_ticket(session, conversation_id)
        assert ticket is not None
        created = ticket_id is not None
    if created:
        await _attach_current_round(session, ticket)
        conversation.status = ConversationStatus.queued
        conversation.updated_at = now
        audit(session, ticket, "escalated", actor=actor, detail={"queue": queue.value, "reason": reason})
        if notice_text:
            contact = await session.get(Contact, conversation.contact_id)
            assert contact is not None
            try:
                await queue_outbound(
                    session,
                    conversation,
                    contact_user_id=contact.platform_user_id,
                    text=notice_text,
                    author=Author.bot,
                    ticket_id=ticket.id,
                    idempotency_key=f"ticket:{ticket.id}:escalation-notice",
                )
            except PublicReplyNotAllowed as refusal:  # refused before anything of it was written
                # X would refuse it: say so on the ticket (the desk shows why) rather than send it to fail.
                audit(session, ticket, "public_reply_withheld", actor=actor, detail={"reason": str(refusal)})
    else:
        changed: dict[str, Any] = {}
        if priority < ticket.priority:
            changed["priority"] = priority.name
            ticket.priority = priority
        if data:
            ticket.data = {**ticket.data, **data}
        if changed or data:
            ticket.updated_at = now
            audit(session, ticket, "updated", actor=actor, detail={**changed, "reason": reason})
    return ticket

async def _open_ticket(session: AsyncSession, conversation_id: int) -> Ticket | None:
    return (
        await session.execute(select(Ticket).where(Ticket.open_conversation_id == conversation_id).with_for_update())
    ).scalar_one_or_none()

async def _attach_current_round(session: AsyncSession, ticket: Ticket) -> None:
    """The agent sees what led here: this round's messages (since the last ticket closed) join the ticket."""
    last_closed = (
        await session.execute(
            select(func.max(Message.id)).where(
                Message.conversation_id == ticket.conversation_id,
                Message.ticket_id.is_not(None),  # type: ignore[union-attr]
                Message.ticket_id != ticket.id,
            )
        )
    ).scalar_one_or_none()
    await session.execute(
        update(Message)
        .where(
            Message.conversation_id == ticket.conversation_id,
            Message.ticket_id.is_(None),  # type: ignore[union-attr]
            Message.id > (last_closed or 0),
        )
        .values(ticket_id=ticket.id)
    )

async def claim(db: Database, ticket_id: int, agent_id: int) -> Ticket:
    """Take a queued ticket.  Exactly one of many concurrent claimers wins; the others get
    `AlreadyClaimed` naming the holder.  Claiming a ticket you already hold is a no-op."""
    ticket = await _claim(db, ticket_id, agent_id)
    metrics.ticket_claimed(_queue_name(ticket))
    return ticket


async def _claim(db: Database, ticket_id: int, agent_id: int) -> Ticket:
    now = utcnow()
    async with db.transaction() as session:
        agent = await get_agent(session, agent_id)
        if not agent.active:
            raise NotAllowed(f"agent {agent.email} is disabled")
        # One atomic compare-and-set: the WHERE clause is re-checked under the row lock.
        won = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.queued)
            .values(status=TicketStatus.assigned, assignee_id=agent_id, updated_at=now)
            .returning(Ticket.id)
        )
        if won.scalar_one_or_none() is None:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                raise NotFound("Ticket", ticket_id)
            if ticket.status == TicketStatus.assigned:
                if ticket.assignee_id == agent_id:
                    return ticket
                holder = await session.get(type(agent), ticket.assignee_id)
                raise AlreadyClaimed(holder.name if holder else "someone", ticket.assignee_id)
            raise InvalidTransition("claim", ticket.status.value)
        ticket = await get_for_update(session, Ticket, ticket_id)
        await session.refresh(ticket)
        await session.execute(
            update(Conversation)
            .where(Conversation.id == ticket.conversation_id)
            .values(status=ConversationStatus.agent, updated_at=now)
        )
        audit(session, ticket, "claimed", actor=agent_actor(agent_id), agent_id=agent_id)
        return ticket

async def _ticket_held_by(session: AsyncSession, ticket_id: int, agent_id: int, action: str) -> Ticket:
    ticket = await get_for_update(session, Ticket, ticket_id)
    if ticket.status != TicketStatus.assigned:
        raise InvalidTransition(action, ticket.status.value)
    if ticket.assignee_id != agent_id:
        agent = await get_agent(session, agent_id)
        if agent.role != AgentRole.admin:
            holder = await get_agent(session, ticket.assignee_id) if ticket.assignee_id else None
            raise NotAllowed(
                f"cannot {action}: ticket {ticket_id} is held by {holder.name if holder else 'another agent'}; "
                "claim it first or ask an admin to reassign it"
            )
    return ticket

async def agent_reply(db: Database, ticket_id: int, agent_id: int, text: str) -> Message:
    """The holder's reply: a message on the ticket and an outbox row for the customer's channel."""
    text = validate_text(text, allow_empty=False)
    waited_s: float | None = None  # set when this is the ticket's first response
    async with db.transaction() as session:
        ticket = await _ticket_held_by(session, ticket_id, agent_id, "reply")
        conversation = await get_for_update(session, Conversation, ticket.conversation_id)
        contact = await session.get(Contact, ticket.contact_id)
        assert contact is not None
        message = await queue_outbound(
            session,
            conversation,
            contact_user_id=contact.platform_user_id,
            text=text,
            author=Author.agent,
            agent_id=agent_id,
            ticket_id=ticket.id,
        )
        now = utcnow()
        if ticket.first_response_at is None:
            ticket.first_response_at = now
            # SQLite hands timestamps back naive (they are stored in UTC).
            created = ticket.created_at if ticket.created_at.tzinfo else ticket.created_at.replace(tzinfo=UTC)
            waited_s = (now - created).total_seconds()
        ticket.updated_at = now
        audit(
            session, ticket, "replied", actor=agent_actor(agent_id), agent_id=agent_id,
            detail={"message_id": message.id},
        )
    if waited_s is not None:  # counted once committed
        metrics.first_response(_queue_name(ticket), waited_s)
    return message

async def add_note(db: Database, ticket_id: int, agent_id: int, text: str) -> Message:
    """An internal note: visible to agents only, never sent."""
    text = validate_text(text, allow_empty=False)
    async with db.transaction() as session:
        ticket = await get_for_update(session, Ticket, ticket_id)
        agent = await get_agent(session, agent_id)
        if not agent.active:
            raise NotAllowed(f"agent {agent.email} is disabled")
        now = utcnow()
        message = Message(
            conversation_id=ticket.conversation_id,
            ticket_id=ticket.id,
            channel=(await session.get(Conversation, ticket.conversation_id)).channel,  # type: ignore[union-attr]
            direction=Direction.outbound,
            author=Author.agent,
            kind=MessageKind.note,
            agent_id=agent_id,
            text=text,
            entities=[],
            created_at=now,
            handled_at=now,  # nothing for the bot to do with it (storage.models.Message.handled_at)
        )
        session.add(message)
        await session.flush()
        audit(session, ticket, "note", actor=agent_actor(agent_id), agent_id=agent_id, detail={"message_id": message.id})
        return message

async def hand_back(db: Database, ticket_id: int, agent_id: int) -> Ticket:
    """Give the conversation back to the bot; the ticket closes as `handed_back`."""
    ticket = await _close(db, ticket_id, agent_id, TicketStatus.handed_back, ConversationStatus.bot, "hand back")
    metrics.ticket_resolved(_queue_name(ticket), "handed_back")
    return ticket

async def resolve(db: Database, ticket_id: int, agent_id: int | None, *, csat: CsatPolicy | None = None) -> Ticket:
    """Close the ticket; the customer's next message starts a new round with the bot.

    With `csat`, the satisfaction question is decided (and queued) in the same transaction (actions/csat.py).
    """
    ticket = await _close(
        db, ticket_id, agent_id, TicketStatus.resolved, ConversationStatus.resolved, "resolve", csat=csat
    )
    metrics.ticket_resolved(_queue_name(ticket), "resolved")
    return ticket

async def _close(
    db: Database,
    ticket_id: int,
    agent_id: int | None,
    ticket_status: TicketStatus,
    conversation_status: ConversationStatus,
    action: str,
    *,
    csat: CsatPolicy | None = None,
) -> Ticket:
    async with db.transaction() as session:
        return await close_in(session, ticket_id, agent_id, ticket_status, conversation_status, action, csat=csat)


async def close_in(
    session: AsyncSession,
    ticket_id: int,
    agent_id: int | None,
    ticket_status: TicketStatus,
    conversation_status: ConversationStatus,
    action: str,
    *,
    check_holder: bool = True,
    detail: dict[str, Any] | None = None,
    csat: CsatPolicy | None = None,
) -> Ticket:
    """`resolve` / `hand_back` inside the caller's transaction.  `check_holder=False`: the caller has
    already decided the agent may close tickets others hold (an incident's resolution).  With `csat`, a
    resolved ticket's satisfaction question is decided (and queued) here too (actions/csat.py)."""
    now = utcnow()
    ticket = await get_for_update(session, Ticket, ticket_id)
    if not ticket.status.is_open:
        raise InvalidTransition(action, ticket.status.value)
    if check_holder and ticket.status == TicketStatus.assigned and agent_id is not None:
        await _ticket_held_by(session, ticket_id, agent_id, action)
    ticket.status = ticket_status
    ticket.open_conversation_id = None
    ticket.updated_at = now
    if ticket_status == TicketStatus.resolved:
        ticket.resolved_at = now
    await session.execute(
        update(Conversation)
        .where(Conversation.id == ticket.conversation_id)
        .values(status=conversation_status, bot_state={}, updated_at=now)
    )
    audit(
        session,
        ticket,
        ticket_status.value,
        actor=agent_actor(agent_id) if agent_id else "system",
        agent_id=agent_id,
        detail=detail,
    )
    if ticket_status == TicketStatus.resolved:
        await ask_after_resolve_in(session, ticket, csat, now)
    return ticket

async def reassign(db: Database, ticket_id: int, to_agent_id: int, *, by_agent_id: int) -> Ticket:
    """An admin moves an open ticket to another agent."""
    now = utcnow()
    async with db.transaction() as session:
        admin = await get_agent(session, by_agent_id)
        if admin.role != AgentRole.admin:
            raise NotAllowed("only an admin can reassign tickets")
        target = await get_agent(session, to_agent_id)
        if not target.active:
            raise NotAllowed(f"agent {target.email} is disabled")
        ticket = await get_for_update(session, Ticket, ticket_id)
        if not ticket.status.is_open:
            raise InvalidTransition("reassign", ticket.status.value)
        previous = ticket.assignee_id
        ticket.status = TicketStatus.assigned
        ticket.assignee_id = to_agent_id
        ticket.updated_at = now
        await session.execute(
            update(Conversation)
            .where(Conversation.id == ticket.conversation_id)
            .values(status=ConversationStatus.agent, updated_at=now)
        )
        audit(
            session, ticket, "reassigned", actor=agent_actor(by_agent_id), agent_id=by_agent_id,
            detail={"from_agent_id": previous, "to_agent_id": to_agent_id},
        )
        return ticket

async def move_to_queue(db: Database, ticket_id: int, queue: Queue, *, agent_id: int) -> Ticket:
    """An agent says the ticket belongs in another queue; its holder (if any) keeps it.

    A held ticket is moved by its holder or an admin.  Moving to the queue it is in changes nothing.  The
    move is a label too: `frontdesk nlu retrain` learns that the ticket's opening message is this queue's.
    """
    async with db.transaction() as session:
        ticket = await get_for_update(session, Ticket, ticket_id)
        if not ticket.status.is_open:
            raise InvalidTransition("move", ticket.status.value)
        if ticket.queue == queue:
            return ticket
        if ticket.status == TicketStatus.assigned and ticket.assignee_id != agent_id:
            mover = await get_agent(session, agent_id)
            if mover.role != AgentRole.admin:
                raise NotAllowed("this ticket is held by another agent: they or an admin can move it")
        previous = ticket.queue
        ticket.queue = queue
        ticket.updated_at = utcnow()
        audit(
            session, ticket, "moved", actor=agent_actor(agent_id), agent_id=agent_id,
            detail={"from": previous.value, "to": queue.value},
        )
        return ticket


async def correct_intent(db: Database, message_id: int, intent: str, *, agent_id: int) -> Message:
    """An agent says what a customer message really meant; exported later as training data."""
    async with db.transaction() as session:
        message = await get_for_update(session, Message, message_id)
        if message.author != Author.customer:
            raise NotAllowed("only customer messages have an intent to correct")
        previous = message.corrected_intent or message.intent
        message.corrected_intent = intent
        if message.ticket_id is not None:
            ticket = await session.get(Ticket, message.ticket_id)
            assert ticket is not None
            audit(
                session, ticket, "intent_corrected", actor=agent_actor(agent_id), agent_id=agent_id,
                detail={"message_id": message_id, "from": previous, "to": intent},
            )
        return message

async def bot_reply(
    db: Database, conversation_id: int, text: str, *, idempotency_key: str | None = None
) -> Message | None:
    """The bot's answer, queued for delivery — only while the conversation is in the bot's hands.

    Returns None (and sends nothing) if an agent took the conversation meanwhile.  The idempotency key
    (e.g. "answer:<inbound message id>") makes a retried handler send its answer once.
    """
    async with db.transaction() as session:
        return await bot_reply_in(session, conversation_id, text, idempotency_key=idempotency_key)


async def bot_reply_in(
    session: AsyncSession,
    conversation_id: int,
    text: str,
    *,
    idempotency_key: str | None = None,
    check_queued: bool = True,
) -> Message | None:
    """`bot_reply` inside the caller's transaction.

    `check_queued=False` skips looking for an earlier row with the same key: for a caller whose key can
    only exist if this very transaction's work was already committed (the router worker, which marks the
    message handled in the same transaction).  The key's UNIQUE index still refuses a duplicate.
    """
    text = validate_text(text, allow_empty=False)
    conversation = await get_for_update(session, Conversation, conversation_id)
    if conversation.status != ConversationStatus.bot:
        return None
    if idempotency_key and check_queued and await _already_queued(session, idempotency_key):
        return None
    if conversation.kind == ConversationKind.dm:
        recipient = conversation.platform_ref  # a DM conversation is keyed by the customer's user id
    else:
        contact = await session.get(Contact, conversation.contact_id)
        assert contact is not None
        recipient = contact.platform_user_id
    return await queue_outbound(
        session, conversation, contact_user_id=recipient, text=text,
        author=Author.bot, ticket_id=None, idempotency_key=idempotency_key,
    )

async def send_queue_notice(db: Database, conversation_id: int, text: str) -> Message | None:
    """The one "you're in the queue" note a waiting customer may get per ticket; None if already sent."""
    async with db.transaction() as session:
        return await send_queue_notice_in(session, conversation_id, text)


async def send_queue_notice_in(session: AsyncSession, conversation_id: int, text: str) -> Message | None:
    """`send_queue_notice` inside the caller's transaction."""
    text = validate_text(text, allow_empty=False)
    conversation = await get_for_update(session, Conversation, conversation_id)
    if conversation.status != ConversationStatus.queued:
        return None
    ticket = await _open_ticket(session, conversation_id)
    if ticket is None or ticket.queued_note_sent:
        return None
    ticket.queued_note_sent = True
    if conversation.kind == ConversationKind.public and await _bot_replied_on(session, conversation, ticket):
        return None
    contact = await session.get(Contact, conversation.contact_id)
    assert contact is not None
    try:
        return await queue_outbound(
            session, conversation, contact_user_id=contact.platform_user_id, text=text,
            author=Author.bot, ticket_id=ticket.id, idempotency_key=f"ticket:{ticket.id}:queue-notice",
        )
    except PublicReplyNotAllowed:  # X would refuse it (the ticket already says why); nothing was written
        return None

async def _bot_replied_on(session: AsyncSession, conversation: Conversation, ticket: Ticket) -> bool:
    """A public thread gets at most one public reply from the bot per ticket (the rest is for people).

    The escalation notice is that reply: a second public "you're in the queue" under the customer's next
    post is noise to everyone who reads the thread.
    """
    replied = (
        await session.execute(
            select(Message.id).where(
                Message.ticket_id == ticket.id,
                Message.conversation_id == conversation.id,
                Message.direction == Direction.outbound,
                Message.author == Author.bot,
                Message.kind == MessageKind.message,
            ).limit(1)
        )
    ).first()
    return replied is not None


async def _already_queued(session: AsyncSession, idempotency_key: str) -> bool:
    from storage.models import OutboxItem

    return (
        await session.execute(select(OutboxItem.id).where(OutboxItem.idempotency_key == idempotency_key))
    ).first() is not None

async def update_bot_state(db: Database, conversation_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into what the bot remembers about this round (None values delete keys)."""
    async with db.transaction() as session:
        return await update_bot_state_in(session, conversation_id, changes)


async def update_bot_state_in(session: AsyncSession, conversation_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """`update_bot_state` inside the caller's transaction."""
    conversation = await get_for_update(session, Conversation, conversation_id)
    state = dict(conversation.bot_state)
    for key, value in changes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    conversation.bot_state = state
    return state

__all__ = [
    "add_note",
    "agent_reply",
    "bot_reply",
    "bot_reply_in",
    "claim",
    "correct_intent",
    "escalate",
    "escalate_in",
    "hand_back",
    "reassign",
    "resolve",
    "send_queue_notice",
    "send_queue_notice_in",
    "update_bot_state",
    "update_bot_state_in",
]


def _queue_name(ticket: Ticket) -> str:
    return str(getattr(ticket.queue, "value", ticket.queue))
