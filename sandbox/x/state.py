"""The emulated X world: one brand account, customers made up on the fly, their posts and DMs.

Pure state and rules (no HTTP): what X would accept, refuse and return.  The HTTP layer in
``sandbox/x/api.py`` turns requests into calls here and ``XApiError`` into X's error bodies.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from frontdesk.core.settings import (
    SANDBOX_X_ACCESS_TOKEN,
    SANDBOX_X_ACCESS_TOKEN_SECRET,
    SANDBOX_X_BEARER_TOKEN,
    SANDBOX_X_CONSUMER_KEY,
    SANDBOX_X_CONSUMER_SECRET,
)
from sandbox.x import errors
from sandbox.x.limits import X_WINDOW_S, Faults, RateLimiter, generous_rate_limits
from sandbox.x.text import MAX_WEIGHTED_LENGTH, weighted_length

_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})")
_TWITTER_EPOCH_MS = 1288834974657
DM_MAX_LENGTH = 10_000
# Edits (xdevplatform/docs x-api/fundamentals/edit-posts.mdx): within 30 minutes of the original post, at most
# 5 times; every edit is a new post id; deleting any version deletes the whole chain.
EDIT_WINDOW_S = 30 * 60
MAX_EDITS = 5
# The 403 X answers to a reply under a post whose author did not summon the replier (self-serve tiers, since
# 2026-02-23; xdevplatform/docs changelog.mdx "Addressing LLM-generated spam" and
# x-api/posts/manage-tweets/integrate.mdx "Reply restrictions").  Wording as X sends it, quoted in
# gptme/gptme-contrib pull request 811 (2026-05-02).
NOT_SUMMONED_DETAIL = (
    "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by "
    "the author of the post you are replying to."
)
# The 403 for a reply to a post that was deleted or cannot be seen (X's error 385; quoted in tweepy users'
# reports, e.g. MakotoAme/twitter-saucenao issue 11, plhery/node-twitter-api-v2 issue 366: HTTP 403).
DELETED_PARENT_DETAIL = "You attempted to reply to a Tweet that is deleted or not visible to you."


@dataclass
class XConfig:
    """Everything about one emulator instance that a test or `frontdesk sandbox` may want to change."""

    brand_username: str = "frontdesk"
    brand_name: str = "Frontdesk"
    consumer_key: str = SANDBOX_X_CONSUMER_KEY
    consumer_secret: str = SANDBOX_X_CONSUMER_SECRET
    access_token: str = SANDBOX_X_ACCESS_TOKEN
    access_token_secret: str = SANDBOX_X_ACCESS_TOKEN_SECRET
    bearer_token: str = SANDBOX_X_BEARER_TOKEN
    rate_limit_window_s: float = X_WINDOW_S
    rate_limits: dict[str, dict[str, int]] = field(default_factory=generous_rate_limits)
    mentions_reachable: int = 800  # X serves only the ~800 newest mentions
    timeline_reachable: int = 3200  # ... and the 3200 newest posts of a user timeline
    duplicate_window_s: float = 24 * 3600  # same text as a brand post this recent -> 403 duplicate
    # Self-serve tiers since 2026-02-23: a reply only under a post whose author summoned the brand (see
    # `create_tweet`).  False models Enterprise access, which the rule does not affect.
    summoned_replies_only: bool = True
    edit_window_s: float = EDIT_WINDOW_S
    # OAuth 1.0a signatures are checked against these public origins as well as the one the request hit,
    # because clients sign the URL they believe they call (tweepy: https://api.twitter.com).
    signature_origins: tuple[str, ...] = ("https://api.twitter.com", "https://api.x.com")
    timestamp_tolerance_s: float = 900.0  # 0 disables the oauth_timestamp check
    # POST /2/webhooks URL rules: "x" = X's (HTTPS, no port, public host); "sandbox" also takes local http.
    webhook_url_rules: str = "sandbox"
    # The app permission X reports in `x-access-level`: "read", "read-write" or "read-write-directmessages".
    access_level: str = "read-write-directmessages"
    # Pages shorter than max_results while more remain, the last one with a next_token to an empty page
    # (see sandbox/x/views.py `page`).
    ragged_pages: bool = False


@dataclass
class XUser:
    id: str
    username: str
    name: str
    created_at: datetime
    accepts_dms: bool = True  # False: the brand's DMs to this user get X's 403


@dataclass
class XTweet:
    id: str
    text: str
    author_id: str
    created_at: datetime
    conversation_id: str
    in_reply_to_tweet_id: str | None = None
    in_reply_to_user_id: str | None = None
    mentioned_usernames: tuple[str, ...] = ()  # lower-case, in text order
    quoted_tweet_id: str | None = None
    # Every version of this post, oldest first, this one included; shared by all versions of one chain (X
    # returns the whole chain as `edit_history_tweet_ids` on each of them).
    edit_history: list[str] = field(default_factory=list)

    @property
    def is_latest_version(self) -> bool:
        return not self.edit_history or self.edit_history[-1] == self.id

    # Where the text the author typed starts: a reply's text begins with the "@user " mentions X
    # auto-populates (its `display_text_range` starts after them).
    display_start: int = 0

    @property
    def body(self) -> str:
        """The text as its author wrote it, without the auto-populated leading mentions."""
        return self.text[self.display_start :]


@dataclass
class XDmEvent:
    id: str
    text: str
    sender_id: str
    recipient_id: str
    created_at: datetime
    # When /2/dm_events starts listing it (real X can index an event after newer ones are listed);
    # None: at once.  The event keeps its id and created_at.
    listed_from: float | None = None

    @property
    def dm_conversation_id(self) -> str:
        return conversation_id_for(self.sender_id, self.recipient_id)


def conversation_id_for(a: str, b: str) -> str:
    """X's one-to-one conversation id: the two user ids, numerically smaller first."""
    low, high = sorted((a, b), key=int)
    return f"{low}-{high}"


