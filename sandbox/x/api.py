"""HTTP for the X API v2 emulator: the routes X serves under ``/2`` and the middleware in front of them.

Everything in this file is something real X does (its auth, rate limits, errors and endpoints), so it reads
as the emulated surface and nothing else.  The API is a sub-application mounted at ``/2`` with its own
middleware, so whatever else shares the sandbox app (the control API, the Telegram emulator) is untouched by
X's auth and rate limits.  What only the sandbox adds is in ``sandbox/x/control.py``; ``sandbox/x/app.py``
mounts both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.x import errors, search, views
from sandbox.x.account_activity import add_account_activity_routes
from sandbox.x.auth import AuthContext, authenticate
from sandbox.x.limits import RateWindow
from sandbox.x.state import XState

log = logging.getLogger(__name__)
X_STATE = web.AppKey("x_state", XState)
_AUTH_KIND = web.RequestKey("x_auth_kind", str)
_JSON = "application/json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- endpoint metadata ------------------------------------------------------------------------------
def _endpoint(name: str, *, user_only: bool, needs: str = "read") -> Callable[[Handler], Handler]:
    """Tag a handler with its rate-limit bucket, whether app-only (bearer) auth is refused, and the app
    permission a user-context call needs ("read", "write" or "directmessages")."""

    def tag(handler: Handler) -> Handler:
        handler.x_endpoint = name  # type: ignore[attr-defined]
        handler.x_user_only = user_only  # type: ignore[attr-defined]
        handler.x_needs = needs  # type: ignore[attr-defined]
        return handler

    return tag


def _json(body: dict[str, Any], status: int = 200, content_type: str = _JSON) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type=content_type,
        charset="utf-8",
    )


def _error_response(error: errors.XApiError) -> web.Response:
    return _json(error.body, error.status, error.content_type)


def _state(request: web.Request) -> XState:
    return request.app[X_STATE]


# --- middleware -------------------------------------------------------------------------------------
@web.middleware
async def _x_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Faults, then auth, then the rate-limit window, then the handler; X's JSON errors throughout."""
    state = _state(request)
    latency_ms, fault_status, after_commit = state.faults.take(request.method, request.path)
    if latency_ms:
        await asyncio.sleep(latency_ms / 1000)
    endpoint: str | None = getattr(request.match_info.handler, "x_endpoint", None)
    if fault_status is not None and not (after_commit and endpoint is not None):
        return _fault_response(state, endpoint, fault_status)
    if endpoint is None:
        return await _unrouted(request, handler)
    try:
        context = await _authenticate(request, state)
        if getattr(request.match_info.handler, "x_user_only", False) and context.kind != "user":
            raise errors.unsupported_authentication()
        if getattr(request.match_info.handler, "x_app_only", False) and context.kind != "app":
            raise errors.app_only_authentication()
    except errors.XApiError as error:
        response = _error_response(error)
        response.headers.update(state.limits.headers(state.limits.peek(endpoint, "app")))
        return response
    request[_AUTH_KIND] = context.kind  # "user" or "app": some fields exist only for a user (receives_your_dm)
    window, allowed = state.limits.hit(endpoint, context.key)
    if not allowed:
        response = _error_response(errors.too_many_requests())
    elif context.kind == "user" and not _permitted(state, request.match_info.handler):
        response = _error_response(errors.oauth1_permissions())
    else:
        response = await _handle(request, handler)
        if fault_status is not None:  # done, and then the answer failed (a 5xx after commit)
            response = _fault_response(state, endpoint, fault_status)
    response.headers.update(state.limits.headers(window))
    response.headers.update(state.limits.day_headers(endpoint, context.key))
    if context.kind == "user":
        # Every user-context answer names the token's permission (tweepy's cassettes:
        # `x-access-level: read-write-directmessages`); `read`, `read-write` lack DMs.
        response.headers["x-access-level"] = state.config.access_level
    return response


_LEVEL_GRANTS = {
    "read": {"read"},
    "read-write": {"read", "write"},
    "read-write-directmessages": {"read", "write", "directmessages"},
}


