"""The DM poller: every direct message customers send the brand, exactly once.

`GET /2/dm_events` has no `since_id`: it lists the account's events newest first (its own sent DMs
included).  Real X can list an event only after newer ones are already listed (it keeps its id and send
time; a recorded exchange in tweepy's cassettes shows the list empty right after two sends), so stopping
at the newest id already seen would lose it for good.  A poll therefore pages back past that id by an
overlap: until it meets an event both at or below the cursor and sent more than `overlap_s`
(FRONTDESK_X_DM_OVERLAP_S) before now.  Events already stored are dropped by event id (one lookup per
poll), the rest are recorded oldest first, then the newest id seen becomes the cursor.  Recording before
moving the cursor makes a crash repeat rather than lose.  The brand's own messages (sender = brand) are
skipped.  A page without events can still carry a `next_token` (X filters after fetching): paging goes
on while X gives one.  As with mentions, a 429 or 5xx while paging keeps what was fetched and the next
poll resumes from the same page token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.channels.x.api import parse_time
from bot.channels.x.convert import DM_EVENT_FIELDS, USER_FIELDS, dm_from_v2, users_by_id
from bot.channels.x.poller import MAX_PAGES_PER_POLL, PagingUnfinished, Poller
from storage.cursors import get_cursor, set_cursor
from storage.models import Channel, Message

DEFAULT_OVERLAP_S = 120.0


@dataclass
class _Scan:
    seen_id: int | None
    cutoff: datetime | None
    overlap_from: datetime  # events listed at or below the cursor but sent after this are read again
    token: str | None = None
    pages: int = 0
    newest: int | None = None
    fresh: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


class DmPoller(Poller):
    """`GET /2/dm_events`; cursor `x:<brand id>:dms:newest_event_id`."""

    kind = "dms"

    cursor_suffix = "newest_event_id"

    def __init__(self, *args: Any, overlap_s: float = DEFAULT_OVERLAP_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.overlap_s = max(0.0, overlap_s)
        self._unfinished: _Scan | None = None

    async def poll_once(self) -> int:
        seen = await get_cursor(self.db, self.cursor_name)
        seen_id = int(seen) if seen else None
        scan = self._unfinished
        if scan is None or scan.seen_id != seen_id:
            overlap_from = datetime.now(UTC) - timedelta(seconds=self.overlap_s)
            scan = _Scan(seen_id, self._first_run_cutoff(seen), overlap_from)
        self._unfinished = None
        try:
            await self._fetch(scan)
        except BaseException:
            self._unfinished = scan
            raise
        known = await self._already_stored([str(e["id"]) for e in scan.fresh if _at_or_below(e, scan.seen_id)])
        fresh = sorted((e for e in scan.fresh if str(e["id"]) not in known), key=lambda e: int(e["id"]))
        messages = [m for m in (dm_from_v2(e, scan.users, self.brand_id) for e in fresh) if m is not None]
        new = await self._record_all(messages)
        if scan.newest is not None and (seen_id is None or scan.newest > seen_id):
            await set_cursor(self.db, self.cursor_name, str(scan.newest))
        return new

    async def _fetch(self, scan: _Scan) -> None:
        while True:
            result = await self._get(
                "get_direct_message_events",
                event_types="MessageCreate",
                dm_event_fields=DM_EVENT_FIELDS,
                expansions=["sender_id"],
                user_fields=USER_FIELDS,
                max_results=self.page_size,
                pagination_token=scan.token,
            )
            page = result.body.get("data") or []
            scan.pages += 1
            scan.users.update(users_by_id(result.body))
            for event in page:
                event_id = int(event["id"])
                scan.newest = event_id if scan.newest is None else max(scan.newest, event_id)
                created = parse_time(event.get("created_at"))
                if scan.seen_id is not None and event_id <= scan.seen_id:
                    if created is None or created < scan.overlap_from:
                        return  # caught up with what an earlier poll recorded, overlap included
                if scan.cutoff is not None and created is not None and created < scan.cutoff:
                    return  # first start: the rest is older than the backfill window
                scan.fresh.append(event)
            scan.token = (result.body.get("meta") or {}).get("next_token")
            if not scan.token:
                return
            if scan.pages >= MAX_PAGES_PER_POLL:
                raise PagingUnfinished(self.kind)

    async def _already_stored(self, event_ids: list[str]) -> set[str]:
        """Which of the overlap's events are already in the store (the others were listed late)."""
        if not event_ids:
            return set()
        async with self.db.session() as session:
            rows = await session.execute(
                select(Message.platform_message_id).where(  # type: ignore[call-overload]
                    Message.channel == Channel.x,
                    Message.platform_message_id.in_(event_ids),  # type: ignore[union-attr]
                )
            )
            return {str(r) for r in rows.scalars().all()}


def _at_or_below(event: dict[str, Any], seen_id: int | None) -> bool:
    return seen_id is not None and int(event["id"]) <= seen_id
