"""Messages Frontdesk sends first to an event's registrants: reminders, and notices of a changed or cancelled event.

Each message is queued through the outbox (`queue_outbound`) under an idempotency key that names what it is
for (a registration and a reminder offset; an event's new fingerprint and a registration).  The key is looked
for under the registration's row lock before anything is written, so two workers, or one restarted halfway,
queue each message once; the outbox then delivers it once.

The words come from the caller (`compose`): the store does not phrase anything (bot/event_reminders.py does).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.actions._common import queue_outbound
from storage.actions.registrations import _lock_event
from storage.db import Database
from storage.errors import InvalidText, PublicReplyNotAllowed
from storage.models import (
    Author,
    ChannelCursor,
    Contact,
    Conversation,
    ConversationKind,
    EventRegistration,
    OutboxItem,
    utcnow,
)

log = logging.getLogger(__name__)

# (public conversation?, the contact's handle) -> the text to send
Compose = Callable[[bool, str], str]
# (the transaction, a contact id) -> whether the contact asked for no outreach
OptedOut = Callable[[AsyncSession, int], Awaitable[bool]]
_KEY_BATCH = 500  # idempotency keys per IN (…) when looking for what is already queued
_FINGERPRINT_PREFIX = "event_fingerprint:"


class Queued(str, enum.Enum):
    queued = "queued"
    already = "already"  # the key is in the outbox: queued before (by this worker or another)
    not_registered = "not_registered"  # cancelled meanwhile
    skipped = "skipped"  # no conversation to send on, or the contact asked for no outreach
    refused = "refused"  # the channel would refuse it (a public thread X takes no reply in)


@dataclass(frozen=True)
class Registrant:
    registration_id: int
    contact_id: int
    created_at: datetime


async def registrants(db: Database, event_key: str) -> list[Registrant]:
    """The event's current registrations, oldest first."""
    async with db.session() as session:
        rows = await session.execute(
            select(EventRegistration.id, EventRegistration.contact_id, EventRegistration.created_at)
            .where(EventRegistration.event_key == event_key, EventRegistration.status == "registered")
            .order_by(EventRegistration.id)
        )
        return [Registrant(r.id, r.contact_id, r.created_at) for r in rows]


async def queued_keys(db: Database, keys: Sequence[str]) -> set[str]:
    """Which of `keys` are already in the outbox (a cheap filter before the locked check)."""
    found: set[str] = set()
    async with db.session() as session:
        for start in range(0, len(keys), _KEY_BATCH):
            batch = list(keys[start:start + _KEY_BATCH])
            rows = await session.execute(select(OutboxItem.idempotency_key).where(
                OutboxItem.idempotency_key.in_(batch)))  # type: ignore[attr-defined]
            found.update(rows.scalars().all())
    return found


async def queue_for_registration(
    db: Database,
    registration_id: int,
    *,
    key: str,
    compose: Compose,
    cancel: bool = False,
    skip_contact: OptedOut | None = None,
) -> Queued:
    """Queue one message to a registrant on the conversation they registered from, once per `key`.

    `cancel`: the registration is cancelled in the same transaction (the event was called off).
    `skip_contact(session, contact_id)`: an awaitable saying the contact wants no outreach.
    """
    async with db.transaction() as session:
        registration = (await session.execute(
            select(EventRegistration).where(EventRegistration.id == registration_id).with_for_update()
        )).scalar_one_or_none()
        if registration is None or registration.status != "registered":
            return Queued.not_registered
        if (await session.execute(select(OutboxItem.id).where(OutboxItem.idempotency_key == key))).first():
            return Queued.already
        if cancel:
            registration.status = "cancelled"
            registration.updated_at = utcnow()
        if skip_contact is not None and await skip_contact(session, registration.contact_id):
            return Queued.skipped
        conversation = await _conversation_of(session, registration)
        contact = await session.get(Contact, registration.contact_id)
        if conversation is None or contact is None:
            log.info("registration %s: no conversation to send on; skipped", registration_id)
            return Queued.skipped
        text = compose(conversation.kind == ConversationKind.public, contact.handle)
        try:
            await queue_outbound(
                session, conversation, contact_user_id=contact.platform_user_id, text=text, author=Author.bot,
                ticket_id=None, idempotency_key=key,
            )
        except (PublicReplyNotAllowed, InvalidText) as exc:
            # Nothing to write but the cancellation: X would refuse the reply, or the text does not fit.
            log.info("registration %s: not sent on conversation %s: %s", registration_id, conversation.id, exc)
            return Queued.refused
        return Queued.queued


async def _conversation_of(session: AsyncSession, registration: EventRegistration) -> Conversation | None:
    if registration.conversation_id is not None:
        found = await session.get(Conversation, registration.conversation_id)
        if found is not None:
            return found
    # Registered before the conversation was kept (or it was erased): the contact's latest one.
    return (await session.execute(
        select(Conversation).where(Conversation.contact_id == registration.contact_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(1)  # type: ignore[attr-defined]
    )).scalars().first()


# --- an event's fingerprint: what registrants were last told about it ------------------------------------


async def stored_fingerprint(db: Database, event_key: str) -> str | None:
    async with db.session() as session:
        return (await session.execute(select(ChannelCursor.value).where(
            ChannelCursor.name == _FINGERPRINT_PREFIX + event_key))).scalar_one_or_none()


async def store_fingerprint(db: Database, event_key: str, fingerprint: str, *, only_if_absent: bool = False) -> bool:
    """Remember what registrants know of the event; `only_if_absent`: only on first sight.  True if written.

    Kept among the channel cursors (a name → value table that already survives restarts).  One event's
    writers are serialised (an advisory lock on PostgreSQL, SQLite's write lock), so a first sight by two
    workers at once writes once.
    """
    name = _FINGERPRINT_PREFIX + event_key
    async with db.transaction() as session:
        await _lock_event(session, event_key)
        row = await session.get(ChannelCursor, name, with_for_update=True)
        if row is None:
            session.add(ChannelCursor(name=name, value=fingerprint, updated_at=utcnow()))
            return True
        if only_if_absent or row.value == fingerprint:
            return False
        row.value = fingerprint
        row.updated_at = utcnow()
        return True
