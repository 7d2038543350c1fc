"""Channel cursors: where each poller got to, persisted so a restart neither repeats nor loses messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timezone

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


# A channel's sending paused by the platform's rate limit: `send_paused:<channel>:<what>` -> the Unix time
# sending resumes.  Written by the sender when a window is used up, read by the desk's banner; a pause
# whose time has passed is over (nothing to clear).
_PAUSE_PREFIX = "send_paused:"


@dataclass(frozen=True)
class SendPause:
    channel: str
    what: str  # e.g. "direct messages", "public replies"
    resumes_at: datetime


async def set_send_pause(db: Database, channel: str, what: str, resumes_at_ts: float) -> None:
    await set_cursor(db, f"{_PAUSE_PREFIX}{channel}:{what}", f"{resumes_at_ts:.0f}")


async def active_send_pauses(db: Database, *, now: datetime | None = None) -> list[SendPause]:
    """The pauses still running, soonest to end first."""
    moment = now or utcnow()
    async with db.session() as session:
        rows = await session.execute(
            select(ChannelCursor.name, ChannelCursor.value).where(  # type: ignore[call-overload]
                ChannelCursor.name.startswith(_PAUSE_PREFIX)  # type: ignore[attr-defined]
            )
        )
        pauses = []
        for name, value in rows.all():
            channel, _, what = name[len(_PAUSE_PREFIX) :].partition(":")
            try:
                resumes = datetime.fromtimestamp(float(value), tz=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
            if resumes > moment:
                pauses.append(SendPause(channel, what, resumes))
    return sorted(pauses, key=lambda p: p.resumes_at)
