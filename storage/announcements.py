"""Announcements, read side: who an audience reaches, what sending costs and takes, and how far it got.

The pace (`Pace`) is X's DM caps and Telegram's flood limits less what is kept for replies: the desk's
preview and the pacer (bot/announcements.py) compute from the same numbers, so the estimate is the plan.
The writes are `storage/actions/announcements.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.settings import Settings
from storage.actions._common import TELEGRAM_LIMIT, X_DM_LIMIT
from storage.db import Database
from storage.models import (
    Announcement,
    AnnouncementDelivery,
    Channel,
    Contact,
    EventRegistration,
    OutboxItem,
    OutboxStatus,
    Ticket,
    TicketTag,
)
from storage.outreach import opted_in_clause, opted_out_clause
from storage.usage import DMS_CREATED, PriceTable

OPTED_IN = "opted_in"
EVENT = "event"
TAG = "tag"
# Who an announcement may address: everyone kept posted; an event's registrants (registering is an opt-in);
# those kept posted among the customers whose tickets carry a tag (an agent's tag is no one's consent).
AUDIENCES: tuple[str, ...] = (OPTED_IN, EVENT, TAG)
# The longest message a DM channel takes: Telegram's 4,096 (an X DM takes 10,000).
CHANNEL_LIMITS = {Channel.x: X_DM_LIMIT, Channel.telegram: TELEGRAM_LIMIT}


@dataclass(frozen=True)
class Window:
    """At most `sends` announcements released per `seconds` (a sliding window: any span that long)."""

    sends: int
    seconds: float


@dataclass(frozen=True)
class Pace:
    """How fast announcements may go out per channel.  Defaults: X's DM caps (15 per 15 minutes, 1,440 per
    24 hours per account) less a third kept for agents' and the bot's replies; Telegram's ~30 messages a
    second to different chats, less a third."""

    windows: dict[Channel, tuple[Window, ...]] = field(default_factory=lambda: {
        Channel.x: (Window(10, 900.0), Window(960, 86_400.0)),
        Channel.telegram: (Window(20, 1.0),),
    })

    def duration_s(self, channel: Channel, recipients: int) -> float:
        """How long `recipients` sends take at this pace: the first goes at once, each window's quota
        after it, and the slowest window decides."""
        if recipients <= 0:
            return 0.0
        return max((math.ceil(recipients / w.sends) - 1) * w.seconds for w in self.windows.get(channel, ()))


def pace_from(settings: Settings) -> Pace:
    """The pace the settings give (docs/outbound.md): X's two DM windows, Telegram's per second."""
    return Pace({
        Channel.x: (
            Window(settings.announce_x_dms_per_window, settings.announce_x_window_s),
            Window(settings.announce_x_dms_per_day, settings.announce_x_day_s),
        ),
        Channel.telegram: (Window(settings.announce_telegram_per_s, 1.0),),
    })


def with_stop_note(text: str, footer: str) -> str:
    """The announcement as sent: the admin's text, then how to stop."""
    return f"{text.strip()}\n\n{footer}"


def text_problem(text: str, footer: str) -> str | None:
    """Why the text cannot be sent, or None: empty, or too long for a channel once the stop note is added."""
    if not text.strip():
        return "the announcement has no text: write what to announce"
    full = len(with_stop_note(text, footer))
    limit = min(CHANNEL_LIMITS.values())
    if full > limit:
        return (f"with the stop note the message has {full:,} characters; Telegram takes at most {limit:,} "
                "in one message: shorten it")
    return None


@dataclass(frozen=True)
class Audience:
    recipients: dict[str, int]  # by channel, opted-out contacts left out
    opted_out: int  # in the audience but opted out: they get nothing

    @property
    def total(self) -> int:
        return sum(self.recipients.values())


def audience_query(audience: str, key: str) -> Any:
    """SELECT contact id, channel of everyone in the audience who has not opted out, by contact id."""
    query = select(Contact.id, Contact.channel).where(~opted_out_clause())
    if audience == OPTED_IN:
        query = query.where(opted_in_clause())
    elif audience == TAG:
        tagged = select(Ticket.contact_id).join(TicketTag, TicketTag.ticket_id == Ticket.id).where(TicketTag.tag == key)
        query = query.where(opted_in_clause(), Contact.id.in_(tagged))  # type: ignore[union-attr]
    elif audience == EVENT:
        query = query.join(EventRegistration, EventRegistration.contact_id == Contact.id).where(
            EventRegistration.event_key == key, EventRegistration.status == "registered"
        )
    else:
        raise ValueError(f"unknown audience {audience!r}; use {', '.join(AUDIENCES)}")
    return query.order_by(Contact.id)


