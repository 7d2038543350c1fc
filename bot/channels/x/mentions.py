"""The mentions poller: every tweet that @-mentions or replies to the brand, exactly once.

X has `since_id` here: each poll asks for what is newer than the newest mention already recorded, pages
(`pagination_token`) until caught up, records everything oldest first, and only then moves the cursor.  A
crash between recording and moving the cursor repeats the poll; `record_inbound` de-duplicates by tweet id,
so a repeat costs nothing and nothing is lost.  X serves only the ~800 newest mentions: more than that
between two polls cannot be fetched by anyone.
"""

from __future__ import annotations

from typing import Any

from bot.channels.x.convert import TWEET_FIELDS, USER_FIELDS, mention_from_v2, users_by_id
from bot.channels.x.api import parse_time, uses_user_auth_for_reads
from bot.channels.x.poller import Poller
from storage.cursors import get_cursor, set_cursor


class MentionsPoller(Poller):
    """`GET /2/users/:brand_id/mentions`; cursor `x:<brand id>:mentions:since_id`."""

    kind = "mentions"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("cursor_name") is None:
            self.cursor_name = f"x:{self.brand_id}:mentions:since_id"

    async def poll_once(self) -> int:
        since_id = await get_cursor(self.db, self.cursor_name)
        cutoff = self._first_run_cutoff(since_id)
        tweets: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            result = await self._get(
                "get_users_mentions",
                self.brand_id,
                since_id=since_id,
                pagination_token=token,
                max_results=self.page_size,
                tweet_fields=TWEET_FIELDS,
                expansions=["author_id"],
                user_fields=USER_FIELDS,
                user_auth=uses_user_auth_for_reads(self.client),
            )
            page = result.body.get("data") or []
            tweets.extend(page)
            users.update(users_by_id(result.body))
            token = (result.body.get("meta") or {}).get("next_token")
            if not token or not page:
                break
            oldest = parse_time(page[-1].get("created_at"))
            if cutoff is not None and oldest is not None and oldest < cutoff:
                break  # first start: the rest is older than the backfill window
        if not tweets:
            return 0
        tweets.sort(key=lambda t: int(t["id"]))
        messages = []
        for tweet in tweets:
            message = mention_from_v2(tweet, users, self.brand_id)
            if message is None:
                continue
            if cutoff is not None and message.platform_created_at and message.platform_created_at < cutoff:
                continue
            messages.append(message)
        new = await self._record_all(messages)
        # Only now, with every one of them stored, is it safe to never ask for them again.
        newest = str(max(int(t["id"]) for t in tweets))
        if since_id is None or int(newest) > int(since_id):
            await set_cursor(self.db, self.cursor_name, newest)
        return new
