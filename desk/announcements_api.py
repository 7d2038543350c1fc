"""The JSON API for announcements: agents see them and their progress; admins write, preview and send."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from desk.announcements import Setup, describe_duration, setup_of
from desk.api import ApiAgent
from desk.auth import CurrentAgent
from desk.inputs import RowId, refuse_unstorable_text
from desk.queries import aware
from desk.validation import unprocessable
from storage import announcements as store
from storage.actions.announcements import (
    AlreadySent,
    BadAudience,
    check_draft,
    create_announcement,
    start_sending,
)
from storage.db import Database
from storage.errors import InvalidText, NotFound
from storage.models import Announcement

router = APIRouter(prefix="/api", tags=["announcements"], dependencies=[Depends(refuse_unstorable_text)])

_MAX_BODY_TEXT = 4_096  # no channel takes more in one message (Telegram); the stop note must fit too


class DraftIn(BaseModel):
    text: str = Field(max_length=_MAX_BODY_TEXT, description="what to announce; the stop note is added below it")
    audience: Literal["opted_in", "event", "tag"] = Field(
        description="opted_in: every contact who asked to be kept posted; event: the registrants of `event`; "
        "tag: those kept posted among the customers whose tickets carry `tag`"
    )
    event: str = Field(default="", max_length=128, description="the event's key in events.yml (audience event)")
    tag: str = Field(default="", max_length=64, description="a ticket tag (audience tag)")

    @property
    def key(self) -> str:
        return self.tag.strip().lower() if self.audience == "tag" else self.event  # tags are stored lower-case


class ProgressOut(BaseModel):
    sent: int
    failed: int
    opted_out: int = Field(description="not sent: they said stop (before or after it was queued)")
    pending: int
    total: int


class AnnouncementOut(BaseModel):
    id: int
    text: str
    audience: str
    event: str = Field(description="the event's key (audience event) or the tag (audience tag)")
    status: str = Field(description="draft, sending or done")
    created_at: datetime
    sending_at: datetime | None
    done_at: datetime | None
    progress: ProgressOut


class PreviewOut(BaseModel):
    recipients: int = Field(description="who it would reach now; contacts who opted out are left out")
    by_channel: dict[str, int]
    opted_out: int = Field(description="in the audience but opted out: they get nothing")
    estimated_cost_usd: float | None = Field(description="X's price per DM sent (x_prices.yml); None: no price table")
    prices_read_on: str
    estimated_duration_s: float = Field(description="at the pace X's DM caps and Telegram's limits allow")
    estimated_duration: str
    text: str = Field(description="as a recipient reads it, the stop note included")


class FailureOut(BaseModel):
    contact: str
    channel: str
    reason: str


class ReportOut(BaseModel):
    announcement: AnnouncementOut
    failures: list[FailureOut]


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


def _admin(agent: CurrentAgent, what: str) -> None:
    if not agent.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"only an admin can {what} announcements")


def _setup(request: Request) -> Setup:
    return setup_of(request.app.state.desk.settings)


def _check(body: DraftIn, setup: Setup) -> None:
    try:
        check_draft(text=body.text, audience=body.audience, audience_key=body.key, footer=setup.footer,
                    event_keys=frozenset(setup.events))
    except InvalidText as exc:
        raise unprocessable(("body", "text"), str(exc), "text_invalid") from None
    except BadAudience as exc:
        field = "tag" if body.audience == "tag" else "event"
        raise unprocessable(("body", field), str(exc), f"{field}_invalid") from None


async def _out(db: Database, row: Announcement) -> AnnouncementOut:
    assert row.id is not None
    done = await store.progress(db, row.id)
    return AnnouncementOut(
        id=row.id, text=row.text, audience=row.audience, event=row.audience_key, status=row.status.value,
        created_at=aware(row.created_at), sending_at=aware(row.sending_at) if row.sending_at else None,  # type: ignore[arg-type]
        done_at=aware(row.done_at) if row.done_at else None,  # type: ignore[arg-type]
        progress=ProgressOut(sent=done.sent, failed=done.failed, opted_out=done.opted_out, pending=done.pending,
                             total=done.total),
    )


async def _get(db: Database, announcement_id: int) -> Announcement:
    row = await store.get_announcement(db, announcement_id)
    if row is None:
        raise NotFound("Announcement", announcement_id)
    return row


async def preview_of(db: Database, setup: Setup, *, text: str, audience: str, event: str) -> PreviewOut:
    seen = await store.preview(
        db, audience=audience, key=event, text=text, footer=setup.footer, pace=setup.pace,
        prices=setup.prices,
    )
    return PreviewOut(
        recipients=seen.total, by_channel=seen.recipients, opted_out=seen.opted_out,
        estimated_cost_usd=seen.cost_usd, prices_read_on=seen.price_read_on,
        estimated_duration_s=seen.duration_s, estimated_duration=describe_duration(seen.duration_s), text=seen.text,
    )


@router.get("/announcements", response_model=list[AnnouncementOut], summary="Announcements, newest first")
async def list_all(request: Request, agent: ApiAgent) -> list[AnnouncementOut]:
    db = _db(request)
    return [await _out(db, row) for row, _ in await store.list_announcements(db)]


@router.post(
    "/announcements/preview", response_model=PreviewOut, summary="Preview a draft: recipients, cost, duration (admins)",
    responses={403: {"description": "you are not an admin"},
               422: {"description": "no text, too long, an unknown event, a malformed tag"}},
)
async def preview_draft(body: DraftIn, request: Request, agent: ApiAgent) -> PreviewOut:
    _admin(agent, "preview")
    setup = _setup(request)
    _check(body, setup)
    return await preview_of(_db(request), setup, text=body.text, audience=body.audience, event=body.key)


@router.post(
    "/announcements", response_model=AnnouncementOut, status_code=status.HTTP_201_CREATED,
    summary="Write an announcement as a draft (admins)",
    responses={403: {"description": "you are not an admin"},
               422: {"description": "no text, too long, an unknown event, a malformed tag"}},
)
async def create(body: DraftIn, request: Request, agent: ApiAgent) -> AnnouncementOut:
    _admin(agent, "write")
    setup = _setup(request)
    _check(body, setup)
    row = await create_announcement(
        _db(request), text=body.text, audience=body.audience, audience_key=body.key, footer=setup.footer,
        agent_id=agent.id, event_keys=frozenset(setup.events),
    )
    return await _out(_db(request), row)


@router.get("/announcements/{announcement_id}", response_model=AnnouncementOut,
            summary="One announcement and its progress", responses={404: {"description": "no such announcement"}})
async def get_one(announcement_id: RowId, request: Request, agent: ApiAgent) -> AnnouncementOut:
    return await _out(_db(request), await _get(_db(request), announcement_id))


@router.get(
    "/announcements/{announcement_id}/preview", response_model=PreviewOut,
    summary="Who a draft reaches now, what it costs and how long it takes (admins)",
    responses={403: {"description": "you are not an admin"}, 404: {"description": "no such announcement"}},
)
async def preview_saved(announcement_id: RowId, request: Request, agent: ApiAgent) -> PreviewOut:
    _admin(agent, "preview")
    row = await _get(_db(request), announcement_id)
    return await preview_of(_db(request), _setup(request), text=row.text, audience=row.audience,
                            event=row.audience_key)


@router.post(
    "/announcements/{announcement_id}/send", response_model=AnnouncementOut, status_code=status.HTTP_202_ACCEPTED,
    summary="Send a draft: one delivery per recipient, paced by the worker (admins)",
    responses={403: {"description": "you are not an admin"}, 404: {"description": "no such announcement"},
               409: {"description": "already sent: an announcement is sent once"}},
)
async def send(announcement_id: RowId, request: Request, agent: ApiAgent) -> AnnouncementOut:
    _admin(agent, "send")
    db = _db(request)
    await _get(db, announcement_id)
    try:
        await start_sending(db, announcement_id, agent.id)
    except AlreadySent as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return await _out(db, await _get(db, announcement_id))


@router.get("/announcements/{announcement_id}/report", response_model=ReportOut,
            summary="What happened: sent, failed (and why), opted out, pending",
            responses={404: {"description": "no such announcement"}})
async def report(announcement_id: RowId, request: Request, agent: ApiAgent) -> ReportOut:
    db = _db(request)
    row = await _get(db, announcement_id)
    failed = await store.failures(db, announcement_id)
    return ReportOut(announcement=await _out(db, row),
                     failures=[FailureOut(contact=f.contact, channel=f.channel, reason=f.reason) for f in failed])
