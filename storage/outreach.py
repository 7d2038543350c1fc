"""Consent to announcements, read side: who opted out, who opted in (docs/outbound.md#consent).

A contact holds two times, `outreach_opt_in_at` and `outreach_opt_out_at`; the later one is the contact's
current answer.  Every part that sends a message the customer did not ask for (announcements, event
reminders) asks `opted_out_in` first, and again just before the send.  The writes are
`storage/actions/consent.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import Contact


def opted_out_clause(contact: Any = Contact) -> Any:
    """SQL: the contact said stop, and not "keep me posted" (or registered) since."""
    return and_(
        contact.outreach_opt_out_at.is_not(None),
        or_(contact.outreach_opt_in_at.is_(None), contact.outreach_opt_out_at >= contact.outreach_opt_in_at),
    )


def opted_in_clause(contact: Any = Contact) -> Any:
    """SQL: the contact asked to be kept posted (or registered for an event), and has not said stop since."""
    return and_(
        contact.outreach_opt_in_at.is_not(None),
        or_(contact.outreach_opt_out_at.is_(None), contact.outreach_opt_in_at > contact.outreach_opt_out_at),
    )


def is_opted_out(opt_in_at: datetime | None, opt_out_at: datetime | None) -> bool:
    """The same rule on loaded values."""
    return opt_out_at is not None and (opt_in_at is None or opt_out_at >= opt_in_at)


_OPTED_OUT = select(Contact.id).where(Contact.id == bindparam("contact_id"), opted_out_clause())


async def opted_out_in(session: AsyncSession, contact_id: int) -> bool:
    """Whether the contact opted out of announcements and reminders: send them nothing they did not ask for.

    The one check every sender of unrequested messages uses (announcements, event reminders), inside the
    caller's transaction.  An unknown contact is not opted out (there is nobody to send to anyway).
    """
    return (await session.execute(_OPTED_OUT, {"contact_id": contact_id})).first() is not None


async def opted_out(db: Database, contact_id: int) -> bool:
    """`opted_out_in` in its own read."""
    async with db.session() as session:
        return await opted_out_in(session, contact_id)