def _permitted(state: XState, handler: Any) -> bool:
    return getattr(handler, "x_needs", "read") in _LEVEL_GRANTS.get(state.config.access_level, set())


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.XApiError as error:
        return _error_response(error)
    except Exception:  # a bug in the emulator must still answer JSON, or tweepy hides it
        log.exception("X emulator: unhandled error in %s %s", request.method, request.path)
        return _error_response(errors.server_error(500))


async def _unrouted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown path or method under /2: still a JSON body, as X sends."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        error = errors.problem(405, "Method Not Allowed", f"{request.method} is not allowed here")
        return _error_response(error)
    except web.HTTPNotFound:
        return _error_response(errors.not_found_route())


def _fault_response(state: XState, endpoint: str | None, status: int) -> web.Response:
    error = errors.too_many_requests() if status == 429 else _fault_error(status)
    response = _error_response(error)
    if endpoint:
        window = state.limits.peek(endpoint, "app")
        if status == 429:  # an exhausted window that reopens a full window from now
            window = RateWindow(window.limit, 0, state.clock() + state.limits.window_s)
        response.headers.update(state.limits.headers(window))
    return response


def _fault_error(status: int) -> errors.XApiError:
    if status >= 500:
        return errors.server_error(status)
    titles = {400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found Error"}
    title = titles.get(status, "Error")
    return errors.problem(status, title, f"{title} (injected by the sandbox)")


async def _authenticate(request: web.Request, state: XState) -> AuthContext:
    form_body = None
    if request.content_type == "application/x-www-form-urlencoded":
        form_body = await request.text()
    return authenticate(
        state.config,
        method=request.method,
        origin=f"{request.scheme}://{request.host}",
        path_qs=request.raw_path,
        headers=request.headers,
        form_body=form_body,
        now=state.clock(),
    )


# --- X API v2 handlers ------------------------------------------------------------------------------
@_endpoint("users_me", user_only=True)
async def users_me(request: web.Request) -> web.Response:
    state = _state(request)
    user_fields = views.parse_list(request.query, "user.fields", views.USER_FIELDS)
    views.parse_list(request.query, "expansions", views.USER_EXPANSIONS)
    views.parse_list(request.query, "tweet.fields", views.TWEET_FIELDS)
    return _json({"data": views.render_user(state.brand, user_fields)})


def _user_or_partial_error(state: XState, raw_id: str) -> tuple[str, web.Response | None]:
    user_id = views.parse_path_id(raw_id, "id")
    if state.user(user_id) is None:
        error = errors.resource_not_found(
            "id", user_id, "user", f"Could not find user with id: [{user_id}]."
        )
        return user_id, _json({"errors": [error]})
    return user_id, None


@_endpoint("mentions", user_only=False)
async def user_mentions(request: web.Request) -> web.Response:
    state = _state(request)
    user_id, missing = _user_or_partial_error(state, request.match_info["id"])
    if missing:
        return missing
    return _timeline(request, state, state.mentions_of(user_id))


@_endpoint("user_tweets", user_only=False)
async def user_tweets(request: web.Request) -> web.Response:
    state = _state(request)
    user_id, missing = _user_or_partial_error(state, request.match_info["id"])
    if missing:
        return missing
    exclude = views.parse_list(request.query, "exclude", frozenset({"replies", "retweets"}))
    return _timeline(request, state, state.timeline_of(user_id, exclude_replies="replies" in exclude))


def _timeline(request: web.Request, state: XState, tweets: list[Any]) -> web.Response:
    query = request.query
    since_id = views.parse_id(query, "since_id")
    until_id = views.parse_id(query, "until_id")
    max_results = views.parse_max_results(query, 5, 100, 10)
    start_time = views.parse_time(query, "start_time")
    end_time = views.parse_time(query, "end_time")
    tweets = views.id_window(tweets, since_id, until_id, start_time, end_time)
    cut = views.page(tweets, query, max_results, base32=False, ragged=state.config.ragged_pages)
    return _json(views.tweet_page_body(state, cut.items, cut.next_token, query, cut.previous_token))


@_endpoint("search_recent", user_only=False)
async def search_recent(request: web.Request) -> web.Response:
    """`GET /2/tweets/search/recent`: posts of the last 7 days matching `query`, newest first.

    As X answers it (the spec's searchPostsRecent; build-a-query.mdx): `query` required, at most 512
    characters on self-serve tiers, X's operators only; `max_results` 10-100 (default 10); `since_id` /
    `until_id`; `start_time` no earlier than 7 days ago; pages by `next_token`.
    """
    state = _state(request)
    query = request.query
    unknown = set(query) - _SEARCH_PARAMETERS
    if unknown:
        name = sorted(unknown)[0]
        raise errors.invalid_request(
            f"The query parameter [{name}] is not one of [{','.join(sorted(_SEARCH_PARAMETERS))}]",
            {name: [query[name]]},
        )
    raw_query = query.get("query")
    if raw_query is None:
        raise errors.invalid_request("The `query` query parameter can not be empty", {"query": [""]})
    matcher = search.compile_query(raw_query)
    since_id = views.parse_id(query, "since_id")
    until_id = views.parse_id(query, "until_id")
    max_results = views.parse_max_results(query, 10, 100, 10)
    start_time = views.parse_time(query, "start_time")
    end_time = views.parse_time(query, "end_time")
    earliest = state.clock() - search.WINDOW_S
    if start_time is not None and start_time.timestamp() < earliest:
        raise errors.invalid_request(
            f"Invalid 'start_time':'{query['start_time']}'. 'start_time' must be on or after "
            f"{views.iso(datetime.fromtimestamp(earliest, tz=UTC))}",
            {"start_time": [query["start_time"]]},
        )
    sort_order = query.get("sort_order")
    if sort_order is not None and sort_order not in ("recency", "relevancy"):
        raise errors.invalid_request(
            f"The `sort_order` query parameter value [{sort_order}] is not one of [recency, relevancy]",
            {"sort_order": [sort_order]},
        )
    tweets = state.search_recent(lambda t: matcher(_search_post(state, t)), search.WINDOW_S)
    tweets = views.id_window(tweets, since_id, until_id, start_time, end_time)
    paging = dict(query)
    if "next_token" in query:  # search pages by `next_token` (the timelines by `pagination_token`)
        paging["pagination_token"] = query["next_token"]
    cut = views.page(tweets, paging, max_results, base32=False, ragged=state.config.ragged_pages)
    return _json(
        views.tweet_page_body(state, cut.items, cut.next_token, query,
                              user_context=request.get(_AUTH_KIND) == "user")
    )


_SEARCH_PARAMETERS = frozenset({
    "query", "start_time", "end_time", "since_id", "until_id", "max_results", "next_token", "pagination_token",
    "sort_order", "tweet.fields", "expansions", "media.fields", "poll.fields", "user.fields", "place.fields",
})


def _search_post(state: XState, tweet: Any) -> search.Post:
    author = state.users.get(tweet.author_id)
    replied = state.users.get(tweet.in_reply_to_user_id or "")
    return search.Post(
        text=tweet.text,
        author_username=author.username if author else "",
        in_reply_to_username=replied.username if replied else None,
        conversation_id=tweet.conversation_id,
        is_reply=tweet.in_reply_to_tweet_id is not None,
        is_quote=tweet.quoted_tweet_id is not None,
    )


@_endpoint("tweet_lookup", user_only=False)
async def tweet_lookup(request: web.Request) -> web.Response:
    state = _state(request)
    tweet_id = views.parse_path_id(request.match_info["id"], "id")
    tweet = state.tweets.get(tweet_id)
    if tweet is None:
        error = errors.resource_not_found(
            "id", tweet_id, "tweet", f"Could not find tweet with id: [{tweet_id}]."
        )
        return _json({"errors": [error]})
    body = views.tweet_page_body(state, [tweet], None, request.query)
    result: dict[str, Any] = {"data": body["data"][0]}
    if "includes" in body:
        result["includes"] = body["includes"]
    return _json(result)


def _dm_page(request: web.Request, state: XState, participant_id: str | None) -> web.Response:
    query = request.query
    max_results = views.parse_max_results(query, 1, 100, 100)
    event_types = views.parse_list(query, "event_types", views.DM_EVENT_TYPES)
    events = state.dm_events_of(state.brand.id, participant_id)
    if event_types and "MessageCreate" not in event_types:
        events = []
    cut = views.page(events, query, max_results, base32=True, ragged=state.config.ragged_pages)
    return _json(views.dm_page_body(state, cut.items, cut.next_token, query, cut.previous_token))


@_endpoint("dm_events", user_only=True, needs="directmessages")
async def dm_events(request: web.Request) -> web.Response:
    return _dm_page(request, _state(request), None)


@_endpoint("dm_conversation_events", user_only=True, needs="directmessages")
async def dm_events_with(request: web.Request) -> web.Response:
    participant_id = views.parse_path_id(request.match_info["participant_id"], "participant_id")
    return _dm_page(request, _state(request), participant_id)


def _participant_of(state: XState, conversation_id: str) -> str:
    """The other user in a one-to-one conversation id ``{low}-{high}`` that includes the brand."""
    low, sep, high = conversation_id.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or state.brand.id not in (low, high):
        raise errors.invalid_request(
            f"The `dm_conversation_id` path parameter value [{conversation_id}] is not a conversation "
            "of the authenticating user",
            {"dm_conversation_id": [conversation_id]},
        )
    return high if low == state.brand.id else low


@_endpoint("dm_conversation_events", user_only=True, needs="directmessages")
async def dm_events_in_conversation(request: web.Request) -> web.Response:
    state = _state(request)
    participant_id = _participant_of(state, request.match_info["dm_conversation_id"])
    return _dm_page(request, state, participant_id)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_request("Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.invalid_request("Request body must be a JSON object.")
    return body


async def _create_dm(request: web.Request, state: XState, participant_id: str) -> web.Response:
    body = await _json_body(request)
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise errors.invalid_request("The `text` field must be a string.", {"text": [str(text)]})
    event = state.send_dm(state.brand.id, participant_id, text)
    response = _json({"data": {"dm_conversation_id": event.dm_conversation_id, "dm_event_id": event.id}}, 201)
    response.headers["Location"] = f"https://api.twitter.com/2/dm_events/{event.id}"
    return response


@_endpoint("create_dm", user_only=True, needs="directmessages")
async def create_dm_with(request: web.Request) -> web.Response:
    participant_id = views.parse_path_id(request.match_info["participant_id"], "participant_id")
    return await _create_dm(request, _state(request), participant_id)


@_endpoint("create_dm", user_only=True, needs="directmessages")
async def create_dm_in_conversation(request: web.Request) -> web.Response:
    state = _state(request)
    participant_id = _participant_of(state, request.match_info["dm_conversation_id"])
    return await _create_dm(request, state, participant_id)


@_endpoint("create_tweet", user_only=True, needs="write")
async def create_tweet(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json_body(request)
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise errors.invalid_request("The `text` field must be a string.", {"text": [str(text)]})
    reply = body.get("reply")
    in_reply_to = None
    if reply is not None:
        if not isinstance(reply, dict) or not reply.get("in_reply_to_tweet_id"):
            raise errors.invalid_request(
                "The `reply` field must be an object with `in_reply_to_tweet_id`.",
                {"reply": [json.dumps(reply)]},
            )
        in_reply_to = str(reply["in_reply_to_tweet_id"])
    tweet = state.create_tweet(state.brand.id, text, in_reply_to)
    response = _json(
        {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": list(tweet.edit_history)}}, 201
    )
    response.headers["Location"] = f"https://api.twitter.com/2/tweets/{tweet.id}"
    return response


def build_x_api_app(state: XState) -> web.Application:
    """The ``/2`` sub-application: X API v2 as tweepy calls it."""
    api = web.Application(middlewares=[_x_middleware])
    api[X_STATE] = state
    api.router.add_get("/users/me", users_me)
    api.router.add_get("/users/{id}/mentions", user_mentions)
    api.router.add_get("/users/{id}/tweets", user_tweets)
    api.router.add_get("/tweets/search/recent", search_recent)  # before /tweets/{id}, which would take it
    api.router.add_get("/tweets/{id}", tweet_lookup)
    api.router.add_post("/tweets", create_tweet)
    api.router.add_get("/dm_events", dm_events)
    api.router.add_get("/dm_conversations/with/{participant_id}/dm_events", dm_events_with)
    api.router.add_post("/dm_conversations/with/{participant_id}/messages", create_dm_with)
    api.router.add_get("/dm_conversations/{dm_conversation_id}/dm_events", dm_events_in_conversation)
    api.router.add_post("/dm_conversations/{dm_conversation_id}/messages", create_dm_in_conversation)
    add_account_activity_routes(api)
    return api

