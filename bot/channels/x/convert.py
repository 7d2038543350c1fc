"""X's objects → `InboundMessage`: the same message whether polled (API v2) or pushed by webhook (v1.1).

Pure functions, no I/O (only a repair, below, is logged and counted).  Each returns None for what the bot
must not answer: the brand's own posts and DMs (X echoes them back), retweets, group DMs, non-message DM
events.

- a DM is `ConversationKind.dm`, conversation_ref = the customer's user id;
- a mention is `ConversationKind.public`, conversation_ref = the thread's root tweet id (`conversation_id`);
- platform_message_id is the tweet id or the DM event id.

Every message leaves through `storable()`, so text no database can hold (a NUL, a lone surrogate in a
display name) is repaired, logged and counted rather than failing the whole page or payload it came in.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.channels.storable import storable
from bot.channels.x.api import parse_time
from storage.actions import InboundMessage
from storage.models import Channel, ConversationKind

# What the pollers ask X for, so that the converters below find what they need.
TWEET_FIELDS = [
    "author_id",
    "conversation_id",
    "created_at",
    "in_reply_to_user_id",
    "referenced_tweets",
    "note_tweet",  # the full text of posts longer than 280 characters (`text` is cut short)
    "entities",  # whom the post @mentions: X lets the brand reply only under a post that mentions it
    "edit_history_tweet_ids",  # (sent by default) an edit's earlier versions
]
DM_EVENT_FIELDS = ["id", "text", "sender_id", "created_at", "dm_conversation_id", "event_type"]
USER_FIELDS = ["username", "name"]


def users_by_id(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`includes.users` of an API v2 answer, by id."""
    users = (body.get("includes") or {}).get("users") or []
    return {str(u["id"]): u for u in users if "id" in u}


def _replied_to(tweet: Mapping[str, Any]) -> str | None:
    for ref in tweet.get("referenced_tweets") or []:
        if ref.get("type") == "replied_to":
            return str(ref.get("id"))
    return None


def _is_retweet(tweet: Mapping[str, Any]) -> bool:
    return any(ref.get("type") == "retweeted" for ref in tweet.get("referenced_tweets") or [])


def _v2_summons(tweet: Mapping[str, Any], brand_id: str) -> bool:
    """Whether an API v2 post @mentions the brand (its `entities.mentions` name the brand's id).

    The pollers ask for `entities` (TWEET_FIELDS); X leaves the field out of a post that has none, which then
    mentions nobody.  Quotes cannot summon here: the mentions timeline lists only posts that mention the
    brand or reply to it (webhooks deliver quotes: `_v1_summons`).
    """
    entities = tweet.get("entities")
    mentions = entities.get("mentions") if isinstance(entities, Mapping) else None
    return any(str(m.get("id") or "") == brand_id for m in mentions or [] if isinstance(m, Mapping))


def _other_versions(history: object, tweet_id: str) -> tuple[str, ...]:
    """The other ids of this post's edit chain (`edit_history_tweet_ids`, oldest first; X sends the whole
    chain with every version, so an older version arriving late names the newer ones too)."""
    if not isinstance(history, list):
        return ()
    return tuple(str(i) for i in history if is_x_id(i) and str(i) != tweet_id)


def mention_from_v2(
    tweet: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], brand_id: str
) -> InboundMessage | None:
    """A tweet from `GET /2/users/:id/mentions` (with TWEET_FIELDS and `expansions=author_id`)."""
    author_id = str(tweet.get("author_id") or "")
    if not author_id or author_id == brand_id or _is_retweet(tweet):
        return None
    tweet_id = str(tweet["id"])
    author = users.get(author_id) or {}
    return storable(InboundMessage(
        channel=Channel.x,
        conversation_kind=ConversationKind.public,
        conversation_ref=str(tweet.get("conversation_id") or tweet_id),
        sender_id=author_id,
        sender_handle=str(author.get("username") or ""),
        sender_name=str(author.get("name") or ""),
        # API v2 escapes &, < and > in post text; the store keeps what the customer typed.
        text=html.unescape(str((tweet.get("note_tweet") or {}).get("text") or tweet.get("text") or "")),
        platform_message_id=tweet_id,
        in_reply_to_platform_id=_replied_to(tweet),
        platform_created_at=parse_time(tweet.get("created_at")),
        summons_brand=_v2_summons(tweet, brand_id),
        other_versions=_other_versions(tweet.get("edit_history_tweet_ids"), tweet_id),
    ))


def _is_one_to_one_with(conversation_id: str | None, brand_id: str) -> bool:
    if not conversation_id:
        return True  # X left the field out; a 1-1 conversation is the only kind we can answer anyway
    low, sep, high = conversation_id.partition("-")
    return bool(sep) and brand_id in (low, high)


