"""The X emulator's control API under ``/_sandbox/``: what only the sandbox serves, never real X.

No auth: it is how tests and people play the customers (post mentions, send DMs, change users), read what
the brand sent, and bend the network (faults, rate-limit profiles, the webhook URL).  It changes the same
``XState`` the emulated API in ``sandbox/x/api.py`` reads, and answers ``{"error": ...}`` with a 400 for bad
input.  ``sandbox/x/control_client.py`` is a Python client for it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.x.api import X_STATE
from sandbox.x.limits import Fault, generous_rate_limits, x_daily_limits, x_rate_limits
from sandbox.x.webhook import X_WEBHOOKS, crc_check

_JSON = "application/json"
ACCESS_LEVELS = ("read", "read-write", "read-write-directmessages")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type=_JSON,
        charset="utf-8",
    )


class _ControlError(Exception):
    pass


async def _control_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise _ControlError(
            "the body must be JSON, e.g. -H 'Content-Type: application/json' -d '{...}'"
        ) from None
    if not isinstance(body, dict):
        raise _ControlError("the body must be a JSON object")
    return body


def _required_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _ControlError(f"`{name}` is required (a non-empty string)")
    return value


@web.middleware
async def _control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/_sandbox/"):
        return await handler(request)
    try:
        return await handler(request)
    except (_ControlError, ValueError) as exc:
        return _json({"error": str(exc)}, 400)


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).isdigit():
        raise _ControlError(f"`{name}` must be a post id (a string of digits)")
    return str(value)


async def control_mention(request: web.Request) -> web.Response:
    state = request.app[X_STATE]
    body = await _control_body(request)
    mention_brand = body.get("mention_brand", True)
    if not isinstance(mention_brand, bool):
        raise _ControlError("`mention_brand` must be true or false")
    tweet = state.add_mention(
        _required_str(body, "author"),
        _required_str(body, "text"),
        _optional_id(body, "in_reply_to"),
        edit_of=_optional_id(body, "edit_of"),
        quote_of=_optional_id(body, "quote_of"),
        mention_brand=mention_brand,
    )
    return _json(
        {
            "id": tweet.id,
            "text": tweet.text,
            "author_id": tweet.author_id,
            "conversation_id": tweet.conversation_id,
            "edit_history_tweet_ids": list(tweet.edit_history),
        },
        201,
    )


async def control_post(request: web.Request) -> web.Response:
    """Someone posts in public without addressing the brand: only recent search (listening) finds it."""
    state = request.app[X_STATE]
    body = await _control_body(request)
    tweet = state.add_post(_required_str(body, "author"), _required_str(body, "text"))
    return _json(
        {"id": tweet.id, "text": tweet.text, "author_id": tweet.author_id, "conversation_id": tweet.conversation_id},
        201,
    )


async def control_delete_tweet(request: web.Request) -> web.Response:
    """A customer deletes one of their posts (with its whole edit chain, as on X)."""
    state = request.app[X_STATE]
    tweet_id = request.match_info["tweet_id"]
    tweet = state.tweets.get(tweet_id)
    if tweet is not None and tweet.author_id == state.brand.id:
        raise _ControlError("that is the brand's own post; the control API deletes customers' posts only")
    return _json({"deleted": state.delete_tweet(tweet_id)})


async def control_dm(request: web.Request) -> web.Response:
    state = request.app[X_STATE]
    body = await _control_body(request)
    delay = body.get("index_delay_s", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise _ControlError("`index_delay_s` must be a number of seconds >= 0")
    event = state.add_dm(_required_str(body, "sender"), _required_str(body, "text"), index_delay_s=float(delay))
    return _json(
        {"id": event.id, "sender_id": event.sender_id, "dm_conversation_id": event.dm_conversation_id}, 201
    )


async def control_sent(request: web.Request) -> web.Response:
    return _json(request.app[X_STATE].sent())


async def control_users(request: web.Request) -> web.Response:
    state = request.app[X_STATE]
    if request.method == "POST":
        body = await _control_body(request)
        user = state.user_by_username(_required_str(body, "username"))
        assert user is not None
        if user.id == state.brand.id:
            raise _ControlError("that is the brand; customers only")
        if "name" in body:
            user.name = str(body["name"])
        if "accepts_dms" in body:
            user.accepts_dms = bool(body["accepts_dms"])
    users = [
        {"id": u.id, "username": u.username, "name": u.name, "accepts_dms": u.accepts_dms}
        for u in state.users.values()
    ]
    return _json({"brand": {"id": state.brand.id, "username": state.brand.username}, "users": users})


async def control_faults(request: web.Request) -> web.Response:
    state = request.app[X_STATE]
    if request.method == "POST":
        body = await _control_body(request)
        status = body.get("status")
        latency_ms = int(body.get("latency_ms") or 0)
        default_count = 1 if status is not None else None
        count = body.get("count", default_count)
        state.faults.add(
            Fault(
                path_prefix=str(body.get("path_prefix") or "/2/"),
                status=None if status is None else int(status),
                count=None if count is None else int(count),
                latency_ms=latency_ms,
                method=body.get("method"),
                after_commit=bool(body.get("after_commit", False)),
            )
        )
    elif request.method == "DELETE":
        state.faults.clear()
    return _json({"faults": [f.as_dict() for f in state.faults.active]})


async def control_config(request: web.Request) -> web.Response:
    state = request.app[X_STATE]
    if request.method == "POST":
        body = await _control_body(request)
        profile = body.get("rate_limit_profile")
        if profile is not None:
            if profile not in ("x", "sandbox"):
                raise _ControlError("rate_limit_profile must be 'x' (X's numbers) or 'sandbox' (generous)")
            state.limits.limits.clear()
            state.limits.limits.update(x_rate_limits() if profile == "x" else generous_rate_limits())
            state.limits.daily_limits.clear()  # X's 24-hour windows exist only in the `x` profile
            state.limits.daily_limits.update(x_daily_limits() if profile == "x" else {})
        state.limits.configure(
            window_s=body.get("rate_limit_window_s"),
            limits=body.get("rate_limits"),
            day_s=body.get("daily_window_s"),
            daily_limits=body.get("daily_limits"),
        )
        if "duplicate_window_s" in body:
            state.config.duplicate_window_s = float(body["duplicate_window_s"])
        if "webhook_url_rules" in body:
            if body["webhook_url_rules"] not in ("x", "sandbox"):
                raise _ControlError("webhook_url_rules must be 'x' (HTTPS, no port, public) or 'sandbox'")
            state.config.webhook_url_rules = body["webhook_url_rules"]
        if "summoned_replies_only" in body:
            if not isinstance(body["summoned_replies_only"], bool):
                raise _ControlError("`summoned_replies_only` must be true (self-serve tiers) or false (Enterprise)")
            state.config.summoned_replies_only = body["summoned_replies_only"]
        if "access_level" in body:
            if body["access_level"] not in ACCESS_LEVELS:
                raise _ControlError(f"access_level must be one of {', '.join(ACCESS_LEVELS)}")
            state.config.access_level = body["access_level"]
        if "ragged_pages" in body:
            state.config.ragged_pages = bool(body["ragged_pages"])
    return _json(
        {
            "brand": {"id": state.brand.id, "username": state.brand.username},
            "rate_limit_window_s": state.limits.window_s,
            "rate_limits": state.limits.limits,
            "daily_window_s": state.limits.day_s,
            "daily_limits": state.limits.daily_limits,
            "access_level": state.config.access_level,
            "ragged_pages": state.config.ragged_pages,
            "duplicate_window_s": state.config.duplicate_window_s,
            "summoned_replies_only": state.config.summoned_replies_only,
            "mentions_reachable": state.config.mentions_reachable,
            "webhook_url_rules": state.config.webhook_url_rules,
        }
    )


async def control_reset(request: web.Request) -> web.Response:
    request.app[X_STATE].reset()
    return _json({"ok": True})


async def control_webhook(request: web.Request) -> web.Response:
    state = request.app[X_STATE]
    if request.method == "POST":
        body = await _control_body(request)
        url = body.get("url") or None
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise _ControlError("`url` must be an http(s) URL, or null to stop deliveries")
            if body.get("crc", True):
                await crc_check(request.app[X_WEBHOOKS].session, url, state.config.consumer_secret)
        state.webhook_url = url
    return _json({"url": state.webhook_url, "deliveries": state.webhook_deliveries})



def add_control_routes(app: web.Application) -> None:
    """Register the ``/_sandbox/`` routes (and their 400-on-bad-input middleware) on the root ``app``."""
    app.middlewares.append(_control_errors)
    app.router.add_post("/_sandbox/mentions", control_mention)
    app.router.add_post("/_sandbox/posts", control_post)
    app.router.add_delete("/_sandbox/tweets/{tweet_id}", control_delete_tweet)
    app.router.add_post("/_sandbox/dms", control_dm)
    app.router.add_get("/_sandbox/sent", control_sent)
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, "/_sandbox/faults", control_faults)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/_sandbox/users", control_users)
        app.router.add_route(method, "/_sandbox/config", control_config)
        app.router.add_route(method, "/_sandbox/webhook", control_webhook)
    app.router.add_post("/_sandbox/reset", control_reset)
