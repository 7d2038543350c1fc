"""The JSON API for public posts (breaking news): any agent drafts; a second agent approves and schedules.

docs/outbound.md "Public posts".  The rules are the store's (storage/actions/public_posts.py): the author
cannot approve (403), only a draft can be approved or discarded (409), a post must fit 280 as X counts it
and hold no personal data unless confirmed (422).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from desk.api import ApiAgent
from desk.inputs import RowId, refuse_unstorable_text
from storage.actions import public_posts as actions
from storage.db import Database
from storage.public_posts import PostView, list_posts, post_view

router = APIRouter(prefix="/api", tags=["public posts"], dependencies=[Depends(refuse_unstorable_text)])
MAX_DRAFT_CHARS = 1000  # far above 280 (links count 23 however long): the store says by how much it is over


class DraftIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_DRAFT_CHARS, description="the post; at most 280 as X counts")
    confirm_public: bool = Field(default=False, description="post it although it seems to hold personal data")


class ApproveIn(BaseModel):
    scheduled_at: datetime | None = Field(
        default=None, description="post at this time (ISO 8601 with offset; UTC if none); omitted: now")


class PostOut(BaseModel):
    id: int
    text: str
    status: str = Field(description="draft, approved (posting now), scheduled, sent or failed")
    author_id: int
    author_name: str
    approver_id: int | None
    approver_name: str | None
    scheduled_at: datetime | None
    created_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    x_post_id: str | None = Field(description="X's id of the post, once sent")
    error: str | None = Field(description="why X refused it (failed) or why it is being retried")


def _out(view: PostView) -> PostOut:
    return PostOut(**vars(view))


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


_ERRORS = {
    403: {"description": "you wrote it: a second agent must approve it"},
    404: {"description": "no such post"},
    409: {"description": "the post is not a draft (already approved, scheduled or sent)"},
}


@router.get("/public-posts", response_model=list[PostOut], summary="Public posts, newest first")
async def list_public_posts(request: Request, agent: ApiAgent) -> list[PostOut]:
    return [_out(v) for v in await list_posts(_db(request))]


@router.get("/public-posts/{post_id}", response_model=PostOut, summary="One public post",
            responses={404: _ERRORS[404]})
async def get_public_post(post_id: RowId, request: Request, agent: ApiAgent) -> PostOut:
    return _out(await post_view(_db(request), post_id))


@router.post(
    "/public-posts", response_model=PostOut, status_code=status.HTTP_201_CREATED,
    summary="Draft a public post (a second agent approves it)",
    responses={422: {"description": "too long for X, or it seems to hold personal data (confirm_public)"}},
)
async def draft_public_post(body: DraftIn, request: Request, agent: ApiAgent) -> PostOut:
    post = await actions.draft_post(_db(request), agent.id, body.text, confirm_public=body.confirm_public)
    assert post.id is not None
    return _out(await post_view(_db(request), post.id))


@router.post(
    "/public-posts/{post_id}/approve", response_model=PostOut,
    summary="Approve a draft someone else wrote: posted now, or at scheduled_at",
    responses={**_ERRORS, 422: {"description": "scheduled_at is in the past or more than 60 days ahead"}},
)
async def approve_public_post(post_id: RowId, body: ApproveIn, request: Request, agent: ApiAgent) -> PostOut:
    await actions.approve_post(_db(request), post_id, agent.id, scheduled_at=body.scheduled_at)
    return _out(await post_view(_db(request), post_id))


@router.delete(
    "/public-posts/{post_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Discard a draft",
    responses={404: _ERRORS[404], 409: _ERRORS[409]},
)
async def discard_public_post(post_id: RowId, request: Request, agent: ApiAgent) -> Response:
    await actions.discard_post(_db(request), post_id, agent.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
