"""Channel cursors: where each poller got to, persisted so a restart neither repeats nor loses messages."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from storage.actions._common import dialect_name
from storage.db import Database
from storage.models import ChannelCursor, utcnow


async def get_cursor(db: Database, name: str) -> str | None:
    async with db.session() as session:
        return (
            await session.execute(select(ChannelCursor.value).where(ChannelCursor.name == name))
        ).scalar_one_or_none()


async def get_cursor_with_time(db: Database, name: str) -> tuple[str, datetime] | None:
    """The cursor's value and when it was last written (UTC), or None when there is none."""
    async with db.session() as session:
        row = (
            await session.execute(
                select(ChannelCursor.value, ChannelCursor.updated_at).where(ChannelCursor.name == name)
            )
        ).one_or_none()
    if row is None:
        return None
    value, updated_at = row
    return value, updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=timezone.utc)


async def set_cursor(db: Database, name: str, value: str) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    async with db.transaction() as session:
        insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        stmt = insert(ChannelCursor.__table__).values(name=name, value=value, updated_at=utcnow())
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
        )
        await session.execute(stmt)
