"""What the spike detector counts (bot/spikes.py): one small function per kind of key.

A source takes a session and the windows of one check and returns, per key, one count per window (oldest
first, the current window last) and, where a key has a broader one, its parent.  A new kind of key (e.g.
a listening rule's matches) is one more function here, added to `SOURCES`.

Counts are inbound customer messages (not notes, not the brand's own) by the time they were recorded, by
the NLU's intent (an agent's correction wins) and by the router's category; a message not parsed yet is
counted from the next check on.  One GROUP BY per window keeps what comes back small whatever the volume.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.spikes import Windows
from storage.models import Author, Direction, ListeningItem, Message, MessageKind


@dataclass
class Counts:
    series: dict[str, list[int]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, index: int, width: int, count: int) -> None:
        self.series.setdefault(key, [0] * width)[index] += count

    def merge(self, other: Counts) -> None:
        self.series.update(other.series)
        self.parents.update(other.parents)


Source = Callable[[AsyncSession, Windows], Awaitable[Counts]]


async def _by_intent_and_category(session: AsyncSession, windows: Windows) -> list[tuple[int, str | None, str | None, int]]:
    """(window index, intent, category, count) of inbound customer messages in each window."""
    intent = func.coalesce(Message.corrected_intent, Message.intent)
    starts = [*windows.baseline_starts, windows.current_start]
    rows: list[tuple[int, str | None, str | None, int]] = []
    for index, start in enumerate(starts):
        end = windows.now if index == len(starts) - 1 else start + windows.window
        found = await session.execute(
            select(intent, Message.category, func.count())
            .where(
                Message.direction == Direction.inbound,
                Message.author == Author.customer,
                Message.kind == MessageKind.message,
                Message.created_at >= start,
                Message.created_at < end,
                intent.is_not(None),
            )
            .group_by(intent, Message.category)
        )
        rows.extend((index, i, c, int(n)) for i, c, n in found.all())
    return rows


async def intent_counts(session: AsyncSession, windows: Windows) -> Counts:
    """`intent:<name>` per NLU intent (e.g. `intent:payment_failed`); its category is its parent."""
    counts, width = Counts(), len(windows.baseline_starts) + 1
    for index, intent, category, n in await _by_intent_and_category(session, windows):
        counts.add(f"intent:{intent}", index, width, n)
        if category:
            counts.parents[f"intent:{intent}"] = f"category:{category}"
    return counts


async def category_counts(session: AsyncSession, windows: Windows) -> Counts:
    """`category:<name>` per routing category (support, sales, ...): a burst spread over several intents."""
    counts, width = Counts(), len(windows.baseline_starts) + 1
    for index, _intent, category, n in await _by_intent_and_category(session, windows):
        if category:
            counts.add(f"category:{category}", index, width, n)
    return counts


async def rule_counts(session: AsyncSession, windows: Windows) -> Counts:
    """`rule:<name>` per listening rule (docs/listening.md): posts it found, by when they were posted.

    By the post's time, not when it was found: a rule's first search brings up to 7 days of posts at once,
    which by their finding time would be one false spike.
    """
    counts, width = Counts(), len(windows.baseline_starts) + 1
    starts = [*windows.baseline_starts, windows.current_start]
    for index, start in enumerate(starts):
        end = windows.now if index == len(starts) - 1 else start + windows.window
        found = await session.execute(
            select(ListeningItem.rule, func.count())
            .where(ListeningItem.posted_at >= start, ListeningItem.posted_at < end)
            .group_by(ListeningItem.rule)
        )
        for rule, n in found.all():
            counts.add(f"rule:{rule}", index, width, int(n))
    return counts


SOURCES: tuple[Source, ...] = (intent_counts, category_counts, rule_counts)


async def count_all(session: AsyncSession, windows: Windows, sources: tuple[Source, ...] = SOURCES) -> Counts:
    total = Counts()
    for source in sources:
        total.merge(await source(session, windows))
    return total
