"""The JSON API of listening: the stream of posts the rules found, and what an agent does with one.

`GET /api/listening?rule=&category=&sentiment=&status=` pages newest first (`before` = the last id seen);
`POST /api/listening/{id}/ticket|note|dismiss|reply`.  A reply X or the person would refuse is a 409 that
says why and whether a DM is offered instead (`dm_offered`), never a failed send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from desk.api import ApiAgent
from desk.inputs import MAX_ROW_ID, RowId, refuse_unstorable_text
from desk.listening import ticket_route, view
from frontdesk.core.vocabulary import CATEGORIES, LISTENING_STATUSES, SENTIMENTS
from storage import listening as store
from storage.actions import listening as actions
from storage.actions.listening import NOTE_MAX_CHARS
from storage.db import Database
from storage.errors import NotFound
from storage.models import ListeningItem

router = APIRouter(prefix="/api", tags=["listening"], dependencies=[Depends(refuse_unstorable_text)])

RULE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
SentimentName = Literal[SENTIMENTS]  # type: ignore[valid-type]
StatusName = Literal[LISTENING_STATUSES]  # type: ignore[valid-type]


class ListeningItemOut(BaseModel):
    id: int
    post_id: str
    url: str = Field(description="the post on x.com")
    rule: str
    author_id: str
    author_handle: str
    author_name: str
    text: str
    posted_at: datetime
    category: str | None
    intent: str | None
    confidence: float | None
    sentiment: str = Field(description="negative, neutral or positive")
    status: str = Field(description="new, noted, dismissed or ticketed")
    note: str | None
    ticket_id: int | None
    addressed_brand: bool = Field(description="the author @mentioned the brand or quoted one of its posts")
    public_reply_allowed: bool = Field(description="X lets the brand reply under this post")
    public_reply_refusal: str | None = Field(description="why not, when it does not")
    dm_allowed: bool = Field(description="X says the author accepts the brand's DMs")
    dm_refusal: str | None


class ListeningPageOut(BaseModel):
    items: list[ListeningItemOut]
    next_before: int | None = Field(description="pass as `before` for the next (older) page; null: no more")


class NoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=NOTE_MAX_CHARS)


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000, description="280 characters at most in public")
    via: Literal["public", "dm"] = Field(default="public", description="under the post, or by DM")


class TicketOut(BaseModel):
    ticket_id: int
    item: ListeningItemOut


class ReplyOut(BaseModel):
    message_id: int
    ticket_id: int
    via: str


class RefusalOut(BaseModel):
    detail: str
    dm_offered: bool


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


def _out(item: ListeningItem) -> ListeningItemOut:
    return ListeningItemOut(**view(item).as_dict())


async def _item(request: Request, item_id: int) -> ListeningItem:
    item = await store.get_item(_db(request), item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"listening item {item_id} does not exist")
    return item


_NOT_FOUND = {404: {"description": "no such listening item"}}


@router.get("/listening", response_model=ListeningPageOut, summary="The listening stream, newest first (paged)")
async def list_listening(
    request: Request,
    agent: ApiAgent,
    rule: Annotated[str | None, Query(pattern=RULE_PATTERN, description="a rule's name in listening.yml")] = None,
    category: Annotated[Category | None, Query()] = None,
    sentiment: Annotated[SentimentName | None, Query()] = None,
    status_: Annotated[StatusName | None, Query(alias="status")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="items older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=store.PAGE_MAX)] = 50,
) -> ListeningPageOut:
    where = store.ListeningFilter(rule=rule, category=category, sentiment=sentiment, status=status_)
    items = await store.list_items(_db(request), where, before_id=before, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return ListeningPageOut(items=[_out(i) for i in items], next_before=items[-1].id if more and items else None)


@router.post(
    "/listening/{item_id}/ticket", response_model=TicketOut, status_code=status.HTTP_201_CREATED,
    summary="Open a ticket for the post (nothing is sent)", responses=_NOT_FOUND,
)
async def ticket_listening(item_id: RowId, request: Request, agent: ApiAgent) -> TicketOut:
    item = await _item(request, item_id)
    ticket = await actions.open_ticket(_db(request), item_id, agent.id, ticket_route(item, request.app.state.desk.taxonomy))
    assert ticket.id is not None
    return TicketOut(ticket_id=ticket.id, item=_out(await _item(request, item_id)))


@router.post(
    "/listening/{item_id}/note", response_model=ListeningItemOut, summary="Note the post (agents only see it)",
    responses=_NOT_FOUND,
)
async def note_listening(item_id: RowId, body: NoteIn, request: Request, agent: ApiAgent) -> ListeningItemOut:
    await _item(request, item_id)
    return _out(await actions.note_item(_db(request), item_id, agent.id, body.note))


@router.post(
    "/listening/{item_id}/dismiss", response_model=ListeningItemOut, summary="Dismiss the post (nothing to do)",
    responses={**_NOT_FOUND, 409: {"description": "the post is ticketed: its ticket is the record"}},
)
async def dismiss_listening(item_id: RowId, request: Request, agent: ApiAgent) -> ListeningItemOut:
    await _item(request, item_id)
    return _out(await actions.dismiss_item(_db(request), item_id, agent.id))


@router.post(
    "/listening/{item_id}/reply", response_model=ReplyOut, status_code=status.HTTP_201_CREATED,
    summary="Answer the post: in public only if it addressed the brand, else by DM if the author accepts them",
    responses={**_NOT_FOUND, 409: {"model": RefusalOut, "description": "X or the author would refuse it: why, "
                                   "and whether a DM is offered"}},
)
async def reply_listening(item_id: RowId, body: ReplyIn, request: Request, agent: ApiAgent) -> ReplyOut | JSONResponse:
    item = await _item(request, item_id)
    try:
        message = await actions.reply_to_item(
            _db(request), item_id, agent.id, body.text, ticket_route(item, request.app.state.desk.taxonomy),
            dm=body.via == "dm",
        )
    except actions.ListeningReplyNotAllowed as refused:
        return JSONResponse({"detail": str(refused), "dm_offered": refused.dm_offered}, status_code=409)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"listening item {item_id} does not exist") from None
    assert message.id is not None and message.ticket_id is not None
    return ReplyOut(message_id=message.id, ticket_id=message.ticket_id, via=body.via)
