"""Calling X through tweepy while keeping what tweepy's Response objects drop: the rate-limit headers.

Pollers pace themselves by ``x-rate-limit-remaining``/``reset``, which tweepy's ``Response`` does not carry.
tweepy returns the raw aiohttp response instead when ``return_type`` is ``aiohttp.ClientResponse``; that is a
client-wide attribute, so each caller here works on a shallow copy of the configured client (same session,
same credentials, same host seam from ``bot.channels.x.client``) instead of changing the shared one.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import tweepy
from tweepy.asynchronous import AsyncClient

CREDENTIALS_HINT = (
    "check FRONTDESK_X_CONSUMER_KEY, FRONTDESK_X_CONSUMER_SECRET, FRONTDESK_X_ACCESS_TOKEN, "
    "FRONTDESK_X_ACCESS_TOKEN_SECRET and FRONTDESK_X_BEARER_TOKEN (the app's keys and the brand "
    "account's access token, with read, write and Direct Messages permission)"
)

# Failures worth trying again later: X's 5xx, and the network between us.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    tweepy.TwitterServerError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


@dataclass(frozen=True)
class RateLimit:
    """What X said about the endpoint's window in its last answer."""

    limit: int
    remaining: int
    reset_at: float  # Unix seconds

    @classmethod
    def from_headers(cls, headers: Any) -> RateLimit | None:
        try:
            return cls(
                limit=int(headers["x-rate-limit-limit"]),
                remaining=int(headers["x-rate-limit-remaining"]),
                reset_at=float(headers["x-rate-limit-reset"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def day_limits_from_headers(headers: Any) -> tuple[RateLimit, ...]:
    """X's 24-hour windows, reported next to the 15-minute one on the endpoints that have them:
    `x-user-limit-24hour-*` (this user) and `x-app-limit-24hour-*` (the whole app)."""
    found = []
    for scope in ("user", "app"):
        prefix = f"x-{scope}-limit-24hour-"
        try:
            found.append(
                RateLimit(
                    limit=int(headers[prefix + "limit"]),
                    remaining=int(headers[prefix + "remaining"]),
                    reset_at=float(headers[prefix + "reset"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(found)


@dataclass(frozen=True)
class ApiResult:
    body: dict[str, Any]
    rate_limit: RateLimit | None
    day_limits: tuple[RateLimit, ...] = ()
    access_level: str | None = None  # `x-access-level` (user-context answers): the app's permission


def raw_client(client: AsyncClient) -> AsyncClient:
    """A view of `client` whose methods return the aiohttp response (body already read), not a Response."""
    raw = copy.copy(client)
    raw.return_type = aiohttp.ClientResponse
    return raw


async def call(raw: AsyncClient, method: str, *args: Any, **kwargs: Any) -> ApiResult:
    """Call a tweepy method on a `raw_client` view; the JSON body and the rate-limit headers."""
    response = await getattr(raw, method)(*args, **kwargs)
    body = await response.json(content_type=None)
    headers = response.headers
    return ApiResult(
        body if isinstance(body, dict) else {},
        RateLimit.from_headers(headers),
        day_limits_from_headers(headers),
        headers.get("x-access-level"),
    )


def uses_user_auth_for_reads(client: AsyncClient) -> bool:
    """Timeline reads default to app-only (bearer) auth in tweepy; without a bearer token use the user's.

    With FRONTDESK_X_OWNED_READS the user's token is used anyway: X bills the brand's reads of its own
    mentions and posts as owned reads ($0.001, not $0.005 a post) when its account owns the app.
    """
    return not client.bearer_token or bool(getattr(client, "frontdesk_owned_reads", False))


def retry_after_s(error: tweepy.TooManyRequests, *, now: float | None = None) -> float | None:
    """Seconds until X's window resets, from the 429's `x-rate-limit-reset` (None if X did not say)."""
    reset = error.reset_time
    if reset is None:
        limit = RateLimit.from_headers(getattr(error.response, "headers", {}))
        reset = limit.reset_at if limit else None
    if reset is None:
        return None
    return max(0.0, float(reset) - (time.time() if now is None else now))


def api_message(error: tweepy.HTTPException) -> str:
    """X's own words for a refusal, without the request (which may carry a customer's text)."""
    parts = [str(m) for m in (error.api_messages or [])]
    detail = "; ".join(parts) if parts else (getattr(error.response, "reason", "") or "")
    return f"HTTP {error.response.status} {detail}".strip()


def parse_time(value: str | None) -> datetime | None:
    """X's ISO 8601 `created_at` (``2026-11-25T17:40:17.000Z``) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)  # 3.11 reads the trailing Z
    except ValueError:
        return None
