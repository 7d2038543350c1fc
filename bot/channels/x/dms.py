"""The DM poller: every direct message customers send the brand, exactly once.

`GET /2/dm_events` has no `since_id`: it lists the account's events newest first (its own sent DMs
included).  A poll pages back until it meets an event at or below the newest id already seen (event ids
grow with time), records what is newer oldest first, then stores the newest id seen as the cursor.
Recording before moving the cursor makes a crash repeat rather than lose; `record_inbound_many` de-duplicates
by event id.  The brand's own messages (sender = brand) are skipped.  As with mentions, a 429 or 5xx
while paging keeps what was fetched and the next poll resumes from the same page token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.channels.x.api import parse_time
from bot.channels.x.convert import DM_EVENT_FIELDS, USER_FIELDS, dm_from_v2, users_by_id
from bot.channels.x.poller import Poller
from storage.cursors import get_cursor, set_cursor


@dataclass
class _Scan:
    seen_id: int | None
    cutoff: datetime | None
    token: str | None = None
    newest: int | None = None
    fresh: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


class DmPoller(Poller):
    """`GET /2/dm_events`; cursor `x:<brand id>:dms:newest_event_id`."""

    kind = "dms"

    cursor_suffix = "newest_event_id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfinished: _Scan | None = None

    async def poll_once(self) -> int:
        seen = await get_cursor(self.db, self.cursor_name)
        seen_id = int(seen) if seen else None
        scan = self._unfinished
        if scan is None or scan.seen_id != seen_id:
            scan = _Scan(seen_id, self._first_run_cutoff(seen))
        self._unfinished = None
        try:
            await self._fetch(scan)
        except BaseException:
            self._unfinished = scan
            raise
        fresh = sorted(scan.fresh, key=lambda e: int(e["id"]))
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
            scan.users.update(users_by_id(result.body))
            for event in page:
                event_id = int(event["id"])
                scan.newest = event_id if scan.newest is None else max(scan.newest, event_id)
                if scan.seen_id is not None and event_id <= scan.seen_id:
                    return  # caught up with what an earlier poll recorded
                created = parse_time(event.get("created_at"))
                if scan.cutoff is not None and created is not None and created < scan.cutoff:
                    return  # first start: the rest is older than the backfill window
                scan.fresh.append(event)
            scan.token = (result.body.get("meta") or {}).get("next_token")
            if not scan.token or not page:
                return
