"""The listening poller: each listening rule's new matches from X's recent search, classified and stored.

`GET /2/tweets/search/recent` per rule (`ListeningRule.search_query`), newest first, with `since_id` from the
rule's cursor `x:<brand id>:listening:<rule>:since_id` (channel_cursors): each poll pages (`next_token`) until
caught up, stores the new posts (`listening_items`, one row per post id) and only then moves the cursor, so a
crash repeats a poll and loses nothing.  A rule's first poll reaches back `backfill_s` (never past X's 7 days).
Posts already stored are not classified again; the brand's own posts are skipped.

It runs with the mention and DM pollers, so only under the account's leader lease (bot/channels/leading.py),
every `FRONTDESK_X_LISTENING_POLL_S` seconds (docs/listening.md: the cost and the rate limit).  It reads with
the user's token: X answers `receives_your_dm` (may the brand DM this author?) only to a user.
Nothing is ever sent from here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import tweepy

from bot.channels.x.api import api_message, parse_time
from bot.channels.x.convert import users_by_id
from bot.channels.x.poller import MAX_PAGES_PER_POLL, PagingUnfinished, Poller
from bot.listening_rules import ListeningRule, ListeningRules
from storage import listening
from storage.actions.listening import NewListeningItem, record_items
from storage.cursors import get_cursor, set_cursor

log = logging.getLogger(__name__)

SEARCH_TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "entities", "referenced_tweets", "note_tweet"]
SEARCH_USER_FIELDS = ["username", "name", "receives_your_dm"]
RECENT_SEARCH_WINDOW_S = 7 * 24 * 3600 - 60  # X's 7 days, less a minute for clocks that disagree

Classify = Callable[[str], Awaitable[Any]]  # -> an object with category, intent, confidence, sentiment


@dataclass
class _Scan:
    since_id: str | None
    start_time: datetime | None
    token: str | None = None
    pages: int = 0
    tweets: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


class ListeningPoller(Poller):
    kind = "listening"

    def __init__(
        self, *args: Any, rules: Callable[[], ListeningRules], classify: Classify, brand_username: str = "",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("page_size", 100)
        super().__init__(*args, **kwargs)
        self.rules = rules
        self.classify = classify
        self.brand_username = brand_username.lower()
        self._unfinished: dict[str, _Scan] = {}
        self.found = 0  # items stored for the first time
        self.rule_errors: dict[str, str] = {}  # rule name -> why X refused its query

    def rule_cursor(self, rule: ListeningRule) -> str:
        return f"x:{self.brand_id}:listening:{rule.name}:since_id"

    async def poll_once(self) -> int:
        new = 0
        unfinished = False
        for rule in self.rules().rules:
            try:
                new += await self._poll_rule(rule)
                self.rule_errors.pop(rule.name, None)
            except PagingUnfinished:
                unfinished = True  # the others still get their turn; this rule resumes next round
            except tweepy.BadRequest as error:  # X refused this rule's query: the others carry on
                self.rule_errors[rule.name] = api_message(error)
                log.error("X listening: rule %r was refused (%s); fix it in listening.yml", rule.name,
                          self.rule_errors[rule.name])
        self.found += new
        if unfinished:
            raise PagingUnfinished(self.kind)
        return new

    async def _poll_rule(self, rule: ListeningRule) -> int:
        cursor = self.rule_cursor(rule)
        since_id = await get_cursor(self.db, cursor)
        scan = self._unfinished.pop(rule.name, None)
        if scan is None or scan.since_id != since_id:
            start = None
            if since_id is None:
                reach = min(self.backfill_s, RECENT_SEARCH_WINDOW_S)
                start = (datetime.now(UTC) - timedelta(seconds=reach)).replace(microsecond=0)
            scan = _Scan(since_id, start)
        try:
            await self._fetch(rule, scan)
        except BaseException:
            self._unfinished[rule.name] = scan
            raise
        if not scan.tweets:
            return 0
        stored = await self._store(rule, scan)
        newest = max(int(t["id"]) for t in scan.tweets)
        if since_id is None or newest > int(since_id):
            await set_cursor(self.db, cursor, str(newest))
        return stored

    async def _fetch(self, rule: ListeningRule, scan: _Scan) -> None:
        while True:
            result = await self._get(
                "search_recent_tweets",
                rule.search_query,
                since_id=scan.since_id,
                start_time=scan.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if scan.start_time else None,
                next_token=scan.token,
                max_results=self.page_size,
                tweet_fields=SEARCH_TWEET_FIELDS,
                expansions=["author_id"],
                user_fields=SEARCH_USER_FIELDS,
                user_auth=True,
            )
            scan.pages += 1
            scan.tweets.extend(result.body.get("data") or [])
            scan.users.update(users_by_id(result.body))
            scan.token = (result.body.get("meta") or {}).get("next_token")
            if not scan.token:
                return
            if scan.pages >= MAX_PAGES_PER_POLL:
                raise PagingUnfinished(f"{self.kind}:{rule.name}")

    async def _store(self, rule: ListeningRule, scan: _Scan) -> int:
        tweets = [t for t in scan.tweets if str(t.get("author_id")) != self.brand_id]
        known = await listening.known_post_ids(self.db, (str(t["id"]) for t in tweets))
        fresh = [t for t in sorted(tweets, key=lambda t: int(t["id"])) if str(t["id"]) not in known]
        quoted = {ref["id"] for t in fresh for ref in t.get("referenced_tweets") or [] if ref.get("type") == "quoted"}
        brand_posts = await listening.brand_post_ids(self.db, quoted)
        items = []
        for tweet in fresh:
            author = scan.users.get(str(tweet.get("author_id")), {})
            text = (tweet.get("note_tweet") or {}).get("text") or tweet.get("text") or ""
            verdict = await self.classify(text)
            accepts = author.get("receives_your_dm")
            items.append(NewListeningItem(
                platform_post_id=str(tweet["id"]),
                conversation_ref=str(tweet.get("conversation_id") or tweet["id"]),
                rule=rule.name,
                author_id=str(tweet.get("author_id") or ""),
                author_handle=str(author.get("username") or ""),
                author_name=str(author.get("name") or ""),
                author_accepts_dms=accepts if isinstance(accepts, bool) else None,
                text=text,
                posted_at=parse_time(tweet.get("created_at")) or datetime.now(UTC),
                category=verdict.category,
                intent=verdict.intent,
                confidence=verdict.confidence,
                sentiment=verdict.sentiment,
                addressed_brand=self._addresses_brand(tweet, brand_posts),
            ))
        return len(await record_items(self.db, items))

    def _addresses_brand(self, tweet: dict[str, Any], brand_posts: set[str]) -> bool:
        """The author @mentioned the brand or quoted one of its posts: X then allows the brand's reply."""
        mentions = (tweet.get("entities") or {}).get("mentions") or []
        for mention in mentions:
            if str(mention.get("id") or "") == self.brand_id:
                return True
            if self.brand_username and str(mention.get("username") or "").lower() == self.brand_username:
                return True
        return any(ref.get("type") == "quoted" and str(ref.get("id")) in brand_posts
                   for ref in tweet.get("referenced_tweets") or [])
