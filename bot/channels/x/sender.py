"""Posting the brand's replies and DMs on X, and finding out after a crash whether a post went out.

X has no idempotency key, so "exactly once" rests on two things: the outbox leases each row to one sender,
and a row whose sender died mid-send is reconciled (`find_delivered`) against what the account actually
posted before it is sent again.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import tweepy
from sqlalchemy import select
from tweepy.asynchronous import AsyncClient

from bot.channels.base import SendError
from bot.channels.x.api import (
    CREDENTIALS_HINT,
    TRANSIENT_ERRORS,
    api_message,
    call,
    parse_time,
    raw_client,
    retry_after_s,
    uses_user_auth_for_reads,
)
from bot.channels.x.rate_limits import RESET_MARGIN_S, SendBudget
from storage.cursors import set_send_pause
from storage.db import Database
from storage.models import Channel, OutboxItem
from storage.outbox import Delivery

log = logging.getLogger(__name__)

# Our clock and X's may differ a little; a post this much "older" than its outbox row may still be it.
CLOCK_SKEW_S = 5.0
RECONCILE_LOOKBACK = 100  # recent DMs of the conversation / recent posts of the brand to look through
_URL = re.compile(r"https?://\S+")
# X puts the "@user " mentions of a reply's thread before the text we posted (reply metadata is
# auto-populated: tweepy's recorded mentions show replies as "@GerardDalbon @Twitter ... What why?").
_LEADING_MENTIONS = re.compile(r"^(?:\.?@[A-Za-z0-9_]{1,15}\s+)+")


class XSender:
    """`ChannelSender` for X: targets `{"kind": "dm", "recipient_id"}`, `{"kind": "reply", "in_reply_to"}` and
    `{"kind": "post"}` (a standalone post on the brand's timeline: storage/actions/public_posts.py).

    `db` (optional) lets reconciliation skip posts already credited to another outbox row, so two rows
    with the same text to the same person are never both marked sent by one post.

    `alternatives` (optional; the app sets it to the brand's wordings, bot/texts.py) gives other wordings
    of a public reply: when X refuses a reply as a duplicate that is not ours, the next wording is sent
    instead of failing the reply for good.
    """

    channel = Channel.x

    def __init__(self, client: AsyncClient, brand_id: str, *, db: Database | None = None) -> None:
        self.client = client
        self.raw = raw_client(client)
        self.brand_id = str(brand_id)
        self.db = db
        self.sent = 0
        self.reconciled = 0
        self.held = 0  # sends not attempted because X's window for them was used up
        # One budget per kind of send: DMs and posts have separate windows at X.
        self.budgets = {"dm": SendBudget(), "reply": SendBudget()}
        self._paused_until: dict[str, float] = {}
        self.reworded = 0
        self.alternatives: Callable[[str], list[str]] | None = None

    # --- sending ----------------------------------------------------------------------------------
    async def deliver(self, delivery: Delivery) -> str:
        kind = delivery.target.get("kind")
        needed = {"dm": "recipient_id", "reply": "in_reply_to", "post": None}.get(str(kind), "")
        if needed == "" or (needed is not None and not delivery.target.get(needed)):
            raise SendError(f"X cannot deliver to outbox target {delivery.target!r}", permanent=True)
        kind = _WINDOW[str(kind)]  # a post and a reply are both POST /2/tweets: one window
        budget = self.budgets[kind]
        resumes_at = budget.take()
        if resumes_at is not None:
            # The window is used up: asking X would only earn a 429 (and count against the app).
            self.held += 1
            await self._pause(kind, resumes_at)
            raise SendError(_held_message(kind, resumes_at), retry_after_s=_wait(resumes_at))
        try:
            if kind == "dm":
                result = await call(
                    self.raw,
                    "create_direct_message",
                    participant_id=str(delivery.target["recipient_id"]),
                    text=delivery.text,
                    user_auth=True,
                )
                platform_id = str(result.body["data"]["dm_event_id"])
            elif delivery.target["kind"] == "post":  # standalone: no reply, nobody mentioned
                result = await call(self.raw, "create_tweet", text=delivery.text, user_auth=True)
                platform_id = str(result.body["data"]["id"])
            else:  # a reply
                result = await call(
                    self.raw,
                    "create_tweet",
                    text=delivery.text,
                    in_reply_to_tweet_id=str(delivery.target["in_reply_to"]),
                    user_auth=True,
                )
                platform_id = str(result.body["data"]["id"])
            budget.observe(result.rate_limit, result.day_limits)
            exhausted = budget.blocked_until()
            if exhausted is not None:
                await self._pause(kind, exhausted)
        except (KeyError, TypeError):
            # X accepted the request but its answer lacks the id: it may well be posted; look next time.
            raise SendError("X answered without the id of the new post") from None
        except tweepy.TooManyRequests as error:
            resumes_at = budget.refused(getattr(error.response, "headers", {}), _reset_of(error))
            await self._pause(kind, resumes_at)
            raise SendError(
                f"X rate limit (429); {_held_message(kind, resumes_at)}", retry_after_s=_wait(resumes_at)
            ) from None
        except tweepy.Forbidden as error:
            if kind == "reply" and _is_duplicate(error):
                if delivery.target["kind"] == "post":  # the same news posted twice: ours, or refused
                    found = await self.find_delivered(delivery)
                    if found is not None:
                        return found
                    raise _send_error(error) from None
                # X says this exact text is already on the account: if it is this reply, it went out.
                found = await self.find_delivered(delivery)
                if found is not None:
                    return found
                reworded = await self._reply_reworded(delivery)
                if reworded is not None:
                    return reworded
            raise _send_error(error) from None
        except (tweepy.HTTPException, *TRANSIENT_ERRORS) as error:
            raise _send_error(error) from None
        self.sent += 1
        log.info("X: delivered outbox row %s as %s %s", delivery.id, kind, platform_id)
        return platform_id

    async def _pause(self, kind: str, resumes_at: float) -> None:
        """Store when sending resumes (once per pause), for the desk's banner."""
        if self.db is None or self._paused_until.get(kind) == resumes_at:
            return
        self._paused_until[kind] = resumes_at
        log.warning("X: %s paused by X's rate limit; %s", _WHAT[kind], _held_message(kind, resumes_at))
        try:
            await set_send_pause(self.db, "x", _WHAT[kind], resumes_at)
        except Exception:  # noqa: BLE001 - the banner is a courtesy; the send is retried either way
            log.exception("X: could not store the send pause for the desk")

    async def _reply_reworded(self, delivery: Delivery) -> str | None:
        """Post the reply in the next of the brand's wordings X takes; None when none is left.

        A wording X also calls a duplicate may be this row's own earlier attempt (a sender that died after
        posting it): that post is looked for before moving on, so a reply never goes out twice.
        """
        for text in self.alternatives(delivery.text) if self.alternatives is not None else []:
            try:
                result = await call(self.raw, "create_tweet", text=text,
                                    in_reply_to_tweet_id=str(delivery.target["in_reply_to"]), user_auth=True)
                platform_id = str(result.body["data"]["id"])
            except (KeyError, TypeError):
                raise SendError("X answered without the id of the new post") from None
            except tweepy.Forbidden as error:
                if not _is_duplicate(error):
                    raise _send_error(error) from None
                found = await self.find_delivered(dataclasses.replace(delivery, text=text))
                if found is not None:
                    return found
                continue
            except (tweepy.HTTPException, *TRANSIENT_ERRORS) as error:
                raise _send_error(error) from None
            self.sent += 1
            self.reworded += 1
            log.info("X: outbox row %s was a duplicate post; delivered in another wording as %s",
                     delivery.id, platform_id)
            return platform_id
        return None

    # --- reconciling --------------------------------------------------------------------------------
    async def find_delivered(self, delivery: Delivery) -> str | None:
        kind = delivery.target.get("kind")
        try:
            if kind == "dm":
                candidates = await self._sent_dms(delivery)
            elif kind in ("reply", "post"):
                candidates = await self._sent_replies(delivery)
            else:
                return None
        except (tweepy.HTTPException, *TRANSIENT_ERRORS) as error:
            raise _send_error(error) from None
        claimed = await self._claimed_elsewhere(delivery, candidates)
        for platform_id in candidates:  # oldest first: the first attempt is the one that counts
            if platform_id not in claimed:
                self.reconciled += 1
                log.info(
                    "X: outbox row %s was already delivered as %s; not sending again",
                    delivery.id,
                    platform_id,
                )
                return platform_id
        return None

    def _since(self, delivery: Delivery) -> datetime:
        return datetime.fromtimestamp(delivery.created_at_ts, tz=UTC) - timedelta(seconds=CLOCK_SKEW_S)

    async def _sent_dms(self, delivery: Delivery) -> list[str]:
        result = await call(
            self.raw,
            "get_direct_message_events",
            participant_id=str(delivery.target["recipient_id"]),
            event_types="MessageCreate",
            dm_event_fields=["id", "text", "sender_id", "created_at"],
            max_results=RECONCILE_LOOKBACK,
        )
        since = self._since(delivery)
        return _oldest_first(
            e["id"]
            for e in result.body.get("data") or []
            if str(e.get("sender_id")) == self.brand_id
            and _same_text(e.get("text"), delivery.text)
            and _not_before(e.get("created_at"), since)
        )

    async def _sent_replies(self, delivery: Delivery) -> list[str]:
        since = self._since(delivery)
        result = await call(
            self.raw,
            "get_users_tweets",
            self.brand_id,
            start_time=since,
            max_results=RECONCILE_LOOKBACK,
            tweet_fields=["created_at", "referenced_tweets", "conversation_id"],
            user_auth=uses_user_auth_for_reads(self.client),
        )
        parent = str(delivery.target["in_reply_to"]) if delivery.target.get("kind") == "reply" else None
        return _oldest_first(
            t["id"]
            for t in result.body.get("data") or []
            if _replies_to(t) == parent
            and _same_text(t.get("text"), delivery.text)
            and _not_before(t.get("created_at"), since)
        )

    async def _claimed_elsewhere(self, delivery: Delivery, candidates: list[str]) -> set[str]:
        if self.db is None or not candidates:
            return set()
        async with self.db.session() as session:
            rows = await session.execute(
                select(OutboxItem.platform_message_id).where(  # type: ignore[call-overload]
                    OutboxItem.channel == Channel.x,
                    OutboxItem.platform_message_id.in_(candidates),  # type: ignore[union-attr]
                    OutboxItem.id != delivery.id,
                )
            )
            return {str(r) for r in rows.scalars().all()}


_WHAT = {"dm": "direct messages", "reply": "public replies"}
_WINDOW = {"dm": "dm", "reply": "reply", "post": "reply"}


def _held_message(kind: str, resumes_at: float) -> str:
    at = datetime.fromtimestamp(resumes_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"X's limit for {_WHAT[kind]} is used up; sending resumes at {at}"


def _wait(resumes_at: float) -> float:
    return max(1.0, resumes_at - time.time() + RESET_MARGIN_S)


def _reset_of(error: tweepy.TooManyRequests) -> float | None:
    wait = retry_after_s(error)
    return None if wait is None else time.time() + wait


def _replies_to(tweet: dict[str, Any]) -> str | None:
    for ref in tweet.get("referenced_tweets") or []:
        if ref.get("type") == "replied_to":
            return str(ref.get("id"))
    return None


def _normalise(text: str | None) -> str:
    # X escapes &<> in v2 post text, rewrites links to t.co and (in a reply) puts the thread's "@user "
    # mentions first; compare what we wrote, so neither side's leading mentions decide.
    plain = html.unescape(text or "").strip()
    return _URL.sub("<url>", _LEADING_MENTIONS.sub("", plain)).strip()


def _same_text(posted: str | None, ours: str) -> bool:
    return _normalise(posted) == _normalise(ours)


def _not_before(created_at: str | None, since: datetime) -> bool:
    created = parse_time(created_at)
    return created is None or created >= since


def _oldest_first(ids: Iterable[Any]) -> list[str]:
    return [str(i) for i in sorted(ids, key=int)]


def _is_duplicate(error: tweepy.HTTPException) -> bool:
    return any("duplicate" in str(m).lower() for m in error.api_messages or [])


def _send_error(error: BaseException) -> SendError:
    """What the outbox should do about a failed call to X."""
    if isinstance(error, tweepy.TooManyRequests):
        wait = retry_after_s(error)
        return SendError(
            f"X rate limit (429); retry in {wait or 0:.0f} s", retry_after_s=wait if wait else 1.0
        )
    if isinstance(error, tweepy.Unauthorized):
        return SendError(
            f"X rejected the credentials ({api_message(error)}): {CREDENTIALS_HINT}", permanent=True
        )
    if isinstance(error, (tweepy.BadRequest, tweepy.Forbidden, tweepy.NotFound)):
        # Content or recipient refused (duplicate, too long, DMs closed, tweet deleted): retrying won't help.
        return SendError(f"{_refusal_reason(error)}X refused it: {api_message(error)}", permanent=True)
    if isinstance(error, tweepy.HTTPException):
        return SendError(f"X error: {api_message(error)}")
    return SendError(f"X unreachable: {type(error).__name__}: {error}")


# X's words for the refusals an agent can act on, and what they mean for this reply (sandbox/x/state.py
# cites where each wording comes from).
_REFUSALS = (
    ("deleted or not visible", "The customer's post this replies to was deleted (or is no longer visible), "
     "so X takes no reply under it; answer by DM if it still matters. "),
    ("not been mentioned or otherwise engaged", "X takes the brand's reply only under a post that @mentions "
     "the brand or quotes one of its posts, and this one does not. "),
)


def _refusal_reason(error: tweepy.HTTPException) -> str:
    said = " ".join(str(m) for m in error.api_messages or []).lower()
    return next((reason for words, reason in _REFUSALS if words in said), "")
