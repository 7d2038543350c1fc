"""Account Activity webhooks: X pushes each new post and DM (the brand's own included) to a URL.

Payloads are the v1.1-style shapes X sends (``tweet_create_events``, ``direct_message_events``, with
``for_user_id``), signed with ``x-twitter-webhooks-signature: sha256=base64(HMAC-SHA256(consumer secret,
body))``.  Registration runs X's CRC check first, so a bot that cannot answer it finds out here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.x.state import XDmEvent, XState, XTweet

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-twitter-webhooks-signature"
_V1_DATE = "%a %b %d %H:%M:%S +0000 %Y"


def sign(consumer_secret: str, payload: bytes) -> str:
    digest = hmac.new(consumer_secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def _v1_user(state: XState, user_id: str) -> dict[str, Any]:
    user = state.users[user_id]
    return {
        "id": int(user.id),
        "id_str": user.id,
        "name": user.name,
        "screen_name": user.username,
        "protected": False,
        "verified": False,
        "created_at": user.created_at.strftime(_V1_DATE),
    }


def tweet_event(state: XState, tweet: XTweet) -> dict[str, Any]:
    """A v1.1 tweet object; posts over 140 characters are truncated with the full text in extended_tweet."""
    mentions = []
    for name in tweet.mentioned_usernames:
        user = state.user_by_username(name, create=False)
        if user is not None:
            mentions.append({"id": int(user.id), "id_str": user.id, "screen_name": user.username})
    entities = {"hashtags": [], "urls": [], "user_mentions": mentions, "symbols": []}
    parent_author = state.users.get(tweet.in_reply_to_user_id or "")
    body: dict[str, Any] = {
        "created_at": tweet.created_at.strftime(_V1_DATE),
        "id": int(tweet.id),
        "id_str": tweet.id,
        "text": tweet.text,
        "truncated": False,
        "in_reply_to_status_id": int(tweet.in_reply_to_tweet_id) if tweet.in_reply_to_tweet_id else None,
        "in_reply_to_status_id_str": tweet.in_reply_to_tweet_id,
        "in_reply_to_user_id": int(tweet.in_reply_to_user_id) if tweet.in_reply_to_user_id else None,
        "in_reply_to_user_id_str": tweet.in_reply_to_user_id,
        "in_reply_to_screen_name": parent_author.username if parent_author else None,
        "user": _v1_user(state, tweet.author_id),
        "entities": entities,
        "lang": "en",
        "timestamp_ms": str(int(tweet.created_at.timestamp() * 1000)),
        # v1.1 tweet objects carry the edit chain as `edit_history` (xdevplatform/docs
        # x-api/enterprise-gnip-2.0/fundamentals/edit-tweets.mdx): an edit arrives as a new tweet_create_event.
        "edit_history": {
            "initial_tweet_id": (tweet.edit_history or [tweet.id])[0],
            "edit_tweet_ids": list(tweet.edit_history or [tweet.id]),
        },
        "is_quote_status": tweet.quoted_tweet_id is not None,
    }
    quoted = state.tweets.get(tweet.quoted_tweet_id or "")
    if quoted is not None:
        body["quoted_status_id_str"] = quoted.id
        body["quoted_status"] = {
            "id": int(quoted.id), "id_str": quoted.id, "text": quoted.text, "user": _v1_user(state, quoted.author_id)
        }
    if len(tweet.text) > 140:
        body["text"] = tweet.text[:139] + "…"
        body["truncated"] = True
        body["extended_tweet"] = {
            "full_text": tweet.text,
            "display_text_range": [tweet.display_start, len(tweet.text)],
            "entities": entities,
        }
    return body


def dm_event(event: XDmEvent) -> dict[str, Any]:
    return {
        "type": "message_create",
        "id": event.id,
        "created_timestamp": str(int(event.created_at.timestamp() * 1000)),
        "message_create": {
            "target": {"recipient_id": event.recipient_id},
            "sender_id": event.sender_id,
            "message_data": {
                "text": event.text,
                "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
            },
        },
    }


def payload_for(state: XState, kind: str, item: object) -> dict[str, Any]:
    if kind == "tweet":
        assert isinstance(item, XTweet)
        return {"for_user_id": state.brand.id, "tweet_create_events": [tweet_event(state, item)]}
    assert isinstance(item, XDmEvent)
    users = {uid: _v1_user(state, uid) for uid in (item.sender_id, item.recipient_id)}
    return {"for_user_id": state.brand.id, "direct_message_events": [dm_event(item)], "users": users}


async def crc_check(session: aiohttp.ClientSession, url: str, consumer_secret: str) -> None:
    """X's Challenge-Response Check; raises ValueError saying what the webhook got wrong."""
    token = secrets.token_urlsafe(24)
    expected = sign(consumer_secret, token.encode())
    try:
        async with session.get(url, params={"crc_token": token}) as response:
            text = await response.text()
            status = response.status
    except aiohttp.ClientError as exc:
        raise ValueError(f"CRC check: could not reach {url}: {exc}") from None
    if status != 200:
        raise ValueError(f"CRC check: {url} answered HTTP {status}, expected 200")
    try:
        answer = json.loads(text).get("response_token")
    except (ValueError, AttributeError):
        answer = None
    if answer != expected:
        raise ValueError(
            "CRC check: response_token must be sha256=base64(HMAC-SHA256(consumer_secret, crc_token)); "
            f"got {text[:200]!r}"
        )


