"""Counting what Frontdesk asks of X, as X bills it: requests by endpoint, and the items in each answer.

Every X request of the process passes through the client's session (``bot.channels.x.client``), which hands
each answer to its ``UsageMeter``: requests are counted by endpoint and status class in ``/metrics``, and the
billable items (posts, users and DM events returned; posts and DMs created, see ``storage/usage.py``) are
kept per UTC day until a ``UsageFlusher`` adds them to the store, where the desk's cost estimate reads them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from frontdesk.core import metrics
from storage import usage
from storage.db import Database

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 15.0
_ID_SEGMENT = re.compile(r"^[0-9][0-9-]*$")
# X shortens every link to t.co and prices a post that has one at the "with URL" rate; a bare domain is
# linked too, so anything that looks like one counts (an estimate should not come out low).
_URL = re.compile(r"(https?://|www\.)\S+|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(com|net|org|io|co|ly|me|app|shop)\b",
                  re.IGNORECASE)
_OWN_TIMELINES = re.compile(r"^/2/users/([0-9]+)/(mentions|tweets)$")


def endpoint_of(method: str, path: str) -> str:
    """``GET /2/users/:id/mentions``: the method and the path with its ids masked (a bounded label)."""
    parts = path.split("?", 1)[0].split("/")
    parts = parts[:2] + [":id" if _ID_SEGMENT.match(p) else p for p in parts[2:]]  # keep the "/2" version
    return f"{method.upper()} {'/'.join(parts)}"


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return 1 if isinstance(value, dict) else 0


def post_kind(request_json: Mapping[str, Any] | None) -> str:
    """How X prices a POST /2/tweets: with a URL, a (summoned) reply, or a plain post."""
    body = request_json or {}
    if _URL.search(str(body.get("text") or "")):
        return usage.POSTS_CREATED_URL
    # Frontdesk replies only to posts that mentioned the brand (X refuses the others since 2026-02),
    # so every reply it makes is a summoned one.
    if isinstance(body.get("reply"), dict):
        return usage.POSTS_CREATED_SUMMONED
    return usage.POSTS_CREATED


def items_of(
    method: str,
    path: str,
    status: int,
    body: Mapping[str, Any],
    request_json: Mapping[str, Any] | None,
    *,
    user_auth: bool,
    own_user_id: str | None,
) -> dict[str, int]:
    """The billable items in one answer from X (nothing for a refusal: X bills what it returned or did)."""
    if not 200 <= status < 300:
        return {}
    method = method.upper()
    if method == "POST" and path == "/2/tweets":
        return {post_kind(request_json): 1}
    if method == "POST" and path.startswith("/2/dm_conversations/") and path.endswith("/messages"):
        return {usage.DMS_CREATED: 1}
    if method != "GET":
        return {}
    includes = body.get("includes") if isinstance(body.get("includes"), dict) else {}
    found: dict[str, int] = {
        usage.USERS_READ: _count(includes.get("users")),
        usage.POSTS_READ: _count(includes.get("tweets")),
    }
    data = body.get("data")
    if path == "/2/tweets/search/recent":  # listening: the same prices, its own lines on the Figures card
        return {item: n for item, n in {
            usage.POSTS_READ_LISTENING: _count(data) + found[usage.POSTS_READ],
            usage.USERS_READ_LISTENING: found[usage.USERS_READ],
        }.items() if n}
    if path.startswith("/2/dm_events") or (path.startswith("/2/dm_conversations/") and path.endswith("/dm_events")):
        found[usage.DM_EVENTS_READ] = _count(data)
    elif path.startswith("/2/tweets") or _OWN_TIMELINES.match(path):
        own = _OWN_TIMELINES.match(path)
        # Owned reads: the token's user reading its own timeline (priced lower if that user owns the app).
        is_own = bool(own and user_auth and own_user_id and own.group(1) == own_user_id)
        key = usage.POSTS_READ_OWN if is_own else usage.POSTS_READ
        found[key] = found.get(key, 0) + _count(data)
    elif path.startswith("/2/users"):
        found[usage.USERS_READ] += _count(data)
    return {item: n for item, n in found.items() if n}


class UsageMeter:
    """Counts one client's X traffic: metrics at once, billable items per day until `take()`n."""

    def __init__(self) -> None:
        self.own_user_id: str | None = None  # the brand's account, once known (for owned reads)
        self._pending: dict[tuple[str, str], int] = {}

    def observe(
        self,
        method: str,
        path: str,
        status: int | None,
        body_bytes: bytes | None,
        request_json: Mapping[str, Any] | None,
        *,
        user_auth: bool,
    ) -> None:
        metrics.x_request(endpoint_of(method, path), status)
        if status is None or not 200 <= status < 300:
            return
        body = _json_object(body_bytes)
        found = items_of(method, path, status, body, request_json, user_auth=user_auth,
                         own_user_id=self.own_user_id)
        day = usage.utc_day()
        for item, n in found.items():
            metrics.x_items(item, n)
            self._pending[(day, item)] = self._pending.get((day, item), 0) + n

    def take(self) -> dict[tuple[str, str], int]:
        """The counts not yet stored, handed over (the meter starts again from zero)."""
        pending, self._pending = self._pending, {}
        return pending

    def give_back(self, pending: Mapping[tuple[str, str], int]) -> None:
        """Counts that could not be stored: keep them for the next flush."""
        for key, n in pending.items():
            self._pending[key] = self._pending.get(key, 0) + n


def _json_object(raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


class UsageFlusher:
    """Adds a meter's counts to the store every `interval_s` seconds, and once more on `stop()`."""

    def __init__(self, db: Database, meter: UsageMeter, *, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.db = db
        self.meter = meter
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="x-usage-flush")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.flush()

    async def flush(self) -> None:
        pending = self.meter.take()
        try:
            await usage.add_usage(self.db, pending)
            today = await usage.usage_by_day(self.db, since_day=usage.utc_day())
        except Exception as exc:  # the store may be briefly away; the counts wait for the next flush
            self.meter.give_back(pending)
            log.warning("X usage: could not store the counts (%s); retrying at the next flush", type(exc).__name__)
            return
        counts = today.get(usage.utc_day(), {})
        metrics.set_x_items_today({item: counts.get(item, 0) for item in usage.ITEMS})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()
