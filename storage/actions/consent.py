"""Consent to announcements, write side: opting in and out (docs/outbound.md#consent).

The store decides the outcome (new, or already so) and the bot phrases it: a second "stop" changes
nothing and gets no second confirmation.  A "stop" holds for every contact an agent linked as the same
person (storage/customers.py): whoever said stop on Telegram gets no announcement on X either.
"""

from __future__ import annotations

import enum

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.actions._common import get_for_update
from storage.customers import person_of
from storage.db import Database
from storage.models import Contact, utcnow
from storage.outreach import is_opted_out


class ConsentOutcome(str, enum.Enum):
    changed = "changed"  # the contact's answer is new: confirm it once
    already = "already"  # they had said so before: nothing changed, nothing to confirm


async def opt_out(db: Database, contact_id: int) -> ConsentOutcome:
    async with db.transaction() as session:
        return await opt_out_in(session, contact_id)


async def opt_out_in(session: AsyncSession, contact_id: int) -> ConsentOutcome:
    """The contact (and every contact linked as the same person) gets no announcements from now on."""
    contact = await get_for_update(session, Contact, contact_id)
    if is_opted_out(contact.outreach_opt_in_at, contact.outreach_opt_out_at):
        return ConsentOutcome.already
    now = utcnow()
    group = await person_of(session, contact_id)
    await session.execute(update(Contact).where(col(Contact.id).in_(group)).values(outreach_opt_out_at=now))
    contact.outreach_opt_out_at = now
    return ConsentOutcome.changed


async def opt_in(db: Database, contact_id: int) -> ConsentOutcome:
    async with db.transaction() as session:
        return await opt_in_in(session, contact_id)


async def opt_in_in(session: AsyncSession, contact_id: int) -> ConsentOutcome:
    """The contact asked to be kept posted (or registered for an event): announcements may reach them.

    Only this contact: consent given on one channel is not assumed for another.
    """
    contact = await get_for_update(session, Contact, contact_id)
    opted_in = contact.outreach_opt_in_at is not None and not is_opted_out(
        contact.outreach_opt_in_at, contact.outreach_opt_out_at
    )
    if opted_in:
        return ConsentOutcome.already
    contact.outreach_opt_in_at = utcnow()
    return ConsentOutcome.changed
