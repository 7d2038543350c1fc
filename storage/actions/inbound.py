"""Recording what customers write: the first thing that happens to every inbound message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from storage.actions._common import (
    audit,
    get_for_update,
    insert_ignoring_conflict,
    insert_many_ignoring_conflict,
)
from storage.actions.csat import STATE_KEY as CSAT_STATE_KEY
from storage.db import Database
from storage.models import (
    Author,
    Channel,
    Contact,
    Conversation,
    ConversationKind,
    ConversationStatus,
    Direction,
    Message,
    Ticket,
    TicketStatus,
    utcnow,
)
from storage.text import validate_text

_INBOUND_CACHE = "frontdesk_inbound"  # session.info key: contacts and conversations met in this transaction
_OPEN_TICKETS = "open_tickets"  # in that cache, after `_prefetch`: conversation id -> its open ticket's id
_PREFETCHED_CONVERSATIONS = "prefetched"  # ... the conversations `_prefetch` looked up
_PUBLIC_TICKET_CONTACTS = "public_ticket_contacts"  # ... contacts with an open ticket on a public thread


@dataclass(frozen=True)
class InboundMessage:
    """A customer's message as every channel reports it, before anything else is done with it."""

    channel: Channel
    conversation_kind: ConversationKind
    conversation_ref: str  # X DM: the customer's user id; public: the thread root id; Telegram: chat id
    sender_id: str
    text: str
    platform_message_id: str
    sender_handle: str = ""
    sender_name: str = ""
    in_reply_to_platform_id: str | None = None
    platform_created_at: datetime | None = None
    # X posts: whether the author @mentioned the brand or quoted one of its posts (X lets the brand reply only
    # under such a post); None where the channel does not say.
    summons_brand: bool | None = None
    # An edited X post: the other ids of its edit chain.  The store then updates the message it already has
    # instead of recording a second one (the customer changed their words, not wrote again).
    other_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recorded:
    message_id: int
    conversation_id: int
    contact_id: int  # the message's author; the conversation's owner may be someone else (a public thread)
    is_new: bool
    ticket_id: int | None = None
    moved_ticket_id: int | None = None  # a public ticket that followed the customer into this DM
    extra: dict[str, Any] = field(default_factory=dict)


async def record_inbound(db: Database, inbound: InboundMessage) -> Recorded:
    """Store an inbound message exactly once; `is_new` is False for a message seen before.

    In the same transaction: the contact and conversation are created or refreshed, a resolved
    conversation starts a new round with the bot, the message joins the open ticket if there is one, and a
    first DM from a customer whose public complaint is waiting moves that ticket into the DM.
    """
    text = validate_text(inbound.text, allow_empty=True)
    async with db.transaction(urgent=True) as session:
        return await _record(session, inbound, text, utcnow())


async def record_inbound_many(db: Database, messages: Sequence[InboundMessage]) -> list[Recorded]:
    """`record_inbound` for a whole page (a poll's worth of DMs or mentions) in ONE transaction.

    Same de-duplication as one at a time, in order: results line up with `messages`, and a message seen
    before (or earlier in the same page) comes back with `is_new=False`.  Every text is validated before
    anything is written, so a bad one raises `InvalidText` and records nothing.  One commit per page
    instead of per message is what lets ingest keep up with a busy account.
    """
    texts = [validate_text(m.text, allow_empty=True) for m in messages]
    if not messages:
        return []
    now = utcnow()
    async with db.transaction(urgent=True) as session:
        if len(messages) == 1:
            return [await _record(session, messages[0], texts[0], now)]
        await _prefetch(session, messages)
        if any(m.other_versions for m in messages):  # an edit changes a stored message: one at a time
            return [await _record(session, inbound, text, now) for inbound, text in zip(messages, texts)]
        return await _record_page(session, messages, texts, now)


