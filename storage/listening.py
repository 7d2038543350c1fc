"""Reading the listening stream: the items a rule found, filtered and paged, and counts per time window.

The state changes (recording items, note, dismiss, ticket, reply) are in ``storage/actions/listening.py``.
`counts_per_window` is what a spike detector over listening rules reads (how many items a rule found in
each of the last N windows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Direction, ListeningEvent, ListeningItem, Message

PAGE_MAX = 100


@dataclass(frozen=True)
class ListeningFilter:
    rule: str | None = None
    category: str | None = None
    sentiment: str | None = None
    status: str | None = None


async def known_post_ids(db: Database, post_ids: Iterable[str]) -> set[str]:
    """Which of `post_ids` are stored already (the poller classifies only the others)."""
    ids = list(dict.fromkeys(post_ids))
    if not ids:
        return set()
    async with db.session() as session:
        rows = await session.execute(
            select(ListeningItem.platform_post_id).where(ListeningItem.platform_post_id.in_(ids))  # type: ignore[attr-defined]
        )
        return {str(r) for r in rows.scalars()}


async def brand_post_ids(db: Database, post_ids: Iterable[str]) -> set[str]:
    """Which of `post_ids` are posts the brand made through Frontdesk (a post quoting one addressed the brand)."""
    ids = list(dict.fromkeys(post_ids))
    if not ids:
        return set()
    async with db.session() as session:
        rows = await session.execute(
            select(Message.platform_message_id).where(
                Message.direction == Direction.outbound,
                Message.platform_message_id.in_(ids),  # type: ignore[union-attr]
            )
        )
        return {str(r) for r in rows.scalars()}


async def list_items(
    db: Database, where: ListeningFilter = ListeningFilter(), *, before_id: int | None = None, limit: int = 50
) -> list[ListeningItem]:
    """Newest first (by id), at most `limit` (≤ PAGE_MAX); `before_id` pages on from the last one seen."""
    limit = max(1, min(limit, PAGE_MAX))
    stmt = select(ListeningItem).order_by(ListeningItem.id.desc()).limit(limit)  # type: ignore[union-attr]
    for column, value in (
        (ListeningItem.rule, where.rule), (ListeningItem.category, where.category),
        (ListeningItem.sentiment, where.sentiment), (ListeningItem.status, where.status),
    ):
        if value:
            stmt = stmt.where(column == value)
    if before_id is not None:
        stmt = stmt.where(ListeningItem.id < before_id)  # type: ignore[operator]
    async with db.session() as session:
        return list((await session.execute(stmt)).scalars().all())


async def get_item(db: Database, item_id: int) -> ListeningItem | None:
    async with db.session() as session:
        return await session.get(ListeningItem, item_id)


async def item_events(db: Database, item_id: int) -> list[ListeningEvent]:
    async with db.session() as session:
        stmt = select(ListeningEvent).where(ListeningEvent.item_id == item_id).order_by(ListeningEvent.id)  # type: ignore[arg-type]
        return list((await session.execute(stmt)).scalars().all())


async def counts_per_window(
    db: Database, rule: str, *, window: timedelta, windows: int, now: datetime | None = None,
    sentiment: str | None = None,
) -> list[int]:
    """How many items `rule` found in each of the last `windows` windows of length `window`, oldest first
    (the last entry is the window ending `now`), by the post's time; optionally only one `sentiment`.

    For spike detection: compare the last entry with the ones before it.
    """
    if windows < 1 or window <= timedelta(0):
        raise ValueError("windows must be ≥ 1 and window > 0")
    end = (now or datetime.now(UTC)).astimezone(UTC)
    start = end - window * windows
    stmt = select(ListeningItem.posted_at).where(
        ListeningItem.rule == rule, ListeningItem.posted_at > start, ListeningItem.posted_at <= end  # type: ignore[operator]
    )
    if sentiment:
        stmt = stmt.where(ListeningItem.sentiment == sentiment)
    counts = [0] * windows
    async with db.session() as session:
        for posted in (await session.execute(stmt)).scalars():
            posted = posted if posted.tzinfo else posted.replace(tzinfo=UTC)  # SQLite answers naive UTC
            index = int((posted - start) / window)
            counts[min(max(index, 0), windows - 1)] += 1
    return counts


async def count_by_rule(db: Database) -> dict[str, int]:
    """Items per rule (all time): the filter's counts on the Listening page."""
    async with db.session() as session:
        rows = await session.execute(select(ListeningItem.rule, func.count()).group_by(ListeningItem.rule))
        return {rule: int(n) for rule, n in rows.all()}