def dm_from_v2(
    event: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], brand_id: str
) -> InboundMessage | None:
    """An event from `GET /2/dm_events` (with DM_EVENT_FIELDS and `expansions=sender_id`)."""
    if event.get("event_type", "MessageCreate") != "MessageCreate":
        return None
    sender_id = str(event.get("sender_id") or "")
    if not sender_id or sender_id == brand_id:
        return None
    if not _is_one_to_one_with(event.get("dm_conversation_id"), brand_id):
        return None
    sender = users.get(sender_id) or {}
    return storable(InboundMessage(
        channel=Channel.x,
        conversation_kind=ConversationKind.dm,
        conversation_ref=sender_id,
        sender_id=sender_id,
        sender_handle=str(sender.get("username") or ""),
        sender_name=str(sender.get("name") or ""),
        text=str(event.get("text") or ""),
        platform_message_id=str(event["id"]),
        platform_created_at=parse_time(event.get("created_at")),
    ))


# --- Account Activity webhook payloads (v1.1 shapes) ----------------------------------------------------
_V1_DATE = "%a %b %d %H:%M:%S %z %Y"


def _v1_time(tweet: Mapping[str, Any]) -> datetime | None:
    ms = tweet.get("timestamp_ms")
    if ms:
        try:
            return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
        except (TypeError, ValueError):
            pass
    try:
        return datetime.strptime(str(tweet.get("created_at")), _V1_DATE)
    except ValueError:
        return None


def tweet_from_v1(tweet: Mapping[str, Any], brand_id: str, conversation_ref: str) -> InboundMessage | None:
    """A `tweet_create_events` item; the caller resolves the thread root (`conversation_ref`), which v1.1
    tweets do not carry (see `webhook_tweet_parent`)."""
    user = tweet.get("user") or {}
    author_id = str(user.get("id_str") or user.get("id") or "")
    if not author_id or author_id == brand_id or "retweeted_status" in tweet:
        return None
    text = (tweet.get("extended_tweet") or {}).get("full_text") or tweet.get("text") or ""
    tweet_id = str(tweet.get("id_str") or tweet["id"])
    return storable(InboundMessage(
        channel=Channel.x,
        conversation_kind=ConversationKind.public,
        conversation_ref=conversation_ref,
        sender_id=author_id,
        sender_handle=str(user.get("screen_name") or ""),
        sender_name=str(user.get("name") or ""),
        text=html.unescape(str(text)),
        platform_message_id=tweet_id,
        in_reply_to_platform_id=webhook_tweet_parent(tweet),
        platform_created_at=_v1_time(tweet),
        summons_brand=_v1_summons(tweet, brand_id),
        # v1.1 objects carry the chain as `edit_history.edit_tweet_ids` (X's docs on edited posts in v1.1
        # payloads: x-api/enterprise-gnip-2.0/fundamentals/edit-tweets.mdx).
        other_versions=_other_versions((tweet.get("edit_history") or {}).get("edit_tweet_ids"), tweet_id),
    ))


def _v1_summons(tweet: Mapping[str, Any], brand_id: str) -> bool | None:
    """Whether a v1.1 tweet @mentions the brand or quotes one of its posts (webhooks deliver quotes too)."""
    quoted_user = ((tweet.get("quoted_status") or {}).get("user") or {})
    if str(quoted_user.get("id_str") or quoted_user.get("id") or "") == brand_id:
        return True
    entities = (tweet.get("extended_tweet") or {}).get("entities") or tweet.get("entities")
    if not isinstance(entities, Mapping):
        return None
    mentions = entities.get("user_mentions") or []
    return any(
        str(m.get("id_str") or m.get("id") or "") == brand_id for m in mentions if isinstance(m, Mapping)
    )


_X_ID = re.compile(r"[0-9]{1,20}")


def is_x_id(value: object) -> bool:
    """X's ids (tweets, users, DM events) are decimal numbers; anything else in a payload is garbage."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    return _X_ID.fullmatch(str(value)) is not None


def webhook_tweet_parent(tweet: Mapping[str, Any]) -> str | None:
    parent = tweet.get("in_reply_to_status_id_str") or tweet.get("in_reply_to_status_id")
    return str(parent) if parent and is_x_id(parent) else None


def dm_from_v1(
    event: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], brand_id: str
) -> InboundMessage | None:
    """A `direct_message_events` item (`users` is the payload's id → v1.1 user map)."""
    if event.get("type") != "message_create":
        return None
    create = event.get("message_create") or {}
    sender_id = str(create.get("sender_id") or "")
    if not sender_id or sender_id == brand_id:
        return None
    sender = users.get(sender_id) or {}
    created = None
    try:
        created = datetime.fromtimestamp(int(event["created_timestamp"]) / 1000, tz=UTC)
    except (KeyError, TypeError, ValueError):
        pass
    return storable(InboundMessage(
        channel=Channel.x,
        conversation_kind=ConversationKind.dm,
        conversation_ref=sender_id,
        sender_id=sender_id,
        sender_handle=str(sender.get("screen_name") or ""),
        sender_name=str(sender.get("name") or ""),
        text=str((create.get("message_data") or {}).get("text") or ""),
        platform_message_id=str(event["id"]),
        platform_created_at=created,
    ))
