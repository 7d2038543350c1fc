"""Public posts (breaking news) on the brand's X timeline: one agent drafts, a second approves, the outbox posts.

Four-eyes: the author cannot approve their own draft (`NotAllowed`, 403), and only a draft can be approved
or discarded (`InvalidTransition`, 409).  The text is checked when drafted: it must fit one post (280 as X
counts: a link is 23) and, unless the author confirms it is meant to be public, hold no personal data
(`frontdesk.core.personal_text`, the same guard as agents' public replies).

Approval writes the post's outbound message and its outbox row in one transaction, due at `scheduled_at`
(or now) under the key `public-post:<id>`: the outbox sends it once, at its time, whichever worker leases
it.  Every post is its own conversation of the brand's "public posts" contact (the outbox delivers
messages of conversations); nothing of it reaches a queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.personal_text import personal_data_in
from frontdesk.core.vocabulary import X_POST_MAX_CHARS
from frontdesk.core.x_text import x_weighted_length
from storage.actions._common import get_agent, get_for_update, insert_ignoring_conflict
from storage.db import Database
from storage.errors import InvalidText, InvalidTransition, NotAllowed
from storage.models import (
    Author,
    Channel,
    Contact,
    Conversation,
    ConversationKind,
    ConversationStatus,
    Direction,
    Message,
    OutboxItem,
    OutboxStatus,
    PublicPost,
    PublicPostStatus,
    utcnow,
)

BRAND_POSTS_USER_ID = "frontdesk:public-posts"  # the contact every post's conversation belongs to
MAX_SCHEDULE_AHEAD = timedelta(days=60)


class PersonalDataInPost(InvalidText):
    """The draft seems to hold personal data; the author may confirm it is meant to be public."""


class PostNotDraft(InvalidTransition):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(action, status)
        self.args = (f"cannot {action}: the post is {status}, and only a draft can be",)


def check_post_text(text: str, *, confirm_public: bool = False) -> str:
    """The text as it will be posted, or InvalidText / PersonalDataInPost saying what to change."""
    text = text.strip()
    if not text:
        raise InvalidText("a post needs text")
    length = x_weighted_length(text)
    if length > X_POST_MAX_CHARS:
        raise InvalidText(f"the post is {length} characters as X counts them (a link is 23); X takes at most "
                          f"{X_POST_MAX_CHARS}: shorten it")
    found = personal_data_in(text)
    if found and not confirm_public:
        raise PersonalDataInPost(
            f"Not saved: this post is public on X and seems to contain {', '.join(found)}. Remove it, or confirm "
            "that it is meant to be public."
        )
    return text


async def draft_post(db: Database, author_id: int, text: str, *, confirm_public: bool = False) -> PublicPost:
    """A new draft by `author_id`."""
    text = check_post_text(text, confirm_public=confirm_public)
    async with db.transaction() as session:
        await get_agent(session, author_id)
        now = utcnow()
        post = PublicPost(text=text, status=PublicPostStatus.draft, author_id=author_id, created_at=now, updated_at=now)
        session.add(post)
        await session.flush()
        return post


async def approve_post(
    db: Database, post_id: int, approver_id: int, *, scheduled_at: datetime | None = None
) -> PublicPost:
    """Approve a draft (by someone other than its author) and queue it: at `scheduled_at`, or now."""
    now = utcnow()
    if scheduled_at is not None:
        scheduled_at = scheduled_at if scheduled_at.tzinfo else scheduled_at.replace(tzinfo=timezone.utc)
        if scheduled_at <= now:
            raise InvalidText("the scheduled time has passed: pick a time in the future, or post it now")
        if scheduled_at > now + MAX_SCHEDULE_AHEAD:
            raise InvalidText("a post can be scheduled at most 60 days ahead")
    async with db.transaction() as session:
        post = await get_for_update(session, PublicPost, post_id)
        await get_agent(session, approver_id)
        if post.status != PublicPostStatus.draft:
            raise PostNotDraft("approve", post.status.value)
        if post.author_id == approver_id:
            raise NotAllowed("you wrote this post: a second agent must approve it (four-eyes rule)")
        outbox_id = await _queue_post(session, post, due=scheduled_at or now)
        post.status = PublicPostStatus.scheduled if scheduled_at else PublicPostStatus.approved
        post.approver_id = approver_id
        post.scheduled_at = scheduled_at
        post.approved_at = now
        post.outbox_id = outbox_id
        post.updated_at = now
        return post


async def discard_post(db: Database, post_id: int, agent_id: int) -> None:
    """Delete a draft (any agent: nothing was posted)."""
    async with db.transaction() as session:
        post = await get_for_update(session, PublicPost, post_id)
        if post.status != PublicPostStatus.draft:
            raise PostNotDraft("discard", post.status.value)
        await session.delete(post)


async def _queue_post(session: AsyncSession, post: PublicPost, *, due: datetime) -> int:
    contact_id = await _brand_posts_contact(session)
    now = utcnow()
    conversation = Conversation(
        contact_id=contact_id, channel=Channel.x, kind=ConversationKind.public, platform_ref=f"post:{post.id}",
        status=ConversationStatus.resolved, created_at=now, updated_at=now,
    )
    session.add(conversation)
    await session.flush()
    message = Message(
        conversation_id=conversation.id, channel=Channel.x, direction=Direction.outbound, author=Author.agent,
        # Dated when it is to be said: retention (FRONTDESK_RETENTION_DAYS) erases old loose messages and
        # cancels their unsent rows, and a post scheduled weeks ahead is not old.
        agent_id=post.approver_id or post.author_id, text=post.text, created_at=due, entities=[],
        handled_at=now,  # nothing for the bot to do with it (storage.models.Message.handled_at)
    )
    session.add(message)
    await session.flush()
    row = OutboxItem(
        idempotency_key=f"public-post:{post.id}", channel=Channel.x, message_id=message.id,  # type: ignore[arg-type]
        conversation_id=conversation.id, target={"kind": "post"}, text=post.text,  # type: ignore[arg-type]
        status=OutboxStatus.pending, attempts=0, next_attempt_at=due, created_at=now,
    )
    session.add(row)
    await session.flush()
    assert row.id is not None
    return row.id


async def _brand_posts_contact(session: AsyncSession) -> int:
    found = (await session.execute(select(Contact.id).where(
        Contact.channel == Channel.x, Contact.platform_user_id == BRAND_POSTS_USER_ID))).scalar_one_or_none()
    if found is not None:
        return int(found)
    new_id = await insert_ignoring_conflict(
        session, Contact, {"channel": Channel.x, "platform_user_id": BRAND_POSTS_USER_ID, "handle": "",
                           "display_name": "(the brand's public posts)", "created_at": utcnow()},
        ["channel", "platform_user_id"],
    )
    if new_id is not None:
        return new_id
    return int((await session.execute(select(Contact.id).where(
        Contact.channel == Channel.x, Contact.platform_user_id == BRAND_POSTS_USER_ID))).scalar_one())
