"""Announcements, write side: write, send, release to the outbox at the allowed pace, drop when opted out.

    create_announcement    a draft (text, audience), by an admin
    start_sending          the audience becomes one delivery row per recipient, once (a second send: 409)
    release_due            the pacer's step: the next deliveries the pace allows become outbox rows
    drop_if_opted_out      the outbox loop's check before sending: a contact who said stop since gets nothing
    finish_done            an announcement whose every delivery has an outcome is done

Idempotent at each step: a delivery is unique per (announcement, contact), its outbox row per key
`announcement:<delivery id>`, and every step locks the announcement it works on (two pacers in two
workers release one after the other, each counting what the other released).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.actions._common import get_for_update, insert_ignoring_conflict, queue_outbound
from storage.actions.tags import InvalidTag, normalise_tag
from storage.announcements import (
    AUDIENCES,
    EVENT,
    TAG,
    Pace,
    Window,
    audience_query,
    text_problem,
    with_stop_note,
)
from storage.db import Database
from storage.errors import InvalidText, StoreError
from storage.models import (
    Announcement,
    AnnouncementDelivery,
    AnnouncementStatus,
    Author,
    Channel,
    Contact,
    Conversation,
    ConversationKind,
    ConversationStatus,
    OutboxItem,
    OutboxStatus,
    utcnow,
)
from storage.outreach import opted_out_in

OPTED_OUT_DELIVERY = "not sent: the contact opted out of announcements after it was queued"
RELEASE_BATCH = 200  # outbox rows written per pacer step at most (one transaction)


class AlreadySent(StoreError):
    """The announcement was sent already (or is being sent): sending again would send nothing new."""

    def __init__(self, announcement_id: int, status: str) -> None:
        super().__init__(f"announcement {announcement_id} is {status}: it is sent once; write a new one to "
                         "send again")
        self.status = status


class BadAudience(StoreError, ValueError):
    """The audience names nothing this store can reach."""


async def create_announcement(
    db: Database, *, text: str, audience: str, audience_key: str, footer: str, agent_id: int,
    event_keys: frozenset[str] = frozenset(),
) -> Announcement:
    """A draft.  `footer` is the stop note (replies.yml); `event_keys` the catalogue's events."""
    check_draft(text=text, audience=audience, audience_key=audience_key, footer=footer, event_keys=event_keys)
    async with db.transaction() as session:
        announcement = Announcement(
            text=text.strip(), audience=audience,
            audience_key=normalise_tag(audience_key) if audience == TAG else audience_key if audience == EVENT else "",
            status=AnnouncementStatus.draft, created_by=agent_id, created_at=utcnow(),
        )
        session.add(announcement)
        await session.flush()
        return announcement


def check_draft(
    *, text: str, audience: str, audience_key: str, footer: str, event_keys: frozenset[str]
) -> None:
    """Raise InvalidText (the text) or BadAudience (the audience) for what cannot be sent."""
    problem = text_problem(text, footer)
    if problem:
        raise InvalidText(problem)
    if audience not in AUDIENCES:
        raise BadAudience(f"unknown audience {audience!r}; use one of: {', '.join(AUDIENCES)}")
    if audience == EVENT and audience_key not in event_keys:
        known = ", ".join(sorted(event_keys)) or "none"
        raise BadAudience(f"no event {audience_key!r} in content/events.yml; the events are: {known}")
    if audience == TAG:
        try:
            normalise_tag(audience_key)
        except InvalidTag as exc:
            raise BadAudience(str(exc)) from None


async def start_sending(db: Database, announcement_id: int, agent_id: int) -> int:
    """Freeze the audience into delivery rows (opted-out contacts left out) and start the pacer on it.

    Returns how many deliveries were written.  Raises AlreadySent when it is not a draft any more.
    """
    async with db.transaction() as session:
        announcement = await get_for_update(session, Announcement, announcement_id)
        if announcement.status != AnnouncementStatus.draft:
            raise AlreadySent(announcement_id, announcement.status.value)
        now = utcnow()
        reached = audience_query(announcement.audience, announcement.audience_key).subquery()
        # INSERT … SELECT: the audience never comes into Python, however large.
        columns = AnnouncementDelivery.__table__.c  # type: ignore[attr-defined]
        await session.execute(
            insert(AnnouncementDelivery).from_select(
                ["announcement_id", "contact_id", "channel", "status", "created_at"],
                select(
                    literal(announcement_id, columns.announcement_id.type), reached.c.id, reached.c.channel,
                    literal("pending", columns.status.type), literal(now, columns.created_at.type),
                ).distinct(),
            )
        )
        written = (await session.execute(
            select(func.count()).select_from(AnnouncementDelivery)
            .where(AnnouncementDelivery.announcement_id == announcement_id)
        )).scalar_one()
        announcement.status = AnnouncementStatus.sending
        announcement.sent_by = agent_id
        announcement.sending_at = now
        if not written:
            announcement.status, announcement.done_at = AnnouncementStatus.done, now
        return int(written)


