"""The mentions poller: every tweet that @-mentions or replies to the brand, exactly once.

X has `since_id` here: each poll asks for what is newer than the newest mention already recorded, pages
(`pagination_token`) until caught up, records everything oldest first, and only then moves the cursor.  A
crash between recording and moving the cursor repeats the poll; `record_inbound_many` de-duplicates by tweet id,
so a repeat costs nothing and nothing is lost.  A 429 or 5xx in the middle of paging keeps the pages
fetched so far and the next token, and the next poll carries on from there (a big backlog is not
re-fetched from the start after every refusal).  X serves only the ~800 newest mentions: more than that
between two polls cannot be fetched by anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.channels.x.api import parse_time, uses_user_auth_for_reads
from bot.channels.x.convert import TWEET_FIELDS, USER_FIELDS, mention_from_v2, users_by_id
from bot.channels.x.poller import MAX_PAGES_PER_POLL, PagingUnfinished, Poller
from storage.cursors import get_cursor, set_cursor


@dataclass
class _Scan:
    """One poll's progress through X's pages (kept across a 429 to resume, not restart)."""

    since_id: str | None
    cutoff: datetime | None
    token: str | None = None
    pages: int = 0
    tweets: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


class MentionsPoller(Poller):
    """`GET /2/users/:brand_id/mentions`; cursor `x:<brand id>:mentions:since_id`."""

    kind = "mentions"

    cursor_suffix = "since_id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfinished: _Scan | None = None

    async def poll_once(self) -> int:
        since_id = await get_cursor(self.db, self.cursor_name)
        scan = self._unfinished
        if scan is None or scan.since_id != since_id:
            scan = _Scan(since_id, self._first_run_cutoff(since_id))
        self._unfinished = None
        try:
            await self._fetch(scan)
        except BaseException:
            self._unfinished = scan
            raise
        if not scan.tweets:
            return 0
        tweets = sorted(scan.tweets, key=lambda t: int(t["id"]))
        messages = []
        for tweet in tweets:
            message = mention_from_v2(tweet, scan.users, self.brand_id)
            if message is None:
                continue
            created = message.platform_created_at
            if scan.cutoff is not None and created is not None and created < scan.cutoff:
                continue
            messages.append(message)
        new = await self._record_all(messages)
        # Only now, with every one of them stored, is it safe never to ask for them again.
        newest = str(int(tweets[-1]["id"]))
        if since_id is None or int(newest) > int(since_id):
            await set_cursor(self.db, self.cursor_name, newest)
        return new

    async def _fetch(self, scan: _Scan) -> None:
        while True:
            result = await self._get(
                "get_users_mentions",
                self.brand_id,
                since_id=scan.since_id,
                pagination_token=scan.token,
                max_results=self.page_size,
                tweet_fields=TWEET_FIELDS,
                expansions=["author_id"],
                user_fields=USER_FIELDS,
                user_auth=uses_user_auth_for_reads(self.client),
            )
            page = result.body.get("data") or []
            scan.pages += 1
            scan.tweets.extend(page)
            scan.users.update(users_by_id(result.body))
            # A short or even empty page can carry a `next_token` (X filters after fetching; tweepy's
            # recorded mentions: 2 of 10 with a token): only a page without one is the end.  Until then
            # `since_id` stays where it is: it must never pass a page not read.
            scan.token = (result.body.get("meta") or {}).get("next_token")
            if not scan.token:
                return
            oldest = parse_time(page[-1].get("created_at")) if page else None
            if scan.cutoff is not None and oldest is not None and oldest < scan.cutoff:
                return  # first start: the rest is older than the backfill window
            if scan.pages >= MAX_PAGES_PER_POLL:
                raise PagingUnfinished(self.kind)
