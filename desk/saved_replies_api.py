"""The JSON API for saved replies: everyone lists them and gets them filled in for a ticket; admins manage them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from desk import queries
from desk.api import ApiAgent
from desk.auth import CurrentAgent
from desk.inputs import RowId, refuse_unstorable_text
from desk.queries import aware
from desk.saved_replies import replies_for_ticket
from desk.validation import unprocessable
from storage import saved_replies as store
from storage.db import Database
from storage.models import SavedReply

router = APIRouter(prefix="/api", tags=["saved replies"], dependencies=[Depends(refuse_unstorable_text)])

_QUEUE_HELP = "support, sales, events or general; empty for a reply every queue may use"


class SavedReplyIn(BaseModel):
    name: str = Field(pattern=store.NAME_PATTERN, description="what agents type after `/`")
    text: str = Field(min_length=1, max_length=store.MAX_TEXT_CHARS, description="may hold placeholders")
    queue: str = Field(default="", max_length=16, description=_QUEUE_HELP)


class SavedReplyPatch(BaseModel):
    name: str | None = Field(default=None, pattern=store.NAME_PATTERN)
    text: str | None = Field(default=None, min_length=1, max_length=store.MAX_TEXT_CHARS)
    queue: str | None = Field(default=None, max_length=16, description=_QUEUE_HELP)


class SavedReplyOut(BaseModel):
    id: int
    name: str
    queue: str
    text: str
    updated_at: datetime


class FilledReplyOut(BaseModel):
    id: int
    name: str
    queue: str
    text: str = Field(description="with this ticket's placeholders filled in")
    unfilled: list[str] = Field(description="placeholders this ticket has no value for, left as typed")


class PlaceholdersOut(BaseModel):
    placeholders: dict[str, str]


def _out(reply: SavedReply) -> SavedReplyOut:
    assert reply.id is not None
    return SavedReplyOut(
        id=reply.id, name=reply.name, queue=reply.queue, text=reply.text, updated_at=aware(reply.updated_at)  # type: ignore[arg-type]
    )


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


def _admin(agent: CurrentAgent) -> None:
    if not agent.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin can change saved replies")


def _refused(exc: Exception) -> HTTPException:
    if isinstance(exc, store.DuplicateName):
        return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))
    return unprocessable(("body",), str(exc))


@router.get("/saved-replies", response_model=list[SavedReplyOut], summary="Saved replies, by name")
async def list_replies(
    request: Request,
    agent: ApiAgent,
    queue: Annotated[str | None, Query(description="only those usable in this queue (shared ones included)")] = None,
) -> list[SavedReplyOut]:
    if queue is not None:
        try:
            store.check_queue(queue)
        except ValueError as exc:
            raise unprocessable(("query", "queue"), str(exc)) from None
    return [_out(r) for r in await store.list_saved_replies(_db(request), queue=queue)]


@router.get("/saved-replies/placeholders", response_model=PlaceholdersOut, summary="The placeholders a reply may hold")
async def placeholders(agent: ApiAgent) -> PlaceholdersOut:
    return PlaceholdersOut(placeholders=store.PLACEHOLDERS)


@router.post(
    "/saved-replies",
    response_model=SavedReplyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a saved reply (admins only)",
    responses={403: {"description": "you are not an admin"}, 409: {"description": "the name is taken"}},
)
async def create_reply(body: SavedReplyIn, request: Request, agent: ApiAgent) -> SavedReplyOut:
    _admin(agent)
    try:
        reply = await store.create_saved_reply(
            _db(request), name=body.name, text=body.text, queue=body.queue, agent_id=agent.id
        )
    except (ValueError, store.DuplicateName) as exc:
        raise _refused(exc) from None
    return _out(reply)


@router.patch(
    "/saved-replies/{reply_id}",
    response_model=SavedReplyOut,
    summary="Change a saved reply (admins only)",
    responses={403: {"description": "you are not an admin"}, 409: {"description": "the name is taken"}},
)
async def update_reply(reply_id: RowId, body: SavedReplyPatch, request: Request, agent: ApiAgent) -> SavedReplyOut:
    _admin(agent)
    try:
        reply = await store.update_saved_reply(
            _db(request), reply_id, name=body.name, text=body.text, queue=body.queue
        )
    except (ValueError, store.DuplicateName) as exc:
        raise _refused(exc) from None
    return _out(reply)


@router.delete(
    "/saved-replies/{reply_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a saved reply (admins only)",
    responses={403: {"description": "you are not an admin"}},
)
async def delete_reply(reply_id: RowId, request: Request, agent: ApiAgent) -> Response:
    _admin(agent)
    await store.delete_saved_reply(_db(request), reply_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/tickets/{ticket_id}/saved-replies",
    response_model=list[FilledReplyOut],
    summary="The saved replies usable on a ticket, filled in for it",
)
async def ticket_replies(ticket_id: RowId, request: Request, agent: ApiAgent) -> list[FilledReplyOut]:
    detail = await queries.ticket_detail(_db(request), ticket_id)
    filled = await replies_for_ticket(_db(request), detail, agent.name, request.app.state.desk.events)
    return [FilledReplyOut(**vars(r)) for r in filled]
