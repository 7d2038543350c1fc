"""The ticket store's tables.

Conversation status is explicit (as in Chatwoot): the bot speaks only while a conversation is `bot`.
Uniqueness that protects against double work lives in the database itself, not in application checks:

- a contact is unique per (channel, platform user id);
- a message is unique per (channel, platform message id), so the same tweet or DM is never stored twice;
- a ticket's `open_conversation_id` equals its conversation while the ticket is open and is NULL once it is
  closed; being UNIQUE, it allows at most one open ticket per conversation on SQLite and PostgreSQL alike;
- an outbox row is unique per idempotency key.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    literal_column,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# The shared vocabulary is defined once, in the core; the store's columns use it (and re-export it).
from frontdesk.core.vocabulary import (  # noqa: F401
    ASSIGN_CAPACITY_DEFAULT,
    TICKET_SUBJECT_MAX_CHARS,
    Channel,
    ConversationKind,
    ListeningStatus,
    Priority,
    Queue,
    Sentiment,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class EnumAsString(TypeDecorator):
    """Stores a str enum by its value in a plain VARCHAR.

    Native PostgreSQL ENUM types would need a migration for every new value; a string column keeps
    SQLite and PostgreSQL identical, and attributes still come back as enum members.
    """

    impl = String(16)
    cache_ok = True

    def __init__(self, enum_cls: type[enum.Enum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else self.enum_cls(value).value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else self.enum_cls(value)


class IntEnumAsInteger(EnumAsString):
    """The same for int enums (priorities), so they sort in SQL."""

    impl = Integer()
    cache_ok = True


def _enum(default: enum.Enum | None, *, index: bool = False, nullable: bool = False) -> Any:
    column_type = IntEnumAsInteger if isinstance(default, int) else EnumAsString
    column = Column(column_type(type(default)), nullable=nullable, index=index)
    return Field(default=default, sa_column=column)


class ConversationStatus(str, enum.Enum):
    bot = "bot"  # the bot answers
    queued = "queued"  # escalated, waiting for an agent; the bot is silent
    agent = "agent"  # an agent holds it; the bot is silent
    resolved = "resolved"  # closed; the next customer message starts a new round with the bot


class Direction(str, enum.Enum):
    inbound = "in"
    outbound = "out"


class Author(str, enum.Enum):
    customer = "customer"
    bot = "bot"
    agent = "agent"
    system = "system"


class MessageKind(str, enum.Enum):
    message = "message"  # seen by the customer (or written by them)
    note = "note"  # internal: seen only by agents


class TicketStatus(str, enum.Enum):
    queued = "queued"  # open, nobody holds it
    assigned = "assigned"  # open, an agent holds it
    handed_back = "handed_back"  # closed: the agent gave the conversation back to the bot
    resolved = "resolved"  # closed: done

    @property
    def is_open(self) -> bool:
        return self in (TicketStatus.queued, TicketStatus.assigned)


class AgentRole(str, enum.Enum):
    agent = "agent"
    admin = "admin"


class OutboxStatus(str, enum.Enum):
    pending = "pending"  # waiting for its next attempt
    sending = "sending"  # leased by a sender; if the lease lapses, reconcile before sending again
    sent = "sent"
    failed = "failed"  # gave up (e.g. the platform refused it for good); visible to agents


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("channel", "platform_user_id", name="uq_contacts_channel_user"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel = Field(sa_column=Column(EnumAsString(Channel), nullable=False))
    platform_user_id: str = Field(max_length=64)
    handle: str = Field(default="", max_length=128)
    display_name: str = Field(default="", max_length=256)
    # Set by an agent who knows two contacts are one person (their X and their Telegram): every contact of
    # that person names the same one, the lowest id of the group (storage/customers.py).  No foreign key:
    # contacts are never deleted (erasure pseudonymises them and unlinks), and SQLite could only add one
    # by rebuilding a table every other table points at.
    person_id: int | None = Field(default=None, index=True)
    # Consent to announcements (docs/outbound.md): the later of the two wins.  Opt-in is explicit ("keep me
    # posted", an event registration); "stop" on any channel opts out.  Read through storage/outreach.py.
    outreach_opt_in_at: datetime | None = _ts()
    outreach_opt_out_at: datetime | None = _ts()
    created_at: datetime = _created()


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=256)
    role: AgentRole = _enum(AgentRole.agent)
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    active: bool = True
    created_at: datetime = _created()


class SessionKind(str, enum.Enum):
    cookie = "cookie"  # a desk page sign-in (the session cookie names it)
    token = "token"  # a POST /api/token bearer token


class AgentSession(SQLModel, table=True):
    """A sign-in the server can end: the cookie or bearer token names it by a random secret.

    Only the secret's SHA-256 is stored, so a copy of the database opens no desk.
    """

    __tablename__ = "agent_sessions"
    __table_args__ = (Index("ix_agent_sessions_agent", "agent_id", "revoked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    secret_hash: str = Field(max_length=64, unique=True)
    agent_id: int = Field(foreign_key="agents.id")
    kind: SessionKind = Field(sa_column=Column(EnumAsString(SessionKind), nullable=False))
    address: str | None = Field(default=None, max_length=64)  # the client address that signed in
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    revoked_at: datetime | None = _ts()


class LoginFailure(SQLModel, table=True):
    """One failed (or still unchecked) sign-in: the login throttle counts these per account and per address."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_account", "account", "failed_at"),
        Index("ix_login_failures_address", "address", "failed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(max_length=64)  # SHA-256 of the normalised e-mail tried: no personal data kept
    address: str | None = Field(default=None, max_length=64)
    failed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "kind", "platform_ref", name="uq_conversations_platform_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    channel: Channel = Field(sa_column=Column(EnumAsString(Channel), nullable=False))
    kind: ConversationKind = Field(sa_column=Column(EnumAsString(ConversationKind), nullable=False))
    # X DM: the customer's user id; public thread: the thread's root tweet id; Telegram: the chat id.
    platform_ref: str = Field(max_length=64)
    status: ConversationStatus = _enum(ConversationStatus.bot, index=True)
    # What the bot remembers between messages of this round (asked to rephrase, lead details asked for, ...).
    bot_state: dict[str, Any] = _json()
    # Work lease: which worker is handling this conversation's inbox right now, and until when.
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_queue_status", "queue", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    open_conversation_id: int | None = Field(default=None, unique=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    queue: Queue = Field(sa_column=Column(EnumAsString(Queue), nullable=False))
    status: TicketStatus = _enum(TicketStatus.queued)
    priority: Priority = _enum(Priority.normal)
    category: str = Field(default="other", max_length=16)
    subject: str = Field(default="", max_length=TICKET_SUBJECT_MAX_CHARS)
    assignee_id: int | None = Field(default=None, foreign_key="agents.id", index=True)
    # Structured facts gathered on the way: the sales lead, event registration, escalation reason.
    data: dict[str, Any] = _json()
    queued_note_sent: bool = False  # the "you're in the queue" note goes out at most once per ticket
    created_at: datetime = _created()
    first_response_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    updated_at: datetime = _created()


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "platform_message_id", name="uq_messages_channel_platform_id"),
        # The inbox: inbound messages not yet handled, oldest first per conversation.
        Index("ix_messages_inbox", "conversation_id", "handled_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id")
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    channel: Channel = Field(sa_column=Column(EnumAsString(Channel), nullable=False))
    direction: Direction = Field(sa_column=Column(EnumAsString(Direction), nullable=False))
    author: Author = Field(sa_column=Column(EnumAsString(Author), nullable=False))
    kind: MessageKind = _enum(MessageKind.message)
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    # Inbound: who wrote it.  Usually the conversation's customer, but anyone can reply in a public thread,
    # and a stranger must never pass for the customer.  NULL for outbound messages.
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    # The platform's id: tweet id, DM event id, Telegram "chat_id:message_id". NULL for an outbound message
    # until it is delivered.
    platform_message_id: str | None = Field(default=None, max_length=64)
    in_reply_to_platform_id: str | None = Field(default=None, max_length=64)
    # Inbound X posts: whether the author @mentioned the brand or quoted one of its posts, which X requires of
    # a post the brand replies under (since 2026-02-23).  NULL: not known (DMs, Telegram, older rows).
    summons_brand: bool | None = None
    intent: str | None = Field(default=None, max_length=64)
    confidence: float | None = None
    category: str | None = Field(default=None, max_length=16)
    entities: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    corrected_intent: str | None = Field(default=None, max_length=64)
    platform_created_at: datetime | None = _ts()
    created_at: datetime = _created()
    # Inbound: when the router dealt with it (None: waiting).  Outbound: when it was written (there is
    # nothing for the bot to do with it), so that only waiting messages have none (ix_messages_waiting).
    handled_at: datetime | None = _ts()
    delivered_at: datetime | None = _ts()  # outbound: the platform accepted it


