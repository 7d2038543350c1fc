"""The words every layer shares: channels, conversation kinds, queues, priorities, categories and limits.

Defined once, here, at the bottom: the store's columns (`storage.models`), the taxonomy's checks
(`bot.taxonomy`), the router and the metrics' label sets all use these, so a new queue or category is
added in one place.
"""

from __future__ import annotations

import enum


class Channel(str, enum.Enum):
    x = "x"
    telegram = "telegram"


class ConversationKind(str, enum.Enum):
    dm = "dm"  # an X direct-message conversation
    public = "public"  # a public X thread (mentions and the brand's replies)
    telegram = "telegram"  # a Telegram private chat


class Queue(str, enum.Enum):
    support = "support"
    sales = "sales"
    events = "events"
    general = "general"


class Priority(int, enum.Enum):
    """Lower sorts first in the queues."""

    urgent = 0
    high = 1
    normal = 2
    low = 3

    @classmethod
    def from_name(cls, name: str) -> Priority:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown priority {name!r}; use one of {', '.join(p.name for p in cls)}") from None


class Category(str, enum.Enum):
    """What a customer's message is about; the taxonomy maps every NLU intent to one."""

    support = "support"
    sales = "sales"
    event = "event"
    human = "human"
    smalltalk = "smalltalk"
    other = "other"


class Sentiment(str, enum.Enum):
    """How a post found by listening speaks of the brand (bot/listening.py, content/words.yml `sentiment`)."""

    negative = "negative"
    neutral = "neutral"
    positive = "positive"


class ListeningStatus(str, enum.Enum):
    """Where a listening item stands: new, noted by an agent, dismissed, or opened as a ticket."""

    new = "new"
    noted = "noted"
    dismissed = "dismissed"
    ticketed = "ticketed"


CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
SENTIMENTS: tuple[str, ...] = tuple(s.value for s in Sentiment)
LISTENING_STATUSES: tuple[str, ...] = tuple(s.value for s in ListeningStatus)
QUEUES: tuple[str, ...] = tuple(q.value for q in Queue)
PRIORITIES: tuple[str, ...] = tuple(p.name for p in sorted(Priority, reverse=True))  # low … urgent
CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)

# X counts a post's length with twitter-text's weighting; a standard account's limit.
X_POST_MAX_CHARS = 280
# The longest ticket subject the store keeps (the column's length).
TICKET_SUBJECT_MAX_CHARS = 280
# Ticket tags: lower-case letters, digits, "-" and "_" (they appear in queue links: ?tag=vip), and how
# many one ticket may carry (more stops being a label and becomes a note).
TAG_MAX_CHARS = 32
TAG_PATTERN = r"^[a-z0-9_-]{1,32}$"
MAX_TAGS_PER_TICKET = 20

# Automatic assignment (docs/desk.md, "Assignment"): how many open tickets the assigner gives one agent.
ASSIGN_CAPACITY_DEFAULT = 5
ASSIGN_CAPACITY_MAX = 100
