"""The outbox: durable delivery.  A sender leases due rows, delivers them, and marks them sent.

A row whose lease lapsed while `sending` may or may not have reached the platform (the process died
mid-send).  It comes back with `needs_reconcile=True`: the sender must look at what the account actually
posted before sending it again, because X has no idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ARRAY, Integer, String, and_, bindparam, case, exists, or_, select, text, update
from sqlalchemy.orm import aliased

from storage.actions._common import audit
from storage.db import Database
from storage.models import Author, Message, OutboxItem, OutboxStatus, Ticket, utcnow

MAX_BACKOFF_S = 300.0
_OUTBOX, _MESSAGES = OutboxItem.__table__, Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Delivery:
    id: int
    channel: str
    conversation_id: int
    message_id: int
    target: dict[str, Any]
    text: str
    attempts: int
    needs_reconcile: bool
    created_at_ts: float
    followed: bool = False  # another undelivered row of the conversation waits behind this one


def _build_due_rows() -> Any:
    now = bindparam("now")
    earlier = aliased(OutboxItem)
    lapsed = and_(OutboxItem.status == OutboxStatus.sending, OutboxItem.lease_until < now)
    due = and_(OutboxItem.status == OutboxStatus.pending, OutboxItem.next_attempt_at <= now)
    blocked_by_earlier = exists().where(
        earlier.conversation_id == OutboxItem.conversation_id,
        earlier.id < OutboxItem.id,
        earlier.status.in_([OutboxStatus.pending, OutboxStatus.sending]),
    )
    later = aliased(OutboxItem)
    followed = exists().where(
        later.conversation_id == OutboxItem.conversation_id,
        later.id > OutboxItem.id,
        later.status == OutboxStatus.pending,
    )
    # When the platform's limit allows only some sends, an agent's reply goes before the bot's answers and
    # notices, and those before what the brand sends unasked (announcements, written as `system`): the
    # outbox starts deliveries in lease order and the sender spends its window in that order.
    agent_first = case((Message.author == Author.agent, 0), (Message.author == Author.bot, 1), else_=2)
    return (
        select(
            OutboxItem.id, OutboxItem.channel, OutboxItem.conversation_id, OutboxItem.message_id,
            OutboxItem.target, OutboxItem.text, OutboxItem.status, OutboxItem.attempts, OutboxItem.created_at,
            followed.label("followed"), agent_first.label("agent_first"),
        )
        .join(Message, Message.id == OutboxItem.message_id)
        .where(or_(due, lapsed), ~blocked_by_earlier)
        .order_by(agent_first, OutboxItem.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=OutboxItem)
    )


# Built once with the time as a parameter: the outbox leases on every wake, and building the statement
# (an alias, an EXISTS) cost more CPU than running it.  The due rows are read as plain columns and leased
# with ONE update, not loaded as ORM objects and flushed back one UPDATE per row.
_DUE_ROWS = _build_due_rows()
_TAKE_LEASES = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboxStatus.sending,
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        attempts=_OUTBOX.c.attempts + 1,
    )
)


async def lease_due(db: Database, owner: str, *, limit: int = 20, lease_s: float = 60.0) -> list[Delivery]:
    """Lease up to `limit` due rows, at most the oldest undelivered one per conversation (order is kept);
    agents' replies first, then the bot's, then announcements, each oldest first."""
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    if db.dialect == "postgresql":
        # ONE autocommit statement (the due rows locked in a CTE, leased by a second one, read as they were
        # before the lease): BEGIN, read, lease, COMMIT were four round trips.
        async with db.session() as session:
            rows = (await session.execute(_LEASE_DUE_ROWS, {"now": now, "limit": limit, "owner": owner,
                                                            "until": until})).all()
        return _deliveries(rows)
    async with db.transaction() as session:
        rows = (await session.execute(_DUE_ROWS, {"now": now, "limit": limit})).all()
        if not rows:
            return []
        # The rows are locked (FOR UPDATE on PostgreSQL; SQLite's write lock is held): nobody else can
        # lease them between the read and this update.
        await session.execute(_TAKE_LEASES, {"ids": [row.id for row in rows], "owner": owner, "until": until})
        return _deliveries(rows)


def _deliveries(rows: Sequence[Any]) -> list[Delivery]:
    """The leased rows as read before the lease (`status` says whether a lapsed lease needs reconciling)."""
    return [
        Delivery(
            id=row.id, channel=row.channel.value, conversation_id=row.conversation_id,
            message_id=row.message_id, target=dict(row.target), text=row.text, attempts=row.attempts + 1,
            needs_reconcile=row.status == OutboxStatus.sending, created_at_ts=row.created_at.timestamp(),
            followed=bool(row.followed),
        )
        for row in rows
    ]


def _build_lease_due_rows() -> Any:
    due = _DUE_ROWS.cte("due")
    taken = (
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(select(due.c.id)))
        .values(status=OutboxStatus.sending, lease_owner=bindparam("owner"), lease_until=bindparam("until"),
                attempts=_OUTBOX.c.attempts + 1)
        .returning(_OUTBOX.c.id)
        .cte("taken")
    )
    # Every due row is taken (they are locked by this statement); the reference makes the CTE run.  The
    # due rows' order again (a CTE's order does not survive the outer query): agents' replies first.
    return select(due).where(due.c.id.in_(select(taken.c.id))).order_by(due.c.agent_first, due.c.id)


_LEASE_DUE_ROWS = _build_lease_due_rows()


async def mark_sent(db: Database, outbox_id: int, platform_message_id: str | None) -> None:
    await mark_sent_many(db, [(outbox_id, platform_message_id)])


async def mark_sent_many(db: Database, sent: Sequence[tuple[int, str | None]]) -> None:
    """Mark several delivered rows sent in ONE transaction: (outbox id, the platform's message id) pairs.

    Each row (and its message's `delivered_at`) is updated as `mark_sent` would; rows already sent are
    left alone.  The outbox loop groups the rows that finished while a commit was in progress.
    """
    if not sent:
        return
    now = utcnow()
    rows = [{"row_id": row_id, "platform_id": platform_id, "now": now} for row_id, platform_id in dict(sent).items()]
    if db.dialect == "postgresql":
        # ONE autocommit statement: the rows (WITH marked AS (UPDATE outbox … RETURNING)), then their
        # messages, from two arrays.  Same rules as the two statements below; four round trips become one.
        ids, platform_ids = zip(*dict(sent).items())
        async with db.session() as session:
            await session.execute(_MARK_SENT_PG, {"ids": list(ids), "platform_ids": list(platform_ids), "now": now})
        return
    async with db.transaction() as session:
        # Two executemany for the whole batch (not a statement per row, and no read first).  The rows
        # first: a row already sent is left alone, and on PostgreSQL a second marker of the same row waits
        # for this one's row lock and then finds it sent.  Then the messages of the rows this transaction
        # marked, found by this transaction's time: a row marked by someone else keeps their message.
        await session.execute(_MARK_ROW_SENT, rows)
        await session.execute(_MARK_MESSAGE_DELIVERED, rows)


_MARK_ROW_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.status != OutboxStatus.sent)
    .values(status=OutboxStatus.sent, sent_at=bindparam("now"), platform_message_id=bindparam("platform_id"),
            lease_owner=None, lease_until=None)
)
_MARKED_HERE = (
    select(_OUTBOX.c.message_id)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.sent_at == bindparam("now"))
    .scalar_subquery()
)
_MARK_MESSAGE_DELIVERED = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == _MARKED_HERE)
    .values(delivered_at=bindparam("now"), platform_message_id=bindparam("platform_id"))
)


_MARK_SENT_PG = text(
    "WITH marked AS (UPDATE outbox SET status = :sent, sent_at = :now, platform_message_id = s.platform_id, "
    "lease_owner = NULL, lease_until = NULL "
    "FROM unnest(CAST(:ids AS INTEGER[]), CAST(:platform_ids AS VARCHAR[])) AS s(row_id, platform_id) "
    "WHERE outbox.id = s.row_id AND outbox.status != :sent RETURNING outbox.message_id, outbox.platform_message_id) "
    "UPDATE messages SET delivered_at = :now, platform_message_id = marked.platform_message_id "
    "FROM marked WHERE messages.id = marked.message_id"
).bindparams(
    bindparam("sent", value=OutboxStatus.sent, type_=_OUTBOX.c.status.type),
    bindparam("now", type_=_OUTBOX.c.sent_at.type),
    bindparam("ids", type_=ARRAY(Integer)),
    bindparam("platform_ids", type_=ARRAY(String)),
)


def backoff_seconds(attempts: int, base_s: float = 1.0) -> float:
    return min(MAX_BACKOFF_S, base_s * 2 ** max(0, attempts - 1))


async def mark_retry(
    db: Database, outbox_id: int, error: str, *, delay_s: float | None = None, uncertain: bool = False
) -> None:
    """Put a row back for a later attempt (after `delay_s`, or exponential backoff by attempts).

    `uncertain`: the attempt may have reached the platform (a 5xx, a timeout).  The row then stays
    `sending` with its lease ending at the retry time, exactly like a row whose sender died: it comes back
    with `needs_reconcile` and is looked for before it is sent again, in this process or after a restart.
    """
    async with db.transaction() as session:
        row = await session.get(OutboxItem, outbox_id, with_for_update=True)
        if row is None or row.status == OutboxStatus.sent:
            return
        wait = delay_s if delay_s is not None else backoff_seconds(row.attempts)
        retry_at = utcnow() + timedelta(seconds=wait)
        row.status = OutboxStatus.sending if uncertain else OutboxStatus.pending
        row.next_attempt_at = retry_at
        row.last_error = error[:2000]
        row.lease_owner = None
        row.lease_until = retry_at if uncertain else None


async def mark_failed(db: Database, outbox_id: int, error: str) -> None:
    """Give up on a row for good (the platform refused it); agents see it as not delivered."""
    async with db.transaction() as session:
        row = await session.get(OutboxItem, outbox_id, with_for_update=True)
        if row is None or row.status == OutboxStatus.sent:
            return
        row.status = OutboxStatus.failed
        row.last_error = error[:2000]
        row.lease_owner = None
        row.lease_until = None
        # On the ticket's audit trail too, so the desk says why next to the ticket's other events.
        ticket_id = (
            await session.execute(select(Message.ticket_id).where(Message.id == row.message_id))
        ).scalar_one_or_none()
        ticket = await session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is not None:
            audit(
                session, ticket, "delivery_failed", actor="system",
                detail={"reason": error[:500], "message_id": row.message_id},
            )
