"""The inbox: inbound messages recorded but not yet handled, worked one conversation at a time.

A worker leases a conversation that has unhandled messages (no other worker can take it until the
lease lapses), handles its messages oldest first, then releases it.  That keeps each conversation
strictly in order while different conversations proceed in parallel, and a worker that dies mid-way
loses nothing: its lease lapses and another worker picks the conversation up.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.actions._common import get_for_update
from storage.db import Database
from storage.models import Conversation, Direction, Message, utcnow


def _has_unhandled():  # type: ignore[no-untyped-def]
    return exists().where(
        Message.conversation_id == Conversation.id,
        Message.direction == Direction.inbound,
        Message.handled_at.is_(None),  # type: ignore[union-attr]
    )


# Built once with the time as a parameter: the worker leases on every wake, and building the statement
# cost more CPU than running it.
_LEASABLE = (
    select(Conversation.id)
    .where(
        or_(
            Conversation.lease_until.is_(None),  # type: ignore[union-attr]
            Conversation.lease_until < bindparam("now"),  # type: ignore[operator]
        ),
        _has_unhandled(),
    )
    .order_by(Conversation.updated_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_TAKE_LEASES = (
    update(Conversation)
    .where(Conversation.id.in_(bindparam("ids", expanding=True)))  # type: ignore[union-attr]
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
)


async def lease_conversations(db: Database, owner: str, *, limit: int = 10, lease_s: float = 60.0) -> list[int]:
    """Lease up to `limit` conversations with unhandled inbound messages; returns their ids."""
    now = utcnow()
    async with db.transaction() as session:
        ids = list((await session.execute(_LEASABLE, {"now": now, "limit": limit})).scalars().all())
        if ids:
            await session.execute(
                _TAKE_LEASES, {"ids": ids, "owner": owner, "until": now + timedelta(seconds=lease_s)}
            )
        return ids


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


# One statement: give the lease back unless another inbound message of the conversation is waiting.
# Built once: the worker runs it at the end of every conversation turn.
_RELEASE_IF_NOTHING_WAITS = (
    update(Conversation.__table__)  # type: ignore[attr-defined]
    .where(
        Conversation.id == bindparam("conversation_id"),
        Conversation.lease_owner == bindparam("owner"),
        ~_has_unhandled(),
    )
    .values(lease_owner=None, lease_until=None)
)


async def release_if_nothing_waits_in(session: AsyncSession, conversation_id: int, owner: str) -> bool:
    """Inside the caller's transaction: release our lease unless a message still waits; whether it did."""
    result = await session.execute(
        _RELEASE_IF_NOTHING_WAITS, {"conversation_id": conversation_id, "owner": owner}
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


_UNHANDLED_OF_CONVERSATION = (
    select(Message)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.direction == Direction.inbound,
        Message.handled_at.is_(None),  # type: ignore[union-attr]
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