async def release_due(
    db: Database, pace: Pace, *, footer: str, now: datetime | None = None, batch: int = RELEASE_BATCH
) -> dict[str, int]:
    """One pacer step: queue the next deliveries each channel's windows still allow; counts by channel.

    Agents' and the bot's replies keep their share of X's caps because the pace is below them, and go
    first in the outbox (storage/outbox.py leases announcements last).
    """
    released: dict[str, int] = {}
    async with db.transaction() as session:
        sending = list((await session.execute(
            select(Announcement.id).where(Announcement.status == AnnouncementStatus.sending).order_by(Announcement.id)
        )).scalars())
        if not sending:
            return released
        for announcement_id in sending:  # one lock order: two pacers never deadlock
            await get_for_update(session, Announcement, announcement_id)
        moment = now or utcnow()
        for channel, windows in pace.windows.items():
            room = await _room(session, channel, windows, moment)
            count = 0
            while room > 0:
                waiting = list((await session.execute(
                    select(AnnouncementDelivery)
                    .where(AnnouncementDelivery.announcement_id.in_(sending),  # type: ignore[attr-defined]
                           AnnouncementDelivery.channel == channel, AnnouncementDelivery.status == "pending")
                    .order_by(AnnouncementDelivery.announcement_id, AnnouncementDelivery.id)
                    .limit(min(room, batch))
                )).scalars())
                if not waiting:
                    break
                for delivery in waiting:
                    if await _release_one(session, delivery, footer, moment):
                        room -= 1
                        count += 1
                if count >= batch:
                    break
            if count:
                released[channel.value] = count
    return released


async def _room(session: AsyncSession, channel: Channel, windows: tuple[Window, ...], moment: datetime) -> int:
    """How many more this channel may release now: the tightest window's sends less what it released."""
    room: int | None = None
    for window in windows:
        since = moment - timedelta(seconds=window.seconds)
        used = (await session.execute(
            select(func.count()).select_from(AnnouncementDelivery).where(
                AnnouncementDelivery.channel == channel, AnnouncementDelivery.queued_at > since
            )
        )).scalar_one()
        left = max(0, window.sends - int(used))
        room = left if room is None else min(room, left)
    return room or 0


async def _release_one(session: AsyncSession, delivery: AnnouncementDelivery, footer: str, now: datetime) -> bool:
    """The delivery's outbox row; False when it was not queued (opted out since, or nowhere to send it)."""
    if await opted_out_in(session, delivery.contact_id):
        delivery.status = "opted_out"
        return False
    contact = await session.get(Contact, delivery.contact_id)
    conversation = await _conversation_for(session, contact) if contact is not None else None
    if conversation is None or contact is None:
        delivery.status = "unreachable"
        return False
    announcement = await session.get(Announcement, delivery.announcement_id)
    assert announcement is not None and delivery.id is not None
    message = await queue_outbound(
        session, conversation, contact_user_id=contact.platform_user_id,
        text=with_stop_note(announcement.text, footer), author=Author.system, ticket_id=None,
        idempotency_key=f"announcement:{delivery.id}", target_extra={"announcement": delivery.id},
    )
    delivery.outbox_id = (await session.execute(
        select(OutboxItem.id).where(OutboxItem.message_id == message.id)
    )).scalar_one()
    delivery.status = "queued"
    delivery.queued_at = now
    return True


async def _conversation_for(session: AsyncSession, contact: Contact) -> Conversation | None:
    """Where an announcement reaches the contact: their X DMs (opened if they only ever posted in public;
    X refuses it if they accept no DMs, and the delivery fails saying so), or their Telegram chat."""
    if contact.channel == Channel.telegram:
        return (await session.execute(
            select(Conversation).where(Conversation.contact_id == contact.id,
                                       Conversation.kind == ConversationKind.telegram)
            .order_by(Conversation.id.desc()).limit(1)
        )).scalar_one_or_none()
    key = {"channel": Channel.x, "kind": ConversationKind.dm, "platform_ref": contact.platform_user_id}
    found = (await session.execute(select(Conversation).filter_by(**key))).scalar_one_or_none()
    if found is not None:
        return found
    now = utcnow()
    await insert_ignoring_conflict(
        session, Conversation,
        {**key, "contact_id": contact.id, "status": ConversationStatus.bot, "bot_state": {}, "created_at": now,
         "updated_at": now},
        ["channel", "kind", "platform_ref"],
    )
    return (await session.execute(select(Conversation).filter_by(**key))).scalar_one_or_none()


async def drop_if_opted_out(db: Database, outbox_id: int, delivery_id: int) -> bool:
    """Just before an announcement's outbox row is sent: if its contact opted out since it was queued, the
    row is marked not sent (failed, saying why) and its delivery `opted_out`; True if so."""
    async with db.transaction() as session:
        delivery = await session.get(AnnouncementDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.outbox_id != outbox_id:
            return False
        if not await opted_out_in(session, delivery.contact_id):
            return False
        row = await session.get(OutboxItem, outbox_id, with_for_update=True)
        if row is None or row.status == OutboxStatus.sent:
            return False
        row.status, row.last_error = OutboxStatus.failed, OPTED_OUT_DELIVERY
        row.lease_owner = row.lease_until = None
        delivery.status = "opted_out"
        return True


async def finish_done(db: Database) -> list[int]:
    """Mark done every sending announcement with no delivery still waiting or in the outbox; their ids."""
    unfinished_delivery = aliased(AnnouncementDelivery)
    in_flight = aliased(OutboxItem)
    waiting = exists().where(
        unfinished_delivery.announcement_id == Announcement.id,
        (unfinished_delivery.status == "pending") | exists().where(
            in_flight.id == unfinished_delivery.outbox_id,
            in_flight.status.in_([OutboxStatus.pending, OutboxStatus.sending]),
        ),
    )
    async with db.transaction() as session:
        ids = list((await session.execute(
            select(Announcement.id).where(Announcement.status == AnnouncementStatus.sending, ~waiting)
        )).scalars())
        if ids:
            await session.execute(
                update(Announcement).where(Announcement.id.in_(ids))  # type: ignore[union-attr]
                .values(status=AnnouncementStatus.done, done_at=utcnow())
            )
    return ids