# The rows of the inbox: inbound messages the bot has not handled yet.  One definition for the partial
# index below and for every query of the inbox (storage.inbox, storage.gauges).  The direction is a literal:
# a partial index serves only a query whose WHERE implies its predicate, and `direction = $1` implies nothing
# about a generic plan.
WAITING_MESSAGES = and_(
    Message.direction == literal_column(f"'{Direction.inbound.value}'"),
    Message.handled_at.is_(None),  # type: ignore[union-attr]
)
# Only the waiting messages, so the worker's lease reads those and not the brand's whole history (migration
# 0018).  Outbound rows are stored handled for the same reason: then "handled_at IS NULL" is as rare in
# PostgreSQL's statistics as it is in the table, and its planner picks this index.
Index("ix_messages_waiting", Message.conversation_id, Message.id,
      postgresql_where=WAITING_MESSAGES, sqlite_where=WAITING_MESSAGES)


class TicketEvent(SQLModel, table=True):
    """Append-only audit trail: who did what to which ticket, when."""

    __tablename__ = "ticket_events"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    actor: str = Field(max_length=64)  # "bot", "system", "customer" or "agent:<id>"
    action: str = Field(max_length=32)
    detail: dict[str, Any] = _json()
    created_at: datetime = _created()


class OutboxItem(SQLModel, table=True):
    """A message Frontdesk must deliver to a channel: durable, retried, never sent twice."""

    __tablename__ = "outbox"
    # ix_outbox_conversation: leasing checks each due row for an earlier undelivered row of its conversation
    # (and a later one): without it every lease scanned the whole outbox, which only ever grows.
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_conversation", "conversation_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=128, unique=True)
    channel: Channel = Field(sa_column=Column(EnumAsString(Channel), nullable=False))
    message_id: int = Field(foreign_key="messages.id", index=True)
    conversation_id: int = Field(foreign_key="conversations.id")
    # Where it goes: {"kind": "dm", "recipient_id"} | {"kind": "reply", "in_reply_to"} | {"kind": "telegram", "chat_id"}
    target: dict[str, Any] = _json()
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: OutboxStatus = _enum(OutboxStatus.pending)
    attempts: int = 0
    next_attempt_at: datetime = _created()
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    platform_message_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created()
    sent_at: datetime | None = _ts()