def stable_user_id(username: str) -> str:
    """The same 18-digit id for a username in every run, so fixtures and logs stay comparable."""
    digest = hashlib.sha256(username.lower().encode()).digest()
    return str(10**17 + int.from_bytes(digest[:8], "big") % (9 * 10**17))


# What the state tells listeners (the webhook dispatcher) about: ("tweet", XTweet) or ("dm", XDmEvent).
Listener = Callable[[str, object], None]


class _SnowflakeIds:
    """Increasing numeric string ids shaped like X's (ms since X's epoch << 22 | sequence)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            candidate = (int(self._clock() * 1000) - _TWITTER_EPOCH_MS) << 22
            self._last = max(candidate, self._last + 1)
            return str(self._last)


class XState:
    """One emulated X account (the brand) and the customers who write to it."""

    def __init__(self, config: XConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config or XConfig()
        if not _USERNAME.match(self.config.brand_username):
            raise ValueError(f"brand_username {self.config.brand_username!r} is not a valid X handle")
        self.clock = clock
        self.limits = RateLimiter(
            window_s=self.config.rate_limit_window_s, limits=self.config.rate_limits, clock=clock
        )
        self.faults = Faults()
        self.webhook_url: str | None = None
        self.webhook_deliveries: list[dict[str, object]] = []
        # Registered webhooks (sandbox/x/account_activity.py): id -> WebhookConfig, id -> subscribed user ids.
        self.webhook_configs: dict[str, object] = {}
        self.webhook_subscriptions: dict[str, set[str]] = {}
        self._ids = _SnowflakeIds(clock)
        self._listeners: list[Listener] = []
        self._init_world()

    def _init_world(self) -> None:
        self.users: dict[str, XUser] = {}
        self._by_username: dict[str, XUser] = {}
        self.tweets: dict[str, XTweet] = {}  # insertion order == id order; deleted posts leave it
        self.deleted_tweets: dict[str, XTweet] = {}  # ... and wait here (only GET /_sandbox/sent reads them)
        self.dm_events: list[XDmEvent] = []  # oldest first
        # Per-user indexes (oldest first) so a poll costs what one user's timeline holds, not the world.
        self._mentions: dict[str, list[XTweet]] = {}
        self._authored: dict[str, list[XTweet]] = {}
        self._dms: dict[str, list[XDmEvent]] = {}
        self._sent: list[tuple[str, str]] = []  # ("tweet"|"dm", id) in the order the brand posted
        self.brand = self._create_user(self.config.brand_username, self.config.brand_name)

    # --- lifecycle -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every user, post, DM, fault, rate-limit window and webhook; keep the configuration.

        Ids keep increasing across resets, so a client's remembered since_id never points into the future.
        """
        self._init_world()
        self.faults.clear()
        self.limits.clear()
        self.webhook_url = None
        self.webhook_deliveries = []
        self.webhook_configs = {}
        self.webhook_subscriptions = {}

    def new_id(self) -> str:
        """A fresh snowflake id (posts, DM events and webhook configs share X's id space)."""
        return self._ids.next()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, kind: str, item: object) -> None:
        for listener in list(self._listeners):
            listener(kind, item)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    # --- users -------------------------------------------------------------------------------------
    def _create_user(self, username: str, name: str | None = None) -> XUser:
        user = XUser(
            id=stable_user_id(username), username=username, name=name or username, created_at=self.now()
        )
        self.users[user.id] = user
        self._by_username[username.lower()] = user
        return user

    def user_by_username(self, username: str, *, create: bool = True) -> XUser | None:
        username = username.lstrip("@")
        if not _USERNAME.match(username):
            raise ValueError(f"{username!r} is not a valid X username (1-15 letters, digits or _)")
        user = self._by_username.get(username.lower())
        if user is None and create:
            user = self._create_user(username)
        return user

    def user(self, user_id: str) -> XUser | None:
        return self.users.get(user_id)

    # --- what customers do (control API) ------------------------------------------------------------
    def add_mention(
        self,
        author: str,
        text: str,
        in_reply_to: str | None = None,
        *,
        edit_of: str | None = None,
        quote_of: str | None = None,
        mention_brand: bool = True,
    ) -> XTweet:
        """A customer posts a tweet mentioning the brand ("@brand " is prepended when missing).

        `mention_brand=False` leaves the text as it is: such a post reaches the brand only as a reply to one of
        its posts (the customer unticked the brand under "Replying to") or as a quote of one; X then refuses
        the brand's reply under it.  `edit_of` edits an earlier post of the same author (a new id that
        continues its edit chain, X's rules for edits applying); `quote_of` quotes a post.
        """
        user = self.user_by_username(author)
        assert user is not None
        if user.id == self.brand.id:
            raise ValueError("the author must be a customer, not the brand itself")
        if not text.strip():
            raise ValueError("text must not be empty")
        handle = self.brand.username.lower()
        if mention_brand and handle not in _mentions_in(text):
            text = f"@{self.brand.username} {text}"
        original = self._editable(user, edit_of) if edit_of is not None else None
        if original is not None:
            if in_reply_to is not None or quote_of is not None:
                raise ValueError("an edit keeps the original's reply and quote: give only `edit_of`")
            in_reply_to = original.in_reply_to_tweet_id
            quote_of = original.quoted_tweet_id
        parent = self._existing(in_reply_to, "in_reply_to")
        quoted = self._existing(quote_of, "quote_of")
        reaches_brand = (
            handle in _mentions_in(text)
            or (parent is not None and parent.author_id == self.brand.id)
            or (quoted is not None and quoted.author_id == self.brand.id)
        )
        if not reaches_brand:
            raise ValueError(
                "this post would not reach the brand: without @mentioning it, it must reply to or quote "
                "one of the brand's posts"
            )
        return self._store_tweet(user, text, parent, quoted=quoted, edits=original)

    def _existing(self, tweet_id: str | None, name: str) -> XTweet | None:
        if tweet_id is None:
            return None
        found = self.tweets.get(str(tweet_id))
        if found is None:
            raise ValueError(f"{name} {tweet_id!r}: no such tweet in the sandbox")
        return found

    def _editable(self, author: XUser, tweet_id: str) -> XTweet:
        """The latest version of the post `tweet_id` if X would let `author` edit it now (edit-posts.mdx)."""
        original = self._existing(tweet_id, "edit_of")
        assert original is not None
        if original.author_id != author.id:
            raise ValueError("edit_of: only the author can edit a post")
        if not original.is_latest_version:
            raise ValueError(f"edit_of: edit the latest version ({original.edit_history[-1]}), not an older one")
        if original.in_reply_to_user_id not in (None, author.id):
            raise ValueError("edit_of: X does not let a reply to someone else be edited (non-self-thread reply)")
        first = self.tweets.get(original.edit_history[0]) or original
        if self.clock() - first.created_at.timestamp() > self.config.edit_window_s:
            raise ValueError("edit_of: the 30-minute edit window of that post has closed")
        if len(original.edit_history) > MAX_EDITS:
            raise ValueError(f"edit_of: a post can be edited at most {MAX_EDITS} times")
        return original

    def delete_tweet(self, tweet_id: str) -> list[str]:
        """Delete a post and, as X does, every version of its edit chain; returns the ids deleted."""
        tweet = self.tweets.get(str(tweet_id))
        if tweet is None:
            raise ValueError(f"{tweet_id!r}: no such tweet in the sandbox")
        gone = [i for i in (tweet.edit_history or [tweet.id]) if i in self.tweets]
        for item_id in gone:
            item = self.tweets.pop(item_id)
            self.deleted_tweets[item_id] = item
            for index in (self._mentions, self._authored):
                for timeline in index.values():
                    if item in timeline:
                        timeline.remove(item)
        return gone

    def add_post(self, author: str, text: str) -> XTweet:
        """Someone posts publicly without addressing the brand (what only recent search finds)."""
        user = self.user_by_username(author)
        assert user is not None
        if user.id == self.brand.id:
            raise ValueError("the author must be a customer, not the brand itself")
        if not text.strip():
            raise ValueError("text must not be empty")
        if self.brand.username.lower() in _mentions_in(text):
            raise ValueError("this post @mentions the brand: post it with POST /_sandbox/mentions")
        return self._store_tweet(user, text, None)

    def search_recent(self, matches: Callable[[XTweet], bool], window_s: float) -> list[XTweet]:
        """Posts of the last `window_s` seconds that `matches`, newest first (edited: latest version only)."""
        cutoff = self.clock() - window_s
        found = []
        for tweet in reversed(list(self.tweets.values())):
            if tweet.created_at.timestamp() < cutoff:
                break  # insertion order is id order is time order
            if tweet.is_latest_version and matches(tweet):
                found.append(tweet)
        return found

    def add_dm(self, sender: str, text: str, *, index_delay_s: float = 0.0) -> XDmEvent:
        """A customer sends the brand a direct message; listed only `index_delay_s` after it was sent."""
        user = self.user_by_username(sender)
        assert user is not None
        if user.id == self.brand.id:
            raise ValueError("the sender must be a customer, not the brand itself")
        if not text.strip():
            raise ValueError("text must not be empty")
        if index_delay_s < 0:
            raise ValueError("index_delay_s must be >= 0")
        listed_from = self.clock() + index_delay_s if index_delay_s else None
        return self._store_dm(user.id, self.brand.id, text, listed_from=listed_from)

    # --- what the brand does (API) -----------------------------------------------------------------
    def create_tweet(self, author_id: str, text: str | None, in_reply_to_tweet_id: str | None) -> XTweet:
        if text is None or not text.strip():
            raise errors.invalid_request("The `text` field must be present and not empty.", {"text": [""]})
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            raise errors.forbidden(
                "Your Tweet text is too long. For more information on how X determines text length, "
                "see https://github.com/twitter/twitter-text."
            )
        cutoff = self.clock() - self.config.duplicate_window_s
        for earlier in reversed(self._authored.get(author_id, [])):
            if earlier.created_at.timestamp() < cutoff:
                break
            if earlier.body == text:
                raise errors.forbidden("You are not allowed to create a Tweet with duplicate content.")
        parent = None
        if in_reply_to_tweet_id is not None:
            parent = self.tweets.get(str(in_reply_to_tweet_id))
            if parent is None:  # never existed, deleted, or not visible: X cannot tell them apart either
                raise errors.forbidden(DELETED_PARENT_DETAIL)
            if (
                self.config.summoned_replies_only
                and parent.author_id != author_id  # one's own thread needs no summons
                and not self._summons(parent, author_id)
            ):
                raise errors.forbidden(NOT_SUMMONED_DETAIL)
        author = self.users[author_id]
        tweet = self._store_tweet(author, text, parent, reply_mentions=True)
        if author_id == self.brand.id:
            self._sent.append(("tweet", tweet.id))
        return tweet

    def _summons(self, tweet: XTweet, user_id: str) -> bool:
        """Whether `tweet`'s author summoned `user_id`: @mentioned them or quoted one of their posts."""
        user = self.users[user_id]
        if user.username.lower() in tweet.mentioned_usernames:
            return True
        quoted = self.tweets.get(tweet.quoted_tweet_id or "")
        return quoted is not None and quoted.author_id == user_id

    def send_dm(self, sender_id: str, participant_id: str, text: str | None) -> XDmEvent:
        if text is None or not text.strip():
            raise errors.invalid_request("The `text` field must be present and not empty.", {"text": [""]})
        if len(text) > DM_MAX_LENGTH:
            raise errors.invalid_request(
                f"The `text` field must be at most {DM_MAX_LENGTH} characters.", {"text": [text[:20]]}
            )
        if participant_id == sender_id:
            raise errors.invalid_request(
                "You cannot send a direct message to yourself.", {"participant_id": [participant_id]}
            )
        recipient = self.users.get(participant_id)
        if recipient is None or not recipient.accepts_dms:
            raise errors.forbidden("You are not allowed to send messages to this user.")
        event = self._store_dm(sender_id, participant_id, text)
        if sender_id == self.brand.id:
            self._sent.append(("dm", event.id))
        return event

    # --- storage ---------------------------------------------------------------------------------
    def _store_tweet(
        self,
        author: XUser,
        text: str,
        parent: XTweet | None,
        *,
        quoted: XTweet | None = None,
        edits: XTweet | None = None,
        reply_mentions: bool = False,
    ) -> XTweet:
        tweet_id = self._ids.next()
        history = edits.edit_history if edits is not None else []
        history.append(tweet_id)
        prefix = self._reply_prefix(author, text, parent) if reply_mentions else ""
        text = prefix + text
        tweet = XTweet(
            id=tweet_id,
            text=text,
            display_start=len(prefix),
            author_id=author.id,
            created_at=self.now(),
            conversation_id=(
                edits.conversation_id if edits is not None else parent.conversation_id if parent else tweet_id
            ),
            in_reply_to_tweet_id=parent.id if parent else None,
            in_reply_to_user_id=parent.author_id if parent else None,
            mentioned_usernames=tuple(_mentions_in(text)),
            quoted_tweet_id=quoted.id if quoted else None,
            edit_history=history,
        )
        self.tweets[tweet.id] = tweet
        self._authored.setdefault(author.id, []).append(tweet)
        mentioned = {u.id for name in tweet.mentioned_usernames if (u := self._by_username.get(name))}
        if tweet.in_reply_to_user_id:
            mentioned.add(tweet.in_reply_to_user_id)
        if quoted is not None:
            mentioned.add(quoted.author_id)
        for user_id in mentioned - {author.id}:
            self._mentions.setdefault(user_id, []).append(tweet)
        self._emit("tweet", tweet)
        return tweet

    def _reply_prefix(self, author: XUser, text: str, parent: XTweet | None) -> str:
        """The "@user " mentions X puts before a reply's text: the parent's author, then the users the
        parent mentioned, never the replier, each once, unless the text already starts with them.

        Real X does this for every reply made through POST /2/tweets (reply metadata is auto-populated):
        tweepy's recorded `test_asyncclient_get_users_mentions.yaml` shows a reply as "@GerardDalbon
        @Twitter @dsa_intl_comm What why?", and `display_text_range` (X API v2 spec, DisplayTextRange)
        marks where the typed text starts.
        """
        if parent is None:
            return ""
        names: list[str] = []
        parent_author = self.users.get(parent.author_id)
        if parent_author is not None:
            names.append(parent_author.username)
        for lowered in parent.mentioned_usernames:
            user = self._by_username.get(lowered)
            names.append(user.username if user is not None else lowered)
        typed = set(_leading_mentions(text))
        unique: list[str] = []
        for name in names:
            low = name.lower()
            if low == author.username.lower() or low in typed or low in {u.lower() for u in unique}:
                continue
            unique.append(name)
        return "".join(f"@{name} " for name in unique)

    def _store_dm(
        self, sender_id: str, recipient_id: str, text: str, *, listed_from: float | None = None
    ) -> XDmEvent:
        event = XDmEvent(
            id=self._ids.next(),
            text=text,
            sender_id=sender_id,
            recipient_id=recipient_id,
            created_at=self.now(),
            listed_from=listed_from,
        )
        self.dm_events.append(event)
        for user_id in {sender_id, recipient_id}:
            self._dms.setdefault(user_id, []).append(event)
        self._emit("dm", event)
        return event

    # --- queries ---------------------------------------------------------------------------------
    def mentions_of(self, user_id: str) -> list[XTweet]:
        """Posts by others that @-mention the user or reply to them, newest first, as far back as X serves.

        A post counts for the users that existed when it was posted (as on X, where a handle that
        does not exist yet mentions nobody).
        """
        # An edited post is listed as its latest version only (the older ones stay readable by id).
        found = [t for t in self._mentions.get(user_id, []) if t.is_latest_version]
        return found[::-1][: self.config.mentions_reachable]

    def timeline_of(self, user_id: str, *, exclude_replies: bool = False) -> list[XTweet]:
        """The user's own posts, newest first (the 3200 newest, before excluding replies)."""
        found = [t for t in self._authored.get(user_id, []) if t.is_latest_version]
        found = found[::-1][: self.config.timeline_reachable]
        if exclude_replies:
            found = [t for t in found if t.in_reply_to_tweet_id is None]
        return found

    def dm_events_of(self, user_id: str, participant_id: str | None = None) -> list[XDmEvent]:
        """The user's DM events (sent and received), newest first; one conversation if participant_id."""
        now = self.clock()
        events = [e for e in self._dms.get(user_id, [])[::-1] if e.listed_from is None or e.listed_from <= now]
        if participant_id is not None:
            events = [e for e in events if participant_id in (e.sender_id, e.recipient_id)]
        return events

    def sent(self) -> dict[str, list[dict[str, object]]]:
        """Everything the brand posted, in order: the control API's GET /_sandbox/sent."""
        tweets: list[dict[str, object]] = []
        dms: list[dict[str, object]] = []
        by_id = {e.id: e for e in self.dm_events}
        for kind, item_id in self._sent:
            if kind == "tweet":
                t = self.tweets.get(item_id) or self.deleted_tweets[item_id]
                # `text` as the brand typed it; `full_text` as X shows it (with the auto-populated mentions).
                tweets.append(
                    {"id": t.id, "text": t.body, "full_text": t.text, "in_reply_to_tweet_id": t.in_reply_to_tweet_id}
                )
            else:
                e = by_id[item_id]
                dms.append({"id": e.id, "recipient": self.users[e.recipient_id].username, "text": e.text})
        return {"tweets": tweets, "dms": dms}


def _mentions_in(text: str) -> list[str]:
    return [m.lower() for m in _MENTION.findall(text)]


_LEADING_MENTIONS = re.compile(r"^(?:@([A-Za-z0-9_]{1,15})\s+)+")


def _leading_mentions(text: str) -> list[str]:
    match = _LEADING_MENTIONS.match(text)
    return [m.lower() for m in re.findall(r"@([A-Za-z0-9_]{1,15})", match.group(0))] if match else []