async def _record_page(
    session: AsyncSession, messages: Sequence[InboundMessage], texts: Sequence[str], now: datetime
) -> list[Recorded]:
    """`_record` for a page of new posts, with its messages written by multi-row INSERTs (50 rows each).

    Contacts and conversations first (the prefetch has most of them), then the INSERT, then what each
    message leads to, in page order.  A repeat inside the page loses to its first occurrence, as it
    would one at a time.  Ids still follow page order, which is the order the bot handles them in.
    """
    senders = []
    for inbound in messages:
        contact_id = await _upsert_contact(session, inbound, now)
        senders.append((contact_id, await _get_or_create_conversation(session, inbound, contact_id, now)))
    rows = [_message_row(inbound, text, contact_id, conversation.id, now)
            for inbound, text, (contact_id, conversation) in zip(messages, texts, senders)]
    inserted = {
        (row.channel, row.platform_message_id): row.id
        for row in await insert_many_ignoring_conflict(
            session, Message, rows, ["channel", "platform_message_id"],
            returning=("id", "channel", "platform_message_id"),
        )
    }
    return [
        await _after_insert(
            session, inbound, contact_id, conversation,
            inserted.pop((inbound.channel, inbound.platform_message_id), None), now,  # pop: a repeat finds none
        )
        for inbound, (contact_id, conversation) in zip(messages, senders)
    ]


def _message_row(inbound: InboundMessage, text: str, contact_id: int, conversation_id: int | None,
                 now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "channel": inbound.channel,
        "direction": Direction.inbound,
        "author": Author.customer,
        # The sender, who is not always the conversation's customer: anyone may reply in a public thread.
        "contact_id": contact_id,
        "kind": "message",
        "text": text,
        "platform_message_id": inbound.platform_message_id,
        "in_reply_to_platform_id": inbound.in_reply_to_platform_id,
        "summons_brand": inbound.summons_brand,
        "platform_created_at": inbound.platform_created_at,
        "entities": [],
        "created_at": now,
    }


async def _prefetch(session: AsyncSession, messages: Sequence[InboundMessage]) -> None:
    """Look up a page's contacts, conversations and open tickets in two queries instead of four per message.

    `_record` then finds them in the transaction's cache and only writes.  What the page itself changes
    (a public ticket following its customer into a DM) `_record` keeps up to date in the same cache.
    """
    known: dict[Any, Any] = session.info.setdefault(_INBOUND_CACHE, {})
    contact_keys = {(m.channel, m.sender_id) for m in messages}
    # Each contact with whether an open ticket of theirs waits on a public thread (a DM then picks it up).
    has_public_ticket = (
        select(Ticket.id)
        .join(Conversation, Conversation.id == Ticket.conversation_id)
        .where(
            Ticket.contact_id == Contact.id,
            Ticket.open_conversation_id.is_not(None),  # type: ignore[union-attr]
            Conversation.kind == ConversationKind.public,
        )
        .exists()
    )
    contact_rows = (
        await session.execute(
            select(Contact, has_public_ticket).where(
                tuple_(Contact.channel, Contact.platform_user_id).in_(list(contact_keys))
            )
        )
    ).all()
    for contact, _ in contact_rows:
        known[("contact", contact.channel, contact.platform_user_id)] = contact
    known[_PUBLIC_TICKET_CONTACTS] = {contact.id for contact, waiting in contact_rows if waiting}
    # Each conversation with its open ticket's id, if it has one.
    conversation_keys = {(m.channel, m.conversation_kind, m.conversation_ref) for m in messages}
    conversation_rows = (
        await session.execute(
            select(Conversation, Ticket.id)
            .outerjoin(Ticket, Ticket.open_conversation_id == Conversation.id)
            .where(
                tuple_(Conversation.channel, Conversation.kind, Conversation.platform_ref).in_(list(conversation_keys))
            )
        )
    ).all()
    for conversation, _ in conversation_rows:
        known[("conversation", conversation.channel, conversation.kind, conversation.platform_ref)] = conversation
    known[_PREFETCHED_CONVERSATIONS] = {conversation.id for conversation, _ in conversation_rows}
    known[_OPEN_TICKETS] = {conversation.id: ticket_id for conversation, ticket_id in conversation_rows if ticket_id}


async def _record(session: AsyncSession, inbound: InboundMessage, text: str, now: datetime) -> Recorded:
    if inbound.other_versions:
        edited = await _apply_edit(session, inbound, text, now)
        if edited is not None:
            return edited
    contact_id = await _upsert_contact(session, inbound, now)
    conversation = await _get_or_create_conversation(session, inbound, contact_id, now)
    message_id = await insert_ignoring_conflict(
        session, Message, _message_row(inbound, text, contact_id, conversation.id, now),
        ["channel", "platform_message_id"],
    )
    return await _after_insert(session, inbound, contact_id, conversation, message_id, now)


