"""One person, several contacts: an agent links the X and the Telegram contact of the same customer.

A contact is one identity on one channel (X user id, Telegram chat); Frontdesk cannot know two of them are
the same person, so only an agent links them, by hand.  Linked contacts form a group; every member's
`person_id` names the group's lowest contact id (unlinked contacts have none), so one indexed equality
finds the whole group.  Linking and unlinking lock the contacts involved: two agents linking at once end
with one consistent group.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.actions._common import get_for_update
from storage.db import Database
from storage.models import Contact

log = logging.getLogger(__name__)


class CannotLink(ValueError):
    pass


async def person_of(session: AsyncSession, contact_id: int) -> list[int]:
    """The ids of every contact linked with this one, itself included, lowest first."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.person_id is None:
        return [contact_id]
    ids = (await session.execute(select(Contact.id).where(Contact.person_id == contact.person_id))).scalars()
    return sorted(i for i in ids if i is not None)


async def link_contacts(db: Database, contact_id: int, other_id: int) -> list[int]:
    """Link two contacts (and everyone already linked with either) as one person; returns the group's ids."""
    if contact_id == other_id:
        raise CannotLink("a contact is already the same person as itself: pick another contact")
    async with db.transaction() as session:
        for key in sorted((contact_id, other_id)):  # one lock order, so two linkers cannot deadlock
            await get_for_update(session, Contact, key)
        group = sorted(set(await person_of(session, contact_id)) | set(await person_of(session, other_id)))
        await session.execute(update(Contact).where(col(Contact.id).in_(group)).values(person_id=group[0]))
    log.info("customers: contacts %s linked as one person", ",".join(map(str, group)))
    return group


async def unlink_contact(db: Database, contact_id: int) -> None:
    """Take a contact out of its person; the others stay linked with each other."""
    async with db.transaction() as session:
        await get_for_update(session, Contact, contact_id)
        await unlink_in(session, contact_id)


async def unlink_in(session: AsyncSession, contact_id: int) -> None:
    """`unlink_contact` inside the caller's transaction (erasure unlinks whoever it erases)."""
    group = await person_of(session, contact_id)
    rest = [i for i in group if i != contact_id]
    await session.execute(update(Contact).where(Contact.id == contact_id).values(person_id=None))
    if rest:
        await session.execute(
            update(Contact).where(col(Contact.id).in_(rest)).values(person_id=rest[0] if len(rest) > 1 else None)
        )
