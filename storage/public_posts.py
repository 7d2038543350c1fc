"""Reading public posts for the desk: each with its authors' names and what its outbox row says."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import aliased

from storage.db import Database
from storage.errors import NotFound
from storage.models import Agent, OutboxItem, OutboxStatus, PublicPost, PublicPostStatus

LIST_LIMIT = 200


@dataclass(frozen=True)
class PostView:
    id: int
    text: str
    status: str  # draft | approved | scheduled | sent | failed (the last two from its outbox row)
    author_id: int
    author_name: str
    approver_id: int | None
    approver_name: str | None
    scheduled_at: datetime | None
    created_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    x_post_id: str | None  # X's id of the posted tweet
    error: str | None  # why X refused it, or why it is being retried


def _query():  # type: ignore[no-untyped-def]
    author, approver = aliased(Agent), aliased(Agent)
    return (
        select(PublicPost, author.name, approver.name, OutboxItem.status, OutboxItem.sent_at,
               OutboxItem.platform_message_id, OutboxItem.last_error)
        .join(author, author.id == PublicPost.author_id)
        .outerjoin(approver, approver.id == PublicPost.approver_id)
        .outerjoin(OutboxItem, OutboxItem.id == PublicPost.outbox_id)
    )


async def list_posts(db: Database) -> list[PostView]:
    """The newest posts first (at most LIST_LIMIT)."""
    async with db.session() as session:
        rows = (await session.execute(_query().order_by(PublicPost.id.desc()).limit(LIST_LIMIT))).all()  # type: ignore[union-attr]
    return [_view(*row) for row in rows]


async def post_view(db: Database, post_id: int) -> PostView:
    async with db.session() as session:
        row = (await session.execute(_query().where(PublicPost.id == post_id))).one_or_none()
    if row is None:
        raise NotFound("PublicPost", post_id)
    return _view(*row)


def _view(post: PublicPost, author: str, approver: str | None, outbox_status: OutboxStatus | None,
          sent_at: datetime | None, x_id: str | None, error: str | None) -> PostView:
    status = post.status.value
    if outbox_status == OutboxStatus.sent:
        status = PublicPostStatus.sent.value
    elif outbox_status == OutboxStatus.failed:
        status = PublicPostStatus.failed.value
    assert post.id is not None
    return PostView(
        id=post.id, text=post.text, status=status, author_id=post.author_id, author_name=author,
        approver_id=post.approver_id, approver_name=approver, scheduled_at=_aware(post.scheduled_at),
        created_at=_aware(post.created_at), approved_at=_aware(post.approved_at),  # type: ignore[arg-type]
        sent_at=_aware(sent_at), x_post_id=x_id, error=error,
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