async def _after_insert(
    session: AsyncSession, inbound: InboundMessage, contact_id: int, conversation: Conversation,
    message_id: int | None, now: datetime,
) -> Recorded:
    """What recording a message leads to once its row is written (`message_id`), or found to exist (None)."""
    if message_id is None:
        existing = (
            await session.execute(
                select(Message.id, Message.ticket_id).where(
                    Message.channel == inbound.channel,
                    Message.platform_message_id == inbound.platform_message_id,
                )
            )
        ).one()
        return Recorded(existing.id, conversation.id, contact_id, is_new=False, ticket_id=existing.ticket_id)

    if conversation.status == ConversationStatus.resolved:
        conversation = await get_for_update(session, Conversation, conversation.id)  # re-read under the lock
        if conversation.status == ConversationStatus.resolved:
            conversation.status = ConversationStatus.bot
            # A new round forgets the last one, except the satisfaction question this message may answer.
            csat = conversation.bot_state.get(CSAT_STATE_KEY)
            conversation.bot_state = {CSAT_STATE_KEY: csat} if csat else {}
            conversation.updated_at = now
    moved_ticket_id = None
    known: dict[Any, Any] = session.info.setdefault(_INBOUND_CACHE, {})
    public_ticket_contacts: set[int] | None = known.get(_PUBLIC_TICKET_CONTACTS)
    if conversation.kind == ConversationKind.dm and conversation.status == ConversationStatus.bot and (
        public_ticket_contacts is None or contact_id in public_ticket_contacts
    ):
        moved_ticket_id = await _follow_public_ticket_into_dm(session, conversation, contact_id, now)
        if moved_ticket_id is not None and public_ticket_contacts is not None:
            public_ticket_contacts.discard(contact_id)
            known[_OPEN_TICKETS][conversation.id] = moved_ticket_id
    ticket_id = await _open_ticket_id(session, conversation.id)
    if ticket_id is not None:
        await session.execute(update(Message).where(Message.id == message_id).values(ticket_id=ticket_id))
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(updated_at=now))
    return Recorded(
        message_id, conversation.id, contact_id, is_new=True, ticket_id=ticket_id, moved_ticket_id=moved_ticket_id
    )