class ChannelCursor(SQLModel, table=True):
    """Where each poller got to (e.g. the newest mention id seen), so a restart repeats and loses nothing."""

    __tablename__ = "channel_cursors"

    name: str = Field(primary_key=True, max_length=128)
    value: str = Field(max_length=256)
    updated_at: datetime = _created()


class EventRegistration(SQLModel, table=True):
    __tablename__ = "event_registrations"
    __table_args__ = (UniqueConstraint("event_key", "contact_id", name="uq_registrations_event_contact"),)

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(max_length=128)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    status: str = Field(default="registered", max_length=16)  # registered | cancelled
    # The conversation the customer registered from: reminders and notices go back there.  NULL for rows
    # from before it was kept (the contact's latest conversation is used).  No foreign key: on SQLite
    # adding one would rebuild the table (migration 0016).
    conversation_id: int | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class XUsageDay(SQLModel, table=True):
    """What Frontdesk asked of X per UTC day and item (posts read, DMs sent, ...), summed over every process.

    X bills pay-per-use per resource returned or per write, by UTC day; these counts are what the desk's
    cost estimate multiplies by the price table (``storage/usage.py``).
    """

    __tablename__ = "x_usage_days"

    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD, UTC
    item: str = Field(primary_key=True, max_length=40)
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _created()


