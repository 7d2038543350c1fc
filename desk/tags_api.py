"""The JSON API for ticket tags: any agent adds and removes them; `GET /api/tickets?tag=` filters by one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field

from desk import queries
from desk.api import ApiAgent
from desk.inputs import RowId, refuse_unstorable_text
from desk.validation import unprocessable
from frontdesk.core.vocabulary import MAX_TAGS_PER_TICKET, TAG_MAX_CHARS
from storage.actions.tags import InvalidTag, TooManyTags, add_tag, remove_tag
from storage.db import Database

router = APIRouter(prefix="/api", tags=["tags"], dependencies=[Depends(refuse_unstorable_text)])

_TAG_HELP = f"1-{TAG_MAX_CHARS} letters, digits, '-' or '_'; stored lower-case"


class TagBody(BaseModel):
    # Longer than a tag may be, so that "  VIP  " is trimmed rather than refused; normalise_tag decides.
    tag: str = Field(min_length=1, max_length=2 * TAG_MAX_CHARS, description=_TAG_HELP)


class TagsOut(BaseModel):
    ticket_id: int
    tags: list[str] = Field(description="the ticket's tags now, alphabetically")
    changed: bool = Field(description="false when the ticket already had the tag (or, removing, did not)")


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


async def _tags_out(request: Request, ticket_id: int, changed: bool) -> TagsOut:
    detail = await queries.ticket_detail(_db(request), ticket_id)
    return TagsOut(ticket_id=ticket_id, tags=list(detail.ticket.tags), changed=changed)


@router.post(
    "/tickets/{ticket_id}/tags",
    response_model=TagsOut,
    status_code=status.HTTP_201_CREATED,
    summary="Tag a ticket (any agent; adding a tag it has is not an error)",
    responses={
        200: {"model": TagsOut, "description": "the ticket already had the tag: nothing changed"},
        409: {"description": f"the ticket already has {MAX_TAGS_PER_TICKET} tags, the most it may have"},
    },
)
async def tag_ticket(ticket_id: RowId, body: TagBody, request: Request, response: Response, agent: ApiAgent) -> TagsOut:
    try:
        added = await add_tag(_db(request), ticket_id, body.tag, agent_id=agent.id)
    except InvalidTag as exc:
        raise unprocessable(("body", "tag"), str(exc)) from None
    except TooManyTags as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if not added:
        response.status_code = status.HTTP_200_OK
    return await _tags_out(request, ticket_id, added)


@router.delete(
    "/tickets/{ticket_id}/tags/{tag}",
    response_model=TagsOut,
    summary="Take a tag off a ticket (removing one it lacks is not an error)",
)
async def untag_ticket(
    ticket_id: RowId,
    tag: Annotated[str, Path(max_length=2 * TAG_MAX_CHARS, description=_TAG_HELP)],
    request: Request,
    agent: ApiAgent,
) -> TagsOut:
    try:
        removed = await remove_tag(_db(request), ticket_id, tag, agent_id=agent.id)
    except InvalidTag as exc:
        raise unprocessable(("path", "tag"), str(exc)) from None
    return await _tags_out(request, ticket_id, removed)