class WebhookDispatcher:
    """Delivers the state's new posts and DMs to the registered URL.

    Like X, several deliveries are in flight at once (`lanes`), but one customer's events always go
    through the same lane, one at a time, so each customer's messages arrive in the order they were sent.
    """

    def __init__(self, state: XState, *, lanes: int = 32) -> None:
        self.state = state
        self._lanes: list[asyncio.Queue[tuple[str, bytes]]] = [asyncio.Queue() for _ in range(max(1, lanes))]
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        state.subscribe(self._on_event)

    def _on_event(self, kind: str, item: object) -> None:
        url = self.state.webhook_url
        if not url:
            return
        body = json.dumps(payload_for(self.state, kind, item), ensure_ascii=False).encode()
        self._lanes[_lane_of(self.state, kind, item) % len(self._lanes)].put_nowait((url, body))

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._tasks = [
            asyncio.create_task(self._run(lane), name=f"x-webhook-lane-{n}") for n, lane in enumerate(self._lanes)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the webhook dispatcher is not started (the app is not running)")
        return self._session

    async def drain(self) -> None:
        """Wait until every queued delivery has been attempted (tests and graceful shutdown)."""
        for lane in self._lanes:
            await lane.join()

    async def _run(self, lane: asyncio.Queue[tuple[str, bytes]]) -> None:
        while True:
            url, body = await lane.get()
            try:
                await self._deliver(url, body)
            finally:
                lane.task_done()

    async def _deliver(self, url: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.state.config.consumer_secret, body),
        }
        record: dict[str, object] = {"url": url, "bytes": len(body)}
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                await response.read()
                record["status"] = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            record["error"] = str(exc) or type(exc).__name__
            log.warning("webhook delivery to %s failed: %s", url, record["error"])
        self.state.webhook_deliveries.append(record)


# Where the sandbox app keeps its dispatcher: the control API sets the URL, tests drain the queue.
X_WEBHOOKS = web.AppKey("x_webhooks", WebhookDispatcher)


def _lane_of(state: XState, kind: str, item: object) -> int:
    """The customer an event belongs to, as a number: the DM's other party, or the post's author."""
    if kind == "tweet":
        assert isinstance(item, XTweet)
        return int(item.author_id)
    assert isinstance(item, XDmEvent)
    return int(item.recipient_id if item.sender_id == state.brand.id else item.sender_id)
