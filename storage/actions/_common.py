"""Helpers shared by the actions: portable upserts, row locks, the audit trail and the outbox."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, TextClause, bindparam, cast, event, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached

from frontdesk.core.vocabulary import X_POST_MAX_CHARS
from storage.errors import InvalidText, NotFound, PublicReplyNotAllowed
from storage.models import (
    Agent,
    Author,
    Contact,
    Conversation,
    ConversationKind,
    Direction,
    Message,
    OutboxItem,
    OutboxStatus,
    Ticket,
    TicketEvent,
    utcnow,
)

X_DM_LIMIT = 10_000
TELEGRAM_LIMIT = 4_096


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def insert_ignoring_conflict(
    session: AsyncSession, model: type, values: dict[str, Any], conflict_columns: list[str]
) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new row's id, or None if it already existed.

    The database decides who wins, so concurrent writers never both insert nor both fail.
    """
    stmt = _insert_ignoring_conflict_stmt(
        dialect_name(session), model.__table__, tuple(values), tuple(conflict_columns)  # type: ignore[attr-defined]
    )
    return (await session.execute(stmt, values)).scalar_one_or_none()


# Rows per statement of `insert_many_ignoring_conflict`: a page of up to 200 (the recorder's largest batch)
# is a few statements, and every statement shape (1 to 50 rows) stays in the builder's cache.
INSERT_ROWS_MAX = 50


async def insert_many_ignoring_conflict(
    session: AsyncSession, model: type, rows: Sequence[dict[str, Any]], conflict_columns: list[str],
    returning: tuple[str, ...],
) -> list[Any]:
    """`insert_ignoring_conflict` for many rows (all with the same keys) in multi-row INSERTs, in order.

    Returns the `returning` columns of the rows inserted; a row that already existed, or that repeats
    an earlier row of `rows`, returns nothing.  Ids follow the order of `rows`.
    """
    if not rows:
        return []
    table = model.__table__  # type: ignore[attr-defined]
    columns = tuple(rows[0])
    inserted: list[Any] = []
    for start in range(0, len(rows), INSERT_ROWS_MAX):
        chunk = rows[start:start + INSERT_ROWS_MAX]
        stmt = _insert_ignoring_conflict_stmt(
            dialect_name(session), table, columns, tuple(conflict_columns), rows=len(chunk), returning=returning
        )
        params = {f"{column}_{n}": value for n, row in enumerate(chunk) for column, value in row.items()}
        inserted.extend(await session.execute(stmt, params))
    return inserted


@functools.lru_cache(maxsize=256)
def _insert_ignoring_conflict_stmt(
    dialect: str, table: Table, columns: tuple[str, ...], conflict_columns: tuple[str, ...], *,
    rows: int = 0, returning: tuple[str, ...] = ("id",),
) -> TextClause:
    """The statement as typed SQL text, built once per shape.

    SQLAlchemy 2.0's dialect-specific `insert()` (needed for ON CONFLICT) has no cache key, so it would be
    compiled anew on every execution: on the ingest path that compile was the biggest single cost.  The
    same SQL as text is compiled once; its bind parameters keep the columns' types (enums, JSON, times).
    PostgreSQL and SQLite (3.35+) spell it the same way.  `rows` (multi-row): the parameters of row n are
    named `column_n`; 0: one row, parameters named by their column.
    """
    quoted = ", ".join(f'"{c}"' for c in columns)
    names = [list(columns)] if rows == 0 else [[f"{c}_{n}" for c in columns] for n in range(rows)]
    values = ", ".join("(" + ", ".join(f":{name}" for name in row) + ")" for row in names)
    conflict = ", ".join(f'"{c}"' for c in conflict_columns)
    sql = (f'INSERT INTO "{table.name}" ({quoted}) VALUES {values} ON CONFLICT ({conflict}) DO NOTHING '
           f"RETURNING {', '.join(returning)}")
    return (
        text(sql)
        .bindparams(*(bindparam(name, type_=table.c[column].type) for row in names for name, column in zip(row, columns)))
        .columns(**{c: table.c[c].type for c in returning})
    )


