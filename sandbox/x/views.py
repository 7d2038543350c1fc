"""Rendering state as X API v2 JSON: field selection, expansions, pages and their tokens.

X returns only ``id``/``text``/``edit_history_tweet_ids`` for a post (``id``/``event_type``/``text`` for a
DM event) unless more fields are asked for, and rejects field names it does not know.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sandbox.x import errors
from sandbox.x.state import MAX_EDITS, XDmEvent, XState, XTweet, XUser

TWEET_FIELDS = frozenset(
    [
        "article",
        "attachments",
        "author_id",
        "card_uri",
        "community_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "display_text_range",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "media_metadata",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "scopes",
        "source",
        "suggested_source_links",
        "suggested_source_links_with_counts",
        "text",
        "withheld",
    ]
)
USER_FIELDS = frozenset(
    [
        "affiliation",
        "confirmed_email",
        "connection_status",
        "created_at",
        "description",
        "entities",
        "id",
        "is_identity_verified",
        "location",
        "most_recent_tweet_id",
        "name",
        "parody",
        "pinned_tweet_id",
        "profile_banner_url",
        "profile_image_url",
        "protected",
        "public_metrics",
        "receives_your_dm",
        "subscription",
        "subscription_type",
        "url",
        "username",
        "verified",
        "verified_followers_count",
        "verified_type",
        "withheld",
    ]
)
DM_EVENT_FIELDS = frozenset(
    [
        "attachments",
        "created_at",
        "dm_conversation_id",
        "entities",
        "event_type",
        "id",
        "participant_ids",
        "referenced_tweets",
        "sender_id",
        "text",
    ]
)
TWEET_EXPANSIONS = frozenset(
    [
        "article.cover_media",
        "article.media_entities",
        "attachments.media_keys",
        "attachments.media_source_tweet",
        "attachments.poll_ids",
        "author_id",
        "edit_history_tweet_ids",
        "entities.mentions.username",
        "geo.place_id",
        "in_reply_to_user_id",
        "entities.note.mentions.username",
        "referenced_tweets.id",
        "referenced_tweets.id.attachments.media_keys",
        "referenced_tweets.id.author_id",
    ]
)
DM_EVENT_EXPANSIONS = frozenset(
    ["attachments.media_keys", "participant_ids", "referenced_tweets.id", "sender_id"]
)
USER_EXPANSIONS = frozenset(["affiliation.user_id", "most_recent_tweet_id", "pinned_tweet_id"])
DM_EVENT_TYPES = ("MessageCreate", "ParticipantsJoin", "ParticipantsLeave")

_ID = re.compile(r"^[0-9]{1,19}$")
T = TypeVar("T", XTweet, XDmEvent)


# --- query parameters ---------------------------------------------------------------------------------
def parse_list(query: Mapping[str, str], name: str, allowed: frozenset[str] | Sequence[str]) -> list[str]:
    raw = query.get(name)
    if raw is None:
        return []
    values = [v for v in raw.split(",") if v]
    for value in values:
        if value not in allowed:
            raise errors.invalid_request(
                f"The `{name}` query parameter value [{value}] is not one of [{', '.join(sorted(allowed))}]",
                {name: [raw]},
            )
    return values


def parse_id(query: Mapping[str, str], name: str) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not _ID.match(raw):
        raise errors.invalid_request(
            f"The `{name}` query parameter value [{raw}] does not match ^[0-9]{{1,19}}$", {name: [raw]}
        )
    return raw


def parse_path_id(raw: str, name: str) -> str:
    if not _ID.match(raw):
        raise errors.invalid_request(
            f"The `{name}` query parameter value [{raw}] does not match ^[0-9]{{1,19}}$", {name: [raw]}
        )
    return raw


def parse_max_results(query: Mapping[str, str], low: int, high: int, default: int) -> int:
    raw = query.get("max_results")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise errors.invalid_request(
            f"The `max_results` query parameter value [{raw}] is not between {low} and {high}",
            {"max_results": [raw]},
        )
    return value


# --- pagination ----------------------------------------------------------------------------------
# A token names an anchor id, a direction ("older than" for next_token, "newer than" for previous_token)
# and, in ragged mode, whether the empty page X may put before the next items was already served.
_NEWER, _RESUMED = 2, 1


def encode_token(anchor_id: str, *, base32: bool, newer: bool = False, resumed: bool = True) -> str:
    """An opaque token; DM tokens are base32, timeline tokens base36 (as X's look)."""
    n = int(anchor_id) * 4 + (_NEWER if newer else 0) + (_RESUMED if resumed else 0)
    if base32:
        return base64.b32encode(n.to_bytes(10, "big")).decode().rstrip("=")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def decode_token(token: str, *, base32: bool) -> tuple[int, bool, bool]:
    """(anchor id, newer?, resumed?) from a token made by `encode_token`."""
    try:
        if base32:
            padded = token + "=" * (-len(token) % 8)
            n = int.from_bytes(base64.b32decode(padded.upper()), "big")
        else:
            n = int(token, 36)
    except (ValueError, TypeError, base64.binascii.Error):
        raise errors.invalid_request(
            f"The `pagination_token` query parameter value [{token}] is not valid",
            {"pagination_token": [token]},
        ) from None
    return n // 4, bool(n & _NEWER), bool(n & _RESUMED)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_token: str | None
    previous_token: str | None


def page(
    items: list[T], query: Mapping[str, str], max_results: int, *, base32: bool, ragged: bool = False
) -> Page:
    """Cut one page out of newest-first ``items`` at the pagination token.

    As real X does: a page after the first carries `previous_token` (the page before it); `next_token`
    is there while older items may exist.  With `ragged` (the stricter mode, `POST /_sandbox/config
    {"ragged_pages": true}`) pages come back as X's can: shorter than `max_results` while more remain,
    an empty page with a `next_token` between two pages of items, and a `next_token` on the last page
    that leads to an empty page.  X filters after fetching, so neither a short nor an empty page is a
    sign of the end (tweepy's recorded `test_asyncclient_get_users_mentions.yaml`: 2 results of the
    default 10, with a `next_token`); only a page without `next_token` is.
    """
    token = query.get("pagination_token")
    paged = token is not None
    if token is not None:
        anchor, newer, resumed = decode_token(token, base32=base32)
        if ragged and not newer and not resumed:
            # The hollow page: nothing in it, and a token that carries on from the same place.
            return Page([], encode_token(str(anchor), base32=base32), None)
        if newer:
            above = [i for i in items if int(i.id) > anchor]
            items = above[-max_results:] + [i for i in items if int(i.id) <= anchor]
        else:
            items = [i for i in items if int(i.id) < anchor]
    size = max(1, max_results // 2) if ragged else max_results
    chunk = items[:size]
    more = len(items) > len(chunk)
    next_token = None
    if chunk and (more or ragged):
        next_token = encode_token(chunk[-1].id, base32=base32, resumed=not ragged)
    previous_token = encode_token(chunk[0].id, base32=base32, newer=True) if paged and chunk else None
    return Page(chunk, next_token, previous_token)


def parse_time(query: Mapping[str, str], name: str) -> datetime | None:
    """X's ``start_time``/``end_time``: RFC 3339, e.g. 2026-11-25T10:00:00Z."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise errors.invalid_request(
            f"Invalid '{name}':'{raw}'. '{name}' must be a timestamp in RFC 3339 format, e.g. "
            "2026-11-25T10:00:00Z.",
            {name: [raw]},
        )
    return moment


def id_window(
    items: list[XTweet],
    since_id: str | None,
    until_id: str | None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
) -> list[XTweet]:
    """Keep posts newer than since_id / created at or after start_time, older than until_id / end_time."""
    if since_id is not None:
        items = [t for t in items if int(t.id) > int(since_id)]
    if until_id is not None:
        items = [t for t in items if int(t.id) < int(until_id)]
    if start_time is not None:
        items = [t for t in items if t.created_at >= start_time]
    if end_time is not None:
        items = [t for t in items if t.created_at < end_time]
    return items


# --- objects -------------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render_user(user: XUser, fields: Sequence[str] = (), *, user_context: bool = False) -> dict[str, Any]:
    """`user_context`: the request was made as a user (OAuth 1.0a), so `receives_your_dm` ("if you can send a
    DM to this User", the spec's User schema) has a "you" to be about; an app-only answer leaves it out."""
    full: dict[str, Any] = {
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "created_at": iso(user.created_at),
        "description": "",
        "protected": False,
        "verified": False,
        "profile_image_url": "https://abs.twimg.com/sticky/default_profile_images/default_profile_normal.png",
        "public_metrics": {"followers_count": 0, "following_count": 0, "tweet_count": 0, "listed_count": 0},
    }
    if user_context:
        full["receives_your_dm"] = user.accepts_dms
    wanted = {"id", "name", "username", *fields}
    return {k: v for k, v in full.items() if k in wanted}


def render_tweet(state: XState, tweet: XTweet, fields: Sequence[str] = ()) -> dict[str, Any]:
    full: dict[str, Any] = {
        "id": tweet.id,
        "text": tweet.text,
        # Every version carries the whole chain, oldest first (x-api/fundamentals/edit-posts.mdx).
        "edit_history_tweet_ids": list(tweet.edit_history or [tweet.id]),
        "edit_controls": _edit_controls(state, tweet),
        "author_id": tweet.author_id,
        "conversation_id": tweet.conversation_id,
        "created_at": iso(tweet.created_at),
        "display_text_range": [tweet.display_start, len(tweet.text)],
        "lang": "en",
        "possibly_sensitive": False,
        "reply_settings": "everyone",
        "public_metrics": {
            "retweet_count": 0,
            "reply_count": 0,
            "like_count": 0,
            "quote_count": 0,
            "impression_count": 0,
            "bookmark_count": 0,
        },
    }
    referenced = []
    if tweet.in_reply_to_user_id:
        full["in_reply_to_user_id"] = tweet.in_reply_to_user_id
        referenced.append({"type": "replied_to", "id": tweet.in_reply_to_tweet_id})
    if tweet.quoted_tweet_id:
        referenced.append({"type": "quoted", "id": tweet.quoted_tweet_id})
    if referenced:
        full["referenced_tweets"] = referenced
    mentions = _mention_entities(state, tweet.text)
    if mentions:
        full["entities"] = {"mentions": mentions}
    wanted = {"id", "text", "edit_history_tweet_ids", *fields}
    return {k: v for k, v in full.items() if k in wanted}


def _edit_controls(state: XState, tweet: XTweet) -> dict[str, Any]:
    """X's edit_controls: 30 minutes from the first version, 5 edits; replies to others are not editable."""
    history = tweet.edit_history or [tweet.id]
    first = state.tweets.get(history[0]) or state.deleted_tweets.get(history[0]) or tweet
    until = datetime.fromtimestamp(first.created_at.timestamp() + state.config.edit_window_s, tz=first.created_at.tzinfo)
    return {
        "is_edit_eligible": tweet.in_reply_to_user_id in (None, tweet.author_id),
        "editable_until": iso(until),
        "edits_remaining": max(0, MAX_EDITS + 1 - len(history)),
    }


def _mention_entities(state: XState, text: str) -> list[dict[str, Any]]:
    found = []
    for match in re.finditer(r"(?<![\w@])@([A-Za-z0-9_]{1,15})", text):
        entity: dict[str, Any] = {"start": match.start(), "end": match.end(), "username": match.group(1)}
        user = state.user_by_username(match.group(1), create=False)
        if user is not None:
            entity["id"] = user.id
        found.append(entity)
    return found


def render_dm_event(event: XDmEvent, fields: Sequence[str] = ()) -> dict[str, Any]:
    full: dict[str, Any] = {
        "id": event.id,
        "event_type": "MessageCreate",
        "text": event.text,
        "sender_id": event.sender_id,
        "dm_conversation_id": event.dm_conversation_id,
        "created_at": iso(event.created_at),
    }
    wanted = {"id", "event_type", "text", *fields}
    return {k: v for k, v in full.items() if k in wanted}


def tweet_page_body(
    state: XState,
    tweets: list[XTweet],
    next_token: str | None,
    query: Mapping[str, str],
    previous_token: str | None = None,
    *,
    user_context: bool = False,
) -> dict[str, Any]:
    """A timeline response: ``data``, ``includes``, ``meta``; an empty page is only ``meta``."""
    tweet_fields = parse_list(query, "tweet.fields", TWEET_FIELDS)
    user_fields = parse_list(query, "user.fields", USER_FIELDS)
    expansions = parse_list(query, "expansions", TWEET_EXPANSIONS)
    meta: dict[str, Any] = {"result_count": len(tweets)}
    if not tweets:
        if next_token:  # ragged mode: an empty page that is not the end
            meta["next_token"] = next_token
        return {"meta": meta}
    body: dict[str, Any] = {"data": [render_tweet(state, t, tweet_fields) for t in tweets]}
    includes = _tweet_includes(state, tweets, expansions, tweet_fields, user_fields, user_context)
    if includes:
        body["includes"] = includes
    meta.update(newest_id=tweets[0].id, oldest_id=tweets[-1].id)
    if next_token:
        meta["next_token"] = next_token
    if previous_token:
        meta["previous_token"] = previous_token
    body["meta"] = meta
    return body


def _tweet_includes(
    state: XState,
    tweets: list[XTweet],
    expansions: list[str],
    tweet_fields: list[str],
    user_fields: list[str],
    user_context: bool = False,
) -> dict[str, Any]:
    user_ids: list[str] = []
    referenced: list[XTweet] = []
    for tweet in tweets:
        if "author_id" in expansions:
            user_ids.append(tweet.author_id)
        if "in_reply_to_user_id" in expansions and tweet.in_reply_to_user_id:
            user_ids.append(tweet.in_reply_to_user_id)
        if "entities.mentions.username" in expansions:
            for name in tweet.mentioned_usernames:
                user = state.user_by_username(name, create=False)
                if user is not None:
                    user_ids.append(user.id)
        if "referenced_tweets.id" in expansions:
            for ref_id in (tweet.in_reply_to_tweet_id, tweet.quoted_tweet_id):
                if ref_id in state.tweets:
                    ref = state.tweets[ref_id]
                    referenced.append(ref)
                    if "referenced_tweets.id.author_id" in expansions:
                        user_ids.append(ref.author_id)
    includes: dict[str, Any] = {}
    users = [state.users[u] for u in dict.fromkeys(user_ids) if u in state.users]
    if users:
        includes["users"] = [render_user(u, user_fields, user_context=user_context) for u in users]
    if referenced:
        unique = {t.id: t for t in referenced}
        includes["tweets"] = [render_tweet(state, t, tweet_fields) for t in unique.values()]
    return includes


def dm_page_body(
    state: XState,
    events: list[XDmEvent],
    next_token: str | None,
    query: Mapping[str, str],
    previous_token: str | None = None,
) -> dict[str, Any]:
    event_fields = parse_list(query, "dm_event.fields", DM_EVENT_FIELDS)
    user_fields = parse_list(query, "user.fields", USER_FIELDS)
    expansions = parse_list(query, "expansions", DM_EVENT_EXPANSIONS)
    meta: dict[str, Any] = {"result_count": len(events)}
    if next_token:
        meta["next_token"] = next_token
    if previous_token:
        meta["previous_token"] = previous_token
    if not events:
        return {"meta": meta}
    body: dict[str, Any] = {"data": [render_dm_event(e, event_fields) for e in events]}
    user_ids: list[str] = []
    if "sender_id" in expansions:
        user_ids += [e.sender_id for e in events]
    if "participant_ids" in expansions:
        for e in events:
            user_ids += [e.sender_id, e.recipient_id]
    users = [state.users[u] for u in dict.fromkeys(user_ids) if u in state.users]
    if users:
        body["includes"] = {"users": [render_user(u, user_fields) for u in users]}
    body["meta"] = meta
    return body