async def _apply_edit(session: AsyncSession, inbound: InboundMessage, text: str, now: datetime) -> Recorded | None:
    """An edited post whose earlier version is stored: that message takes the new text (and id), no new one.

    The message keeps its place (ticket, handled or not): a message not yet handled is answered with the
    new words, one already answered is not answered again.  The stored id becomes the newest version's, so
    a reply goes under the text the customer now shows and a repeat of this edit is recognised; an older
    version arriving late (pages can come out of order) changes nothing.  Returns None when no version of
    the post is stored: then it is recorded as a new message.
    """
    chain = [*inbound.other_versions, inbound.platform_message_id]
    message = (
        await session.execute(
            select(Message)
            .where(Message.channel == inbound.channel, Message.platform_message_id.in_(chain))  # type: ignore[union-attr]
            .order_by(Message.id)
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if message is None:
        return None
    assert message.id is not None and message.platform_message_id is not None
    recorded = Recorded(
        message.id, message.conversation_id, message.contact_id or 0, is_new=False, ticket_id=message.ticket_id
    )
    if int(inbound.platform_message_id) <= int(message.platform_message_id):
        return recorded  # this version, or an older one, is already what the store holds
    previous_id = message.platform_message_id
    message.text = text
    message.platform_message_id = inbound.platform_message_id
    if inbound.summons_brand is not None:
        message.summons_brand = inbound.summons_brand
    if message.ticket_id is not None:
        ticket = await session.get(Ticket, message.ticket_id)
        assert ticket is not None
        ticket.updated_at = now
        # Ids only: the audit trail keeps no customer text (erasure rewrites the message, not this).
        audit(
            session, ticket, "message_edited", actor="customer",
            detail={
                "reason": "the customer edited their post on X; the message shows the new text",
                "message_id": message.id, "from_platform_id": previous_id, "to_platform_id": inbound.platform_message_id,
            },
        )
    await session.flush()
    return recorded


async def _upsert_contact(session: AsyncSession, inbound: InboundMessage, now: datetime) -> int:
    # Most messages come from people we know: look first, insert only when missing (and let the database
    # decide a race between two first messages).  Within one transaction a page's repeat senders are
    # remembered.
    known: dict[Any, Any] = session.info.setdefault(_INBOUND_CACHE, {})
    key = ("contact", inbound.channel, inbound.sender_id)
    contact = known.get(key)
    if contact is None:
        contact = await _find_contact(session, inbound)
    if contact is None:
        contact_id = await insert_ignoring_conflict(
            session,
            Contact,
            {
                "channel": inbound.channel,
                "platform_user_id": inbound.sender_id,
                "handle": inbound.sender_handle,
                "display_name": inbound.sender_name,
                "created_at": now,
            },
            ["channel", "platform_user_id"],
        )
        if contact_id is not None:
            return contact_id
        contact = await _find_contact(session, inbound)
        assert contact is not None
    known[key] = contact
    # People rename themselves; keep the latest handle so agents recognise them.
    if inbound.sender_handle and contact.handle != inbound.sender_handle:
        contact.handle = inbound.sender_handle
    if inbound.sender_name and contact.display_name != inbound.sender_name:
        contact.display_name = inbound.sender_name
    assert contact.id is not None
    return contact.id


# The per-message lookups are built once with bind parameters: building a statement (and its cache key)
# on every message cost more CPU than running it.
_FIND_CONTACT = select(Contact).where(
    Contact.channel == bindparam("channel"), Contact.platform_user_id == bindparam("user_id")
)
# No row lock: recording a message into a conversation changes nothing in its row (the rare status
# changes below lock it first), so ingest never queues behind the router working on it.
_FIND_CONVERSATION = select(Conversation).where(
    Conversation.channel == bindparam("channel"),
    Conversation.kind == bindparam("kind"),
    Conversation.platform_ref == bindparam("ref"),
)
_OPEN_TICKET_ID = select(Ticket.id).where(Ticket.open_conversation_id == bindparam("conversation_id"))
_PUBLIC_TICKET_OF_CONTACT = (
    select(Ticket)
    .join(Conversation, Conversation.id == Ticket.conversation_id)
    .where(
        Ticket.contact_id == bindparam("contact_id"),
        Ticket.open_conversation_id.is_not(None),  # type: ignore[union-attr]
        Conversation.kind == ConversationKind.public,
        Conversation.channel == bindparam("channel"),
    )
    .order_by(Ticket.id.desc())  # type: ignore[union-attr]
    .limit(1)
    .with_for_update()
)


async def _find_contact(session: AsyncSession, inbound: InboundMessage) -> Contact | None:
    params = {"channel": inbound.channel, "user_id": inbound.sender_id}
    return (await session.execute(_FIND_CONTACT, params)).scalar_one_or_none()


async def _get_or_create_conversation(
    session: AsyncSession, inbound: InboundMessage, contact_id: int, now: datetime
) -> Conversation:
    known: dict[Any, Any] = session.info.setdefault(_INBOUND_CACHE, {})
    key = ("conversation", inbound.channel, inbound.conversation_kind, inbound.conversation_ref)
    conversation = known.get(key)
    if conversation is None:
        conversation = await _find_conversation(session, inbound)
    if conversation is None:
        await insert_ignoring_conflict(
            session,
            Conversation,
            {
                "contact_id": contact_id,
                "channel": inbound.channel,
                "kind": inbound.conversation_kind,
                "platform_ref": inbound.conversation_ref,
                "status": ConversationStatus.bot,
                "bot_state": {},
                "created_at": now,
                "updated_at": now,
            },
            ["channel", "kind", "platform_ref"],
        )
        conversation = await _find_conversation(session, inbound)
        assert conversation is not None
    known[key] = conversation
    return conversation


async def _find_conversation(session: AsyncSession, inbound: InboundMessage) -> Conversation | None:
    params = {"channel": inbound.channel, "kind": inbound.conversation_kind, "ref": inbound.conversation_ref}
    return (await session.execute(_FIND_CONVERSATION, params)).scalar_one_or_none()


async def _open_ticket_id(session: AsyncSession, conversation_id: int) -> int | None:
    known: dict[Any, Any] = session.info.get(_INBOUND_CACHE) or {}
    open_tickets: dict[int, int] | None = known.get(_OPEN_TICKETS)
    if open_tickets is not None:
        if conversation_id in open_tickets:
            return open_tickets[conversation_id]
        if conversation_id in known[_PREFETCHED_CONVERSATIONS]:
            return None
    return (await session.execute(_OPEN_TICKET_ID, {"conversation_id": conversation_id})).scalar_one_or_none()


async def _follow_public_ticket_into_dm(
    session: AsyncSession, dm: Conversation, contact_id: int, now: datetime
) -> int | None:
    """One story, one place: the customer we invited to DM finds their public ticket waiting here."""
    ticket = (
        await session.execute(_PUBLIC_TICKET_OF_CONTACT, {"contact_id": contact_id, "channel": dm.channel})
    ).scalar_one_or_none()
    if ticket is None:
        return None
    dm = await get_for_update(session, Conversation, dm.id)  # its status changes: lock it now
    public = await get_for_update(session, Conversation, ticket.conversation_id)
    ticket.conversation_id = dm.id
    ticket.open_conversation_id = dm.id
    ticket.updated_at = now
    dm.status = ConversationStatus.agent if ticket.status == TicketStatus.assigned else ConversationStatus.queued
    # The public thread goes back to the bot: a later, unrelated mention gets a normal answer.
    public.status = ConversationStatus.bot
    public.bot_state = {}
    audit(
        session,
        ticket,
        "moved_to_dm",
        actor="customer",
        detail={"from_conversation_id": public.id, "to_conversation_id": dm.id},
    )
    await session.flush()
    return ticket.id


async def attach_to_open_ticket_in(session: AsyncSession, message_id: int, conversation_id: int) -> None:
    """Put a message that was recorded without a ticket onto its conversation's open ticket, if any.

    Recording does not lock the conversation, so a message can commit just as the router escalates the
    conversation, too late for the escalation to see it; the router calls this when it meets such a
    message in a conversation that waits for or is held by a person, so the agent sees it on the ticket.
    """
    open_ticket = select(Ticket.id).where(Ticket.open_conversation_id == conversation_id).scalar_subquery()
    await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.ticket_id.is_(None))  # type: ignore[union-attr]
        .values(ticket_id=open_ticket)
    )


