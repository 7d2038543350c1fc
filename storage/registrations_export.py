"""An event's registrations as CSV, for the desk's download and `frontdesk events export` (docs/outbound.md).

Registrations are personal data (docs/privacy.md): the desk lets only admins download them, and the CLI
writes its file with mode 0600.  A cell that a spreadsheet would run as a formula (one starting with
= + - @, or a tab or carriage return) is prefixed with ' so that a handle like `=HYPERLINK(…)` stays text.
"""

from __future__ import annotations

import csv
import io
from datetime import timezone

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Contact, EventRegistration

COLUMNS = ("registration_id", "event", "status", "channel", "handle", "display_name", "platform_user_id",
           "registered_at", "updated_at")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


async def has_registrations(db: Database, event_key: str) -> bool:
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(EventRegistration).where(
            EventRegistration.event_key == event_key))).scalar_one()
    return bool(count)


async def registrations_csv(db: Database, event_key: str) -> str:
    """Every registration of the event (cancelled ones too, with their status), oldest first."""
    async with db.session() as session:
        rows = (await session.execute(
            select(EventRegistration, Contact).join(Contact, Contact.id == EventRegistration.contact_id)
            .where(EventRegistration.event_key == event_key).order_by(EventRegistration.id)
        )).all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for registration, contact in rows:
        writer.writerow([safe_cell(v) for v in (
            registration.id, registration.event_key, registration.status, contact.channel.value, contact.handle,
            contact.display_name, contact.platform_user_id, _iso(registration.created_at),
            _iso(registration.updated_at),
        )])
    return out.getvalue()


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _iso(value) -> str:  # type: ignore[no-untyped-def]
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
