"""The inbox: inbound messages recorded but not yet handled, worked one conversation at a time.

A worker leases a conversation that has unhandled messages (no other worker can take it until the
lease lapses), handles its messages oldest first, then releases it.  That keeps each conversation
strictly in order while different conversations proceed in parallel, and a worker that dies mid-way
loses nothing: its lease lapses and another worker picks the conversation up.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from storage.actions._common import dialect_name, get_for_update
from storage.actions.inbound import handled_values, mark_handled_in, refresh_handled
from storage.db import Database
from storage.models import WAITING_MESSAGES, Conversation, Direction, Message, utcnow

# The conversations with a waiting message, read from ix_messages_waiting: the lease starts from the few
# conversations that wait, not from every conversation the brand ever had.
_WAITING_CONVERSATIONS = select(Message.conversation_id).where(WAITING_MESSAGES)

# Built once with the time as a parameter: the worker leases on every wake, and building the statement
# cost more CPU than running it.  One statement (UPDATE ... WHERE id IN (the leasable ones, locked,
# skipping those locked by others) RETURNING id), not a SELECT and then an UPDATE.  The candidates come
# from an alias: a subquery on the UPDATE's own table would be correlated to the row being updated.
_CANDIDATE = Conversation.__table__.alias("candidate")  # type: ignore[attr-defined]
_LEASE_RETURNING = (
    update(Conversation.__table__)  # type: ignore[attr-defined]
    .where(
        Conversation.__table__.c.id.in_(  # type: ignore[attr-defined]
            select(_CANDIDATE.c.id)
            .where(
                or_(_CANDIDATE.c.lease_until.is_(None), _CANDIDATE.c.lease_until < bindparam("now")),
                _CANDIDATE.c.id.in_(_WAITING_CONVERSATIONS),
            )
            .order_by(_CANDIDATE.c.updated_at)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
    )
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(Conversation.__table__.c.id)  # type: ignore[attr-defined]
)


_LEASED = _LEASE_RETURNING.cte("leased")
_LEASE_WITH_MESSAGES = (
    select(_LEASED.c.id, Message)
    .select_from(_LEASED)
    .outerjoin(
        Message,
        and_(Message.conversation_id == _LEASED.c.id, WAITING_MESSAGES),
    )
    .order_by(Message.id)  # type: ignore[arg-type]
)


async def lease_conversations(db: Database, owner: str, *, limit: int = 10, lease_s: float = 60.0) -> list[int]:
    """Lease up to `limit` conversations with unhandled inbound messages; returns their ids."""
    now = utcnow()
    params = {"now": now, "limit": limit, "owner": owner, "until": now + timedelta(seconds=lease_s)}
    async with db.transaction() as session:
        return list((await session.execute(_LEASE_RETURNING, params)).scalars().all())


async def lease_conversations_with_messages(
    db: Database, owner: str, *, limit: int = 10, lease_s: float = 60.0
) -> dict[int, list[Message]]:
    """`lease_conversations`, and in the same transaction each leased conversation's waiting messages.

    {conversation id: its unhandled inbound messages, oldest first}.  One read for the whole lease instead
    of one transaction per conversation right after it (the worker's first `unhandled_messages`).
    """
    now = utcnow()
    params = {"now": now, "limit": limit, "owner": owner, "until": now + timedelta(seconds=lease_s)}
    if db.dialect == "postgresql":
        # ONE statement in autocommit (no BEGIN, no COMMIT: four round trips become one): the lease as a
        # CTE, its conversations' waiting messages joined to it.  A conversation leased with none (another
        # worker whose lease had lapsed finished them) still comes back, with an empty list, to be released.
        async with db.session() as session:
            rows = (await session.execute(_LEASE_WITH_MESSAGES, params)).all()
        leased: dict[int, list[Message]] = {}
        for conversation_id, message in rows:
            waiting_of = leased.setdefault(conversation_id, [])
            if message is not None:
                waiting_of.append(message)
        return leased
    async with db.transaction() as session:
        ids = list((await session.execute(_LEASE_RETURNING, params)).scalars().all())
        if not ids:
            return {}
        waiting: dict[int, list[Message]] = {cid: [] for cid in ids}
        for message in (await session.execute(_UNHANDLED_OF_CONVERSATIONS, {"ids": ids})).scalars():
            waiting[message.conversation_id].append(message)
        return waiting


async def renew_lease(db: Database, conversation_id: int, owner: str, *, lease_s: float = 60.0) -> bool:
    async with db.transaction() as session:
        result = await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.lease_owner == owner)
            .values(lease_until=utcnow() + timedelta(seconds=lease_s))
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


async def release(db: Database, conversation_id: int, owner: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


# One statement: give the lease back unless another inbound message of the conversation is waiting, and
# write what handling the last message changed in the row (its time, the bot's state) with it.  That
# message does not count as waiting: the caller marks it handled next.  Built once: every turn runs it.
_RELEASE_WRITING_CHANGES = (
    update(Conversation.__table__)  # type: ignore[attr-defined]
    .where(
        Conversation.id == bindparam("conversation_id"),
        Conversation.lease_owner == bindparam("owner"),
        ~exists().where(
            Message.conversation_id == Conversation.id, WAITING_MESSAGES, Message.id != bindparam("handling_id")
        ),
    )
    .values(lease_owner=None, lease_until=None, updated_at=bindparam("set_updated_at"),
            bot_state=bindparam("set_bot_state"))
)


async def release_writing_changes_in(
    session: AsyncSession, conversation: Conversation, owner: str, *, handling_message_id: int
) -> bool:
    """Release our lease unless a message other than `handling_message_id` waits; whether it did.

    When it does, the conversation's `updated_at` and `bot_state` as this transaction left them go into
    the same UPDATE, so the row is written once for the message instead of twice (the ORM's flush of
    those changes, then the release).  When it does not, the ORM flushes them as usual.  The caller
    must mark `handling_message_id` handled in the same transaction.
    """
    params = {
        "conversation_id": conversation.id, "owner": owner, "handling_id": handling_message_id,
        "set_updated_at": conversation.updated_at, "set_bot_state": conversation.bot_state,
    }
    with session.no_autoflush:  # the changes are in the statement; flushing them first would write twice
        result = await session.execute(_RELEASE_WRITING_CHANGES, params)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _written(conversation)
    return True


def _written(conversation: Conversation) -> None:
    """The release wrote the row: nothing of it is left for the ORM to flush."""
    for name, value in (("lease_owner", None), ("lease_until", None), ("updated_at", conversation.updated_at),
                        ("bot_state", conversation.bot_state)):
        set_committed_value(conversation, name, value)


async def finish_message_in(
    session: AsyncSession,
    conversation: Conversation,
    message_id: int,
    *,
    nlu: dict[str, Any] | None,
    release_owner: str | None,
) -> bool:
    """Mark `message_id` handled (with its NLU result) and, if `release_owner` holds the lease and no other
    message waits, release it writing the conversation's changes; whether it released.

    On PostgreSQL that is ONE statement (`WITH handled AS (UPDATE messages …) UPDATE conversations …`):
    both read the same snapshot, in which the message is still waiting, so the release leaves it out by
    id exactly as `release_writing_changes_in` does.  On SQLite (no UPDATE in WITH) the two statements.
    """
    if release_owner is None or conversation.lease_owner != release_owner:
        await mark_handled_in(session, message_id, nlu=nlu)
        return False
    if dialect_name(session) != "postgresql" or nlu is None:
        released = await release_writing_changes_in(session, conversation, release_owner,
                                                    handling_message_id=message_id)
        await mark_handled_in(session, message_id, nlu=nlu)
        return released
    values = handled_values(message_id, nlu)
    params = {
        **values, "conversation_id": conversation.id, "owner": release_owner,
        "set_updated_at": conversation.updated_at, "set_bot_state": conversation.bot_state,
    }
    with session.no_autoflush:  # the conversation's changes are in the statement
        result = await session.execute(_MARK_HANDLED_AND_RELEASE, params)
    refresh_handled(session, values)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _written(conversation)
    return True


def _build_mark_handled_and_release() -> Any:
    """As typed SQL text: built with the ORM's CTE, the statement's anonymous parameters (the NULLs, the
    direction) were lost between SQLAlchemy's cached compilations.  Compiled once either way."""
    m, c = Message.__table__.c, Conversation.__table__.c  # type: ignore[attr-defined]
    sql = (
        "WITH handled AS (UPDATE messages SET handled_at = :handled_at, intent = :intent, "
        "confidence = :confidence, category = :category, entities = :entities WHERE id = :message_id RETURNING id) "
        "UPDATE conversations SET lease_owner = NULL, lease_until = NULL, updated_at = :set_updated_at, "
        "bot_state = :set_bot_state WHERE id = :conversation_id AND lease_owner = :owner AND NOT EXISTS ("
        "SELECT 1 FROM messages WHERE messages.conversation_id = conversations.id AND messages.direction = :inbound "
        "AND messages.handled_at IS NULL AND messages.id != (SELECT id FROM handled))"
    )
    return text(sql).bindparams(
        bindparam("handled_at", type_=m.handled_at.type), bindparam("intent", type_=m.intent.type),
        bindparam("confidence", type_=m.confidence.type), bindparam("category", type_=m.category.type),
        bindparam("entities", type_=m.entities.type), bindparam("message_id", type_=m.id.type),
        bindparam("set_updated_at", type_=c.updated_at.type), bindparam("set_bot_state", type_=c.bot_state.type),
        bindparam("conversation_id", type_=c.id.type), bindparam("owner", type_=c.lease_owner.type),
        bindparam("inbound", value=Direction.inbound, type_=m.direction.type),
    )


_MARK_HANDLED_AND_RELEASE = _build_mark_handled_and_release()


_UNHANDLED_OF_CONVERSATION = (
    select(Message)
    .where(
        Message.conversation_id == bindparam("conversation_id"), WAITING_MESSAGES
    )
    .order_by(Message.id)  # type: ignore[arg-type]
)


_UNHANDLED_OF_CONVERSATIONS = (
    select(Message)
    .where(
        Message.conversation_id.in_(bindparam("ids", expanding=True)),  # type: ignore[attr-defined]
        WAITING_MESSAGES,
    )
    .order_by(Message.id)  # type: ignore[arg-type]
)


async def unhandled_messages(db: Database, conversation_id: int) -> list[Message]:
    async with db.session() as session:
        result = await session.execute(_UNHANDLED_OF_CONVERSATION, {"conversation_id": conversation_id})
        return list(result.scalars().all())


async def conversation_for_update_in(session: AsyncSession, conversation_id: int) -> Conversation:
    """The leased conversation, locked until the transaction ends (every effect of a message changes it)."""
    conversation: Conversation = await get_for_update(session, Conversation, conversation_id)
    return conversation