async def record_nlu_result(
    db: Database,
    message_id: int,
    *,
    intent: str | None,
    confidence: float | None,
    category: str | None,
    entities: list[dict[str, Any]] | None = None,
) -> None:
    async with db.transaction() as session:
        await record_nlu_result_in(
            session, message_id, intent=intent, confidence=confidence, category=category, entities=entities
        )


async def record_nlu_result_in(
    session: AsyncSession,
    message_id: int,
    *,
    intent: str | None,
    confidence: float | None,
    category: str | None,
    entities: list[dict[str, Any]] | None = None,
) -> None:
    """`record_nlu_result` inside the caller's transaction."""
    await session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(intent=intent, confidence=confidence, category=category, entities=entities or [])
    )


async def mark_handled(db: Database, message_id: int) -> None:
    async with db.transaction() as session:
        await mark_handled_in(session, message_id)


async def mark_handled_in(session: AsyncSession, message_id: int, *, nlu: dict[str, Any] | None = None) -> None:
    """`mark_handled` inside the caller's transaction (with the effects it closes).

    `nlu` (intent, confidence, category, entities) records the NLU result in the same statement, which is
    what the router worker does for every message.
    """
    values = handled_values(message_id, nlu)
    await session.execute(_MARK_HANDLED if nlu is None else _MARK_HANDLED_WITH_NLU, values)
    refresh_handled(session, values)


def handled_values(message_id: int, nlu: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters of marking `message_id` handled (and its NLU result, if any)."""
    values: dict[str, Any] = {"message_id": message_id, "handled_at": utcnow()}
    if nlu is not None:
        values.update(
            intent=nlu.get("intent"), confidence=nlu.get("confidence"), category=nlu.get("category"),
            entities=nlu.get("entities") or [],
        )
    return values


def refresh_handled(session: AsyncSession, values: dict[str, Any]) -> None:
    """A Core statement does not refresh a copy of the row this session may hold: do it here."""
    held = session.identity_map.get(identity_key(Message, values["message_id"]))
    if held is not None:
        for name, value in values.items():
            if name != "message_id":
                set_committed_value(held, name, value)


# Once per message, so built once: a Core UPDATE by primary key with parameters (the ORM's bulk-update
# path rebuilt and re-evaluated the statement every time).
_messages = Message.__table__  # type: ignore[attr-defined]
_MARK_HANDLED = (
    update(_messages).where(_messages.c.id == bindparam("message_id")).values(handled_at=bindparam("handled_at"))
)
_MARK_HANDLED_WITH_NLU = (
    update(_messages)
    .where(_messages.c.id == bindparam("message_id"))
    .values(
        handled_at=bindparam("handled_at"), intent=bindparam("intent"), confidence=bindparam("confidence"),
        category=bindparam("category"), entities=bindparam("entities"),
    )
)
