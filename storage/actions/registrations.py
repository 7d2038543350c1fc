"""Event registrations made by the bot: idempotent, within the event's capacity, with cancellation.

`register_in` decides the outcome itself (registered, already registered, full) so that the bot only
phrases it: the capacity check and the insert happen under one lock per event, so two customers taking
the last seat at once from two workers cannot both get it.
"""

from __future__ import annotations

import enum

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.actions._common import dialect_name, insert_ignoring_conflict
from storage.db import Database
from storage.models import EventRegistration, utcnow


class RegistrationOutcome(str, enum.Enum):
    registered = "registered"  # newly registered (or back after a cancellation)
    already = "already"  # was registered before: nothing changed
    full = "full"  # the event has no seat left: nothing changed


async def register(
    db: Database, contact_id: int, event_key: str, *, capacity: int = 0, conversation_id: int | None = None
) -> RegistrationOutcome:
    """Register the contact for the event (`capacity` 0: unlimited).  Registering twice changes nothing.

    `conversation_id`: where the customer registered; reminders and notices go back there.
    """
    async with db.transaction() as session:
        return await register_in(session, contact_id, event_key, capacity=capacity, conversation_id=conversation_id)


async def register_in(
    session: AsyncSession, contact_id: int, event_key: str, *, capacity: int = 0,
    conversation_id: int | None = None,
) -> RegistrationOutcome:
    """`register` inside the caller's transaction."""
    if capacity:
        await _lock_event(session, event_key)
    existing = await _registration_for_update(session, contact_id, event_key)
    if existing is not None and existing.status == "registered":
        return RegistrationOutcome.already
    if capacity and await _seats_taken(session, event_key) >= capacity:
        return RegistrationOutcome.full
    now = utcnow()
    if existing is not None:  # cancelled before: registered again (reminders go where they asked this time)
        existing.status = "registered"
        existing.updated_at = now
        existing.conversation_id = conversation_id or existing.conversation_id
        return RegistrationOutcome.registered
    new_id = await insert_ignoring_conflict(
        session,
        EventRegistration,
        {"event_key": event_key, "contact_id": contact_id, "status": "registered",
         "conversation_id": conversation_id, "created_at": now, "updated_at": now},
        ["event_key", "contact_id"],
    )
    # No id: the same contact registered in a concurrent transaction just now (no capacity lock was taken).
    return RegistrationOutcome.registered if new_id is not None else RegistrationOutcome.already


async def cancel(db: Database, contact_id: int, event_key: str) -> bool:
    """Cancel a registration; False if there was none to cancel."""
    async with db.transaction() as session:
        return await cancel_in(session, contact_id, event_key)


async def cancel_in(session: AsyncSession, contact_id: int, event_key: str) -> bool:
    """`cancel` inside the caller's transaction."""
    row = await _registration_for_update(session, contact_id, event_key)
    if row is None or row.status == "cancelled":
        return False
    row.status = "cancelled"
    row.updated_at = utcnow()
    return True


async def registrations_for(db: Database, event_key: str) -> list[EventRegistration]:
    async with db.session() as session:
        rows = await session.execute(
            select(EventRegistration).where(
                EventRegistration.event_key == event_key, EventRegistration.status == "registered"
            )
        )
        return list(rows.scalars().all())


_REGISTERED_EVENTS = select(EventRegistration.event_key).where(
    EventRegistration.contact_id == bindparam("contact_id"),
    EventRegistration.status == "registered",
)


async def registered_events_in(session: AsyncSession, contact_id: int) -> frozenset[str]:
    """The keys of the events the contact is registered for."""
    keys = (await session.execute(_REGISTERED_EVENTS, {"contact_id": contact_id})).scalars().all()
    return frozenset(keys)


async def _lock_event(session: AsyncSession, event_key: str) -> None:
    """Serialise registrations for one event until the transaction ends.

    Events live in content (no row to lock), so PostgreSQL takes a transaction advisory lock on the key's
    hash; SQLite's write transactions (BEGIN IMMEDIATE) are already one at a time.
    """
    if dialect_name(session) == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"frontdesk.event:{event_key}"}
        )


async def _registration_for_update(
    session: AsyncSession, contact_id: int, event_key: str
) -> EventRegistration | None:
    return (
        await session.execute(
            select(EventRegistration)
            .where(EventRegistration.event_key == event_key, EventRegistration.contact_id == contact_id)
            .with_for_update()
        )
    ).scalar_one_or_none()


async def _seats_taken(session: AsyncSession, event_key: str) -> int:
    query = select(func.count()).select_from(EventRegistration).where(
        EventRegistration.event_key == event_key, EventRegistration.status == "registered"
    )
    return int((await session.execute(query)).scalar_one())