async def get_for_update(session: AsyncSession, model: type, key: int) -> Any:
    """Load a row and lock it until the transaction ends (PostgreSQL; SQLite already holds the write lock).

    A row this transaction has already locked comes from the session (no second query): one message's
    effects each ask for their conversation, and the lock is held until the commit anyway.
    """
    locked: set[tuple[type, int]] = session.info.setdefault("frontdesk_locked", set())
    if (model, key) in locked:
        row = await session.get(model, key)
        if row is not None:
            return row
    row = (await session.execute(_locking_select(model), {"key": key})).scalar_one_or_none()
    if row is None:
        raise NotFound(model.__name__, key)
    locked.add((model, key))
    return row


@functools.lru_cache(maxsize=None)
def _locking_select(model: type) -> Any:
    """Built once per model (every message locks its conversation; building this cost more than running it).

    FOR NO KEY UPDATE: it serialises changes to the row but lets other transactions insert rows that
    reference it (a new message of this conversation), which a plain FOR UPDATE would hold up.  Whatever
    the session had loaded before is re-read: the lock may have waited for someone else's commit.
    """
    return (
        select(model)
        .where(model.id == bindparam("key"))  # type: ignore[attr-defined]
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the row locks end with the outermost transaction
        session.info.pop("frontdesk_locked", None)
        session.info.pop("frontdesk_inbound", None)


async def get_agent(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("Agent", agent_id)
    return agent


def audit(
    session: AsyncSession,
    ticket: Ticket,
    action: str,
    *,
    actor: str,
    agent_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> TicketEvent:
    event = TicketEvent(
        ticket_id=ticket.id, agent_id=agent_id, actor=actor, action=action, detail=detail or {}, created_at=utcnow()
    )
    session.add(event)
    return event


def agent_actor(agent_id: int) -> str:
    return f"agent:{agent_id}"


async def reply_target(session: AsyncSession, conversation: Conversation, contact_user_id: str) -> dict[str, Any]:
    """Where an outbound message on this conversation goes, in the platform's terms.

    Raises `PublicReplyNotAllowed` for a public thread where X would refuse the reply (see `_public_target`).
    """
    if conversation.kind == ConversationKind.dm:
        return {"kind": "dm", "recipient_id": contact_user_id}
    if conversation.kind == ConversationKind.telegram:
        return {"kind": "telegram", "chat_id": conversation.platform_ref}
    target = await _public_target(session, conversation)
    if target is None:
        contact = await session.get(Contact, conversation.contact_id)
        raise PublicReplyNotAllowed(contact.handle if contact else "")
    return {"kind": "reply", "in_reply_to": target}


async def _public_target(session: AsyncSession, conversation: Conversation) -> str | None:
    """The post a public reply goes under: the customer's latest that summons the brand, else None.

    Only the customer's own: anyone can reply in a public thread, and an answer under a stranger's tweet
    ("this is Anna, send it to ...") would address the stranger as if they were the customer.  Only one that
    @mentions the brand or quotes one of its posts: since 2026-02-23 X refuses the brand's reply under any
    other (self-serve tiers).  A post recorded before the store knew (`summons_brand` NULL) counts.  A thread
    without any message of the customer (none recorded yet) answers its root, as before.
    """
    customers_posts = (
        Message.conversation_id == conversation.id,
        Message.direction == Direction.inbound,
        Message.contact_id == conversation.contact_id,
        Message.platform_message_id.is_not(None),  # type: ignore[union-attr]
    )
    latest = (
        await session.execute(
            select(Message.platform_message_id)
            .where(*customers_posts, Message.summons_brand.is_not(False))  # type: ignore[union-attr]
            .order_by(Message.id.desc())  # type: ignore[union-attr]
            .limit(1)
        )
    ).scalar_one_or_none()
    if latest is not None:
        return str(latest)
    # Rare: none that summons.  Is there any at all?
    any_post = (await session.execute(select(Message.id).where(*customers_posts).limit(1))).first()
    return None if any_post is not None else conversation.platform_ref


def check_outbound_length(conversation: Conversation, text: str) -> None:
    limit = {
        ConversationKind.public: X_POST_MAX_CHARS,
        ConversationKind.dm: X_DM_LIMIT,
        ConversationKind.telegram: TELEGRAM_LIMIT,
    }[conversation.kind]
    if len(text) > limit:
        where = "a public reply on X" if conversation.kind == ConversationKind.public else "this channel"
        raise InvalidText(f"the text has {len(text):,} characters; {where} takes at most {limit:,}")


async def queue_outbound(
    session: AsyncSession,
    conversation: Conversation,
    *,
    contact_user_id: str,
    text: str,
    author: Author,
    ticket_id: int | None,
    agent_id: int | None = None,
    idempotency_key: str | None = None,
    target_extra: dict[str, Any] | None = None,
) -> Message:
    """Write an outbound message and its outbox row; the sender delivers it after the commit.

    Core statements, not the ORM's unit of work (every bot answer comes through here, and the flush's
    bookkeeping cost more than the statements): on PostgreSQL the message and its outbox row are ONE
    statement (`WITH new_message AS (INSERT … RETURNING id) INSERT INTO outbox …`), on SQLite two.  The
    returned message is attached to the session as a loaded row, as a flushed ORM object would be.
    """
    check_outbound_length(conversation, text)
    # Where it goes first: it may refuse (a public thread X would not let us answer), and the message is
    # then written once with its reply-to (not inserted, then updated).
    target = await reply_target(session, conversation, contact_user_id)
    if target_extra:  # what the outbox loop needs to know of the row (an announcement's delivery id)
        target = {**target, **target_extra}
    now = utcnow()
    message = Message(
        conversation_id=conversation.id,
        ticket_id=ticket_id,
        channel=conversation.channel,
        direction=Direction.outbound,
        author=author,
        agent_id=agent_id,
        text=text,
        created_at=now,
        handled_at=now,  # nothing for the bot to do with it (storage.models.Message.handled_at)
        entities=[],
        in_reply_to_platform_id=target["in_reply_to"] if target["kind"] == "reply" else None,
    )
    values: dict[str, Any] = {column: getattr(message, column) for column in _MESSAGE_COLUMNS}
    outbox_row = {"idempotency_key": idempotency_key, "target": target, "status": OutboxStatus.pending, "attempts": 0}
    if dialect_name(session) == "postgresql":
        message.id = (await session.execute(_INSERT_MESSAGE_WITH_OUTBOX_ROW, {**values, **outbox_row})).scalar_one()
    else:
        message.id = (await session.execute(_INSERT_MESSAGE, values)).scalar_one()
        outbox_row.update(
            idempotency_key=idempotency_key or f"message:{message.id}", channel=conversation.channel,
            message_id=message.id, conversation_id=conversation.id, text=text, next_attempt_at=now, created_at=now,
        )
        await session.execute(_INSERT_OUTBOX_ROW, outbox_row)
    make_transient_to_detached(message)  # written: the session holds it as a loaded row, nothing to flush
    session.add(message)
    conversation.updated_at = now
    return message


def _build_outbound_statements() -> tuple[Any, Any, Any]:
    """Built once: the message INSERT, the outbox row INSERT, and both as one PostgreSQL statement."""
    messages, outbox = Message.__table__, OutboxItem.__table__  # type: ignore[attr-defined]
    insert_message = (
        insert(messages)
        .values({c: bindparam(c, type_=messages.c[c].type) for c in _MESSAGE_COLUMNS})
        .returning(messages.c.id)
    )
    new = insert_message.cte("new_message")
    key = bindparam("idempotency_key", type_=outbox.c.idempotency_key.type)
    # The outbox row repeats the message's channel, conversation, text and time: the same parameters.
    both = (
        insert(outbox)
        .from_select(
            ["idempotency_key", "channel", "message_id", "conversation_id", "target", "text", "status",
             "attempts", "next_attempt_at", "created_at"],
            select(
                func.coalesce(key, literal("message:") + cast(new.c.id, String)),
                bindparam("channel", type_=outbox.c.channel.type),
                new.c.id,
                bindparam("conversation_id", type_=outbox.c.conversation_id.type),
                bindparam("target", type_=outbox.c.target.type),
                bindparam("text", type_=outbox.c.text.type),
                bindparam("status", type_=outbox.c.status.type),
                bindparam("attempts", type_=outbox.c.attempts.type),
                bindparam("created_at", type_=outbox.c.next_attempt_at.type),
                bindparam("created_at", type_=outbox.c.created_at.type),
            ).select_from(new),
        )
        .returning(outbox.c.message_id)
    )
    return insert_message, insert(outbox), both


_MESSAGE_COLUMNS = tuple(c.key for c in Message.__table__.c if c.key != "id")  # type: ignore[attr-defined]
_INSERT_MESSAGE, _INSERT_OUTBOX_ROW, _INSERT_MESSAGE_WITH_OUTBOX_ROW = _build_outbound_statements()


def touch(row: Any, when: datetime | None = None) -> None:
    row.updated_at = when or utcnow()
