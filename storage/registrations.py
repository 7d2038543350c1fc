"""Event registrations made by the bot: idempotent, with cancellation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.actions._common import insert_ignoring_conflict
from storage.db import Database
from storage.models import EventRegistration, utcnow


async def register(db: Database, contact_id: int, event_key: str) -> tuple[EventRegistration, bool]:
    """Register the contact; returns (registration, newly_registered).  Registering twice changes nothing."""
    async with db.transaction() as session:
        return await register_in(session, contact_id, event_key)


async def register_in(session: AsyncSession, contact_id: int, event_key: str) -> tuple[EventRegistration, bool]:
    """`register` inside the caller's transaction."""
    now = utcnow()
    new_id = await insert_ignoring_conflict(
        session,
        EventRegistration,
        {"event_key": event_key, "contact_id": contact_id, "status": "registered", "created_at": now,
         "updated_at": now},
        ["event_key", "contact_id"],
    )
    row = (
        await session.execute(
            select(EventRegistration)
            .where(EventRegistration.event_key == event_key, EventRegistration.contact_id == contact_id)
            .with_for_update()
        )
    ).scalar_one()
    if new_id is None and row.status == "cancelled":
        row.status = "registered"
        row.updated_at = now
        return row, True
    return row, new_id is not None


async def cancel(db: Database, contact_id: int, event_key: str) -> bool:
    """Cancel a registration; False if there was none to cancel."""
    async with db.transaction() as session:
        return await cancel_in(session, contact_id, event_key)


async def cancel_in(session: AsyncSession, contact_id: int, event_key: str) -> bool:
    """`cancel` inside the caller's transaction."""
    row = (
        await session.execute(
            select(EventRegistration)
            .where(EventRegistration.event_key == event_key, EventRegistration.contact_id == contact_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.status == "cancelled":
        return False
    row.status = "cancelled"
    row.updated_at = utcnow()
    return True


async def registrations_for(db: Database, event_key: str) -> list[EventRegistration]:
    async with db.session() as session:
        return await registrations_for_in(session, event_key)


async def registrations_for_in(session: AsyncSession, event_key: str) -> list[EventRegistration]:
    return list(
        (
            await session.execute(
                select(EventRegistration).where(
                    EventRegistration.event_key == event_key, EventRegistration.status == "registered"
                )
            )
        )
        .scalars()
        .all()
    )