class SavedReply(SQLModel, table=True):
    """A reply agents insert while typing (`/name`): shared (`queue` empty) or for one queue."""

    __tablename__ = "saved_replies"
    __table_args__ = (UniqueConstraint("queue", "name", name="uq_saved_replies_queue_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    queue: str = Field(default="", max_length=16)  # "" = every queue
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _created()
    updated_at: datetime = _created()


class TicketTag(SQLModel, table=True):
    """A word an agent (or a bot rule) put on a ticket ("vip", "order"): queues filter by it.

    At most one row per (ticket, tag): the database refuses a second, so two agents tagging at once
    never write the tag twice.  Tags are agent-chosen labels, not customer text: erasure keeps them.
    """

    __tablename__ = "ticket_tags"
    __table_args__ = (UniqueConstraint("ticket_id", "tag", name="uq_ticket_tags_ticket_tag"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id")
    tag: str = Field(max_length=32, index=True)
    created_by: str = Field(max_length=64)  # the actor: "bot" or "agent:<id>"
    created_at: datetime = _created()


class ListeningItem(SQLModel, table=True):
    """A public X post a listening rule found (recent search), classified, for agents to act on.

    One row per post (the platform post id is unique): a post several rules match is kept under the first.
    `addressed_brand`: the author @mentioned the brand or quoted one of its posts, the only posts X lets the
    brand reply under (since 2026-02-23); nothing is ever sent to the others on its own.
    """

    __tablename__ = "listening_items"
    __table_args__ = (
        Index("ix_listening_items_rule_posted", "rule", "posted_at"),
        Index("ix_listening_items_status", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform_post_id: str = Field(max_length=64, unique=True)
    conversation_ref: str = Field(max_length=64)  # the thread's root post id
    rule: str = Field(max_length=32)
    author_id: str = Field(max_length=64)
    author_handle: str = Field(default="", max_length=128)
    author_name: str = Field(default="", max_length=256)
    # X's `receives_your_dm` for the brand (user-context reads only); None: X did not say.
    author_accepts_dms: bool | None = None
    text: str = Field(sa_column=Column(Text, nullable=False))
    posted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    category: str | None = Field(default=None, max_length=16)
    intent: str | None = Field(default=None, max_length=64)
    confidence: float | None = None
    sentiment: Sentiment = Field(sa_column=Column(EnumAsString(Sentiment), nullable=False, index=True))
    status: ListeningStatus = _enum(ListeningStatus.new)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id")
    addressed_brand: bool = False
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ListeningEvent(SQLModel, table=True):
    """The audit trail of a listening item: who noted, dismissed, ticketed or answered it, when."""

    __tablename__ = "listening_events"

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="listening_items.id", index=True)
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    action: str = Field(max_length=32)
    detail: dict[str, Any] = _json()
    created_at: datetime = _created()


class CsatResponse(SQLModel, table=True):
    """The satisfaction question asked after one resolved ticket, and the customer's answer (score 1-5).

    One per ticket (UNIQUE): a ticket resolved twice is never asked twice.  `asked_at` per contact is what
    the re-ask window counts; `score` stays NULL while unanswered (or when the question lapsed).
    """

    __tablename__ = "csat_responses"
    __table_args__ = (Index("ix_csat_responses_contact", "contact_id", "asked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", unique=True)
    contact_id: int = Field(foreign_key="contacts.id")
    asked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    score: int | None = None
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    answered_at: datetime | None = _ts(index=True)


class Alert(SQLModel, table=True):
    """A spike one detector saw (bot/spikes.py): raised once per (key, window), however many processes look."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("key", "window_start", name="uq_alerts_key_window"),
        Index("ix_alerts_key_created", "key", "created_at"),
        Index("ix_alerts_parent_created", "parent_key", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=96)  # "intent:payment_failed", "category:support", "rule:<name>"
    parent_key: str | None = Field(default=None, max_length=96)  # an intent's category, quieted with it
    window_start: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    count: int = 0
    baseline: float = 0.0
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    incident_id: int | None = Field(default=None, foreign_key="incidents.id")


class IncidentStatus(str, enum.Enum):
    open = "open"
    resolved = "resolved"


class Incident(SQLModel, table=True):
    """Something that affects many customers at once (checkout is down): its tickets are worked together."""

    __tablename__ = "incidents"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    intent: str = Field(default="", max_length=64)  # suggests tickets with messages of this intent
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: IncidentStatus = _enum(IncidentStatus.open, index=True)
    opened_by: int | None = Field(default=None, foreign_key="agents.id")
    resolved_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _created()
    updated_at: datetime = _created()
    resolved_at: datetime | None = _ts()


class IncidentLink(SQLModel, table=True):
    __tablename__ = "incident_links"
    __table_args__ = (UniqueConstraint("incident_id", "ticket_id", name="uq_incident_links_ticket"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    linked_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _created()


class IncidentUpdate(SQLModel, table=True):
    """One status update of an incident, sent to every linked customer (outbox key per update and ticket)."""

    __tablename__ = "incident_updates"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    final: bool = False  # the message sent when the incident was resolved
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    sent_to: int = 0  # customers it was queued for
    withheld: int = 0  # public threads X would refuse a reply in
    created_at: datetime = _created()


class AnnouncementStatus(str, enum.Enum):
    draft = "draft"  # written, not sent: the text and audience may still be previewed
    sending = "sending"  # deliveries exist; the pacer releases them to the outbox at the allowed pace
    done = "done"  # every delivery has an outcome (sent, failed, opted out)


class Announcement(SQLModel, table=True):
    """A message the brand sends first, to an audience (docs/outbound.md#announcements)."""

    __tablename__ = "announcements"

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))  # as written; the stop note is added per send
    audience: str = Field(max_length=16)  # opted_in | event | tag (storage/announcements.py AUDIENCES)
    audience_key: str = Field(default="", max_length=128)  # the event key or the tag; "" for opted_in
    status: AnnouncementStatus = _enum(AnnouncementStatus.draft, index=True)
    created_by: int | None = Field(default=None, foreign_key="agents.id")
    sent_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _created()
    sending_at: datetime | None = _ts()
    done_at: datetime | None = _ts()


class AnnouncementDelivery(SQLModel, table=True):
    """One recipient of an announcement; its outbox row once the pacer released it.

    Unique per (announcement, contact): sending twice never makes a second delivery, and the outbox row's
    idempotency key (`announcement:<delivery id>`) never a second message.
    """

    __tablename__ = "announcement_deliveries"
    __table_args__ = (
        UniqueConstraint("announcement_id", "contact_id", name="uq_announcement_deliveries_contact"),
        # The pacer: each announcement's waiting deliveries in order, and what a channel released lately.
        Index("ix_announcement_deliveries_waiting", "announcement_id", "status", "id"),
        Index("ix_announcement_deliveries_released", "channel", "queued_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    announcement_id: int = Field(foreign_key="announcements.id")
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    channel: Channel = Field(sa_column=Column(EnumAsString(Channel), nullable=False))
    # pending: waiting for its turn | queued: in the outbox (its outcome is the outbox row's) |
    # opted_out: not sent, the contact opted out | unreachable: no conversation to send it in
    status: str = Field(default="pending", max_length=16)
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id", unique=True)
    created_at: datetime = _created()
    queued_at: datetime | None = _ts()


class QueueAssignment(SQLModel, table=True):
    """How a queue's new tickets find an agent: by hand (Claim) only, or also round robin (`auto_assign`).

    No row for a queue means by hand only.  `capacity`: the assigner gives an agent no more tickets while
    they hold this many open ones (in any queue); agents may still claim more themselves.
    """

    __tablename__ = "queue_assignment"

    queue: str = Field(primary_key=True, max_length=16)
    auto_assign: bool = False
    capacity: int = ASSIGN_CAPACITY_DEFAULT
    updated_at: datetime = _created()
    updated_by: int | None = Field(default=None, foreign_key="agents.id")


class AgentPresence(SQLModel, table=True):
    """Whether an agent can take a ticket now: last seen in the desk or the pager, and away or not.

    One row per agent, made on first sight.  `last_assigned_at` orders the round robin (the one assigned
    least recently goes first); the assigner locks these rows, so two assigners never both fill one agent.
    """

    __tablename__ = "agent_presence"

    agent_id: int = Field(primary_key=True, foreign_key="agents.id")
    last_seen_at: datetime | None = _ts()
    away: bool = False
    last_assigned_at: datetime | None = _ts()
    updated_at: datetime = _created()


class PublicPostStatus(str, enum.Enum):
    draft = "draft"  # written, waiting for a second agent's approval
    approved = "approved"  # approved and queued to post now
    scheduled = "scheduled"  # approved and queued for its time (`scheduled_at`)
    sent = "sent"  # X took it (read from its outbox row)
    failed = "failed"  # X refused it for good (read from its outbox row)


class PublicPost(SQLModel, table=True):
    """A standalone post on the brand's X timeline (breaking news): drafted by one agent, approved by another.

    Approval queues it in the outbox (`outbox_id`), due at `scheduled_at` or at once; `sent` and `failed`
    are that row's outcome (storage/actions/public_posts.py).
    """

    __tablename__ = "public_posts"

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: PublicPostStatus = _enum(PublicPostStatus.draft, index=True)
    author_id: int = Field(foreign_key="agents.id")
    approver_id: int | None = Field(default=None, foreign_key="agents.id")
    scheduled_at: datetime | None = _ts()
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    created_at: datetime = _created()
    approved_at: datetime | None = _ts()
    updated_at: datetime = _created()
