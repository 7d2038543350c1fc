"""The DM poller: every direct message customers send the brand, exactly once.

`GET /2/dm_events` has no `since_id`: it lists the account's events newest first (its own sent DMs
included).  A poll pages back until it meets an event at or below the newest id already seen (event ids
grow with time), records what is newer oldest first, then stores the newest id seen as the cursor.
Recording before moving the cursor makes a crash repeat rather than lose; `record_inbound` de-duplicates
by event id.  The brand's own messages (sender = brand) are skipped.
"""

from __future__ import annotations

from typing import Any

from bot.channels.x.api import parse_time
from bot.channels.x.convert import DM_EVENT_FIELDS, USER_FIELDS, dm_from_v2, users_by_id
from bot.channels.x.poller import Poller
from storage.cursors import get_cursor, set_cursor


class DmPoller(Poller):
    """`GET /2/dm_events`; cursor `x:<brand id>:dms:newest_event_id`."""

    kind = "dms"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("cursor_name") is None:
            self.cursor_name = f"x:{self.brand_id}:dms:newest_event_id"

    async def poll_once(self) -> int:
        seen = await get_cursor(self.db, self.cursor_name)
        seen_id = int(seen) if seen else None
        cutoff = self._first_run_cutoff(seen)
        fresh: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        newest: int | None = None
        token: str | None = None
        caught_up = False
        while not caught_up:
            result = await self._get(
                "get_direct_message_events",
                event_types="MessageCreate",
                dm_event_fields=DM_EVENT_FIELDS,
                expansions=["sender_id"],
                user_fields=USER_FIELDS,
                max_results=self.page_size,
                pagination_token=token,
            )
            page = result.body.get("data") or []
            users.update(users_by_id(result.body))
            for event in page:
                event_id = int(event["id"])
                newest = event_id if newest is None else max(newest, event_id)
                if seen_id is not None and event_id <= seen_id:
                    caught_up = True
                    break
                created = parse_time(event.get("created_at"))
                if cutoff is not None and created is not None and created < cutoff:
                    caught_up = True  # first start: the rest is older than the backfill window
                    break
                fresh.append(event)
            token = (result.body.get("meta") or {}).get("next_token")
            if not token or not page:
                break
        fresh.sort(key=lambda e: int(e["id"]))
        messages = [m for m in (dm_from_v2(e, users, self.brand_id) for e in fresh) if m is not None]
        new = await self._record_all(messages)
        if newest is not None and (seen_id is None or newest > seen_id):
            await set_cursor(self.db, self.cursor_name, str(newest))
        return new