async def audience_in(session: AsyncSession, audience: str, key: str) -> Audience:
    reached = audience_query(audience, key).subquery()
    rows = (await session.execute(select(reached.c.channel, func.count()).group_by(reached.c.channel))).all()
    out = 0
    if audience == EVENT:  # registrants who said stop since (an opted_in audience has none by definition)
        out = (await session.execute(
            select(func.count()).select_from(Contact)
            .join(EventRegistration, EventRegistration.contact_id == Contact.id)
            .where(EventRegistration.event_key == key, EventRegistration.status == "registered", opted_out_clause())
        )).scalar_one()
    return Audience({getattr(c, "value", c): n for c, n in rows}, int(out))


@dataclass(frozen=True)
class Preview:
    recipients: dict[str, int]
    opted_out: int
    total: int
    cost_usd: float | None  # X bills each DM sent (DM Interaction: Create); Telegram is free; None: no prices
    price_read_on: str
    duration_s: float
    text: str  # as a recipient reads it, stop note included


async def preview(
    db: Database, *, audience: str, key: str, text: str, footer: str, pace: Pace, prices: PriceTable | None
) -> Preview:
    async with db.session() as session:
        reached = await audience_in(session, audience, key)
    x_count = reached.recipients.get(Channel.x.value, 0)
    duration = max((pace.duration_s(Channel(c), n) for c, n in reached.recipients.items()), default=0.0)
    return Preview(
        recipients=reached.recipients, opted_out=reached.opted_out, total=reached.total,
        cost_usd=round(x_count * prices.unit_price(DMS_CREATED), 4) if prices else None,
        price_read_on=prices.read_on if prices else "",
        duration_s=duration, text=with_stop_note(text, footer),
    )


@dataclass(frozen=True)
class Progress:
    sent: int = 0
    failed: int = 0
    opted_out: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.failed + self.opted_out + self.pending


def _tally(rows: Any) -> Progress:
    sent = failed = out = pending = 0
    for status, outbox_status, last_error, n in rows:
        if status == "opted_out":
            out += n
        elif status == "unreachable":
            failed += n
        elif status == "pending" or outbox_status in (OutboxStatus.pending, OutboxStatus.sending):
            pending += n
        elif outbox_status == OutboxStatus.sent:
            sent += n
        else:
            failed += n
    return Progress(sent, failed, out, pending)


async def progress_in(session: AsyncSession, announcement_id: int) -> Progress:
    rows = (await session.execute(
        select(AnnouncementDelivery.status, OutboxItem.status, OutboxItem.last_error, func.count())
        .outerjoin(OutboxItem, OutboxItem.id == AnnouncementDelivery.outbox_id)
        .where(AnnouncementDelivery.announcement_id == announcement_id)
        .group_by(AnnouncementDelivery.status, OutboxItem.status, OutboxItem.last_error)
    )).all()
    return _tally(rows)


async def progress(db: Database, announcement_id: int) -> Progress:
    async with db.session() as session:
        return await progress_in(session, announcement_id)


async def known_tags(db: Database) -> list[str]:
    """The tags some ticket carries, for the audience picker."""
    async with db.session() as session:
        return list((await session.execute(select(TicketTag.tag).distinct().order_by(TicketTag.tag))).scalars())


async def get_announcement(db: Database, announcement_id: int) -> Announcement | None:
    async with db.session() as session:
        return await session.get(Announcement, announcement_id)


async def list_announcements(db: Database, *, limit: int = 50) -> list[tuple[Announcement, Progress]]:
    """The newest announcements, each with its progress."""
    async with db.session() as session:
        rows = (await session.execute(select(Announcement).order_by(Announcement.id.desc()).limit(limit))).scalars()
        found = list(rows)
        return [(a, await progress_in(session, a.id)) for a in found if a.id is not None]


@dataclass(frozen=True)
class FailedDelivery:
    contact: str  # handle or display name
    channel: str
    reason: str


async def failures(db: Database, announcement_id: int, *, limit: int = 100) -> list[FailedDelivery]:
    """What the report lists under "failed": who, and what the platform (or the store) said."""
    async with db.session() as session:
        rows = (await session.execute(
            select(Contact.handle, Contact.display_name, AnnouncementDelivery.channel,
                   AnnouncementDelivery.status, OutboxItem.last_error)
            .join(Contact, Contact.id == AnnouncementDelivery.contact_id)
            .outerjoin(OutboxItem, OutboxItem.id == AnnouncementDelivery.outbox_id)
            .where(AnnouncementDelivery.announcement_id == announcement_id,
                   (AnnouncementDelivery.status == "unreachable")
                   | ((AnnouncementDelivery.status == "queued") & (OutboxItem.status == OutboxStatus.failed)))
            .order_by(AnnouncementDelivery.id).limit(limit)
        )).all()
    return [
        FailedDelivery(handle or name or "(unnamed)", getattr(channel, "value", channel),
                       "no conversation to send it in" if status == "unreachable" else (error or "refused"))
        for handle, name, channel, status, error in rows
    ]
