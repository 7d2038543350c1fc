"""The JSON API for automatic assignment: admins switch queues to round robin; every agent goes away and back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from desk.api import ApiAgent
from desk.auth import CurrentAgent
from desk.inputs import refuse_unstorable_text
from desk.queries import aware
from desk.validation import unprocessable
from frontdesk.core.vocabulary import ASSIGN_CAPACITY_MAX, QUEUES
from storage import actions
from storage.assignment import QueueSetting, presence_of, queue_settings
from storage.db import Database

router = APIRouter(prefix="/api", tags=["assignment"], dependencies=[Depends(refuse_unstorable_text)])


class QueueAssignmentIn(BaseModel):
    auto_assign: bool = Field(description="give this queue's new tickets to online agents by round robin")
    capacity: int = Field(
        ge=1, le=ASSIGN_CAPACITY_MAX,
        description="no automatic assignment to an agent who already holds this many open tickets (any queue)",
    )


class QueueAssignmentOut(BaseModel):
    queue: str
    auto_assign: bool
    capacity: int
    updated_at: datetime | None
    updated_by: int | None = Field(description="the admin who last changed it (null: never configured)")


class AwayIn(BaseModel):
    away: bool = Field(description="true: no new assignments (what you hold stays yours); false: back")


class PresenceOut(BaseModel):
    agent_id: int
    away: bool
    online: bool = Field(description="seen in the desk's live feed or the pager within the online window")
    open_tickets: int


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


def _admin(agent: CurrentAgent) -> None:
    if not agent.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin can see or change how queues are assigned")


def _out(setting: QueueSetting) -> QueueAssignmentOut:
    return QueueAssignmentOut(
        queue=setting.queue, auto_assign=setting.auto_assign, capacity=setting.capacity,
        updated_at=aware(setting.updated_at), updated_by=setting.updated_by,
    )


_ADMIN_ONLY = {403: {"description": "you are not an admin"}}


@router.get(
    "/queues/assignment",
    response_model=list[QueueAssignmentOut],
    summary="How each queue is assigned: by hand, or round robin with a capacity (admins only)",
    responses=_ADMIN_ONLY,
)
async def list_queue_assignment(request: Request, agent: ApiAgent) -> list[QueueAssignmentOut]:
    _admin(agent)
    return [_out(s) for s in await queue_settings(_db(request))]


@router.put(
    "/queues/{queue}/assignment",
    response_model=QueueAssignmentOut,
    summary="Switch a queue's automatic assignment on or off and set its capacity (admins only)",
    responses={**_ADMIN_ONLY, 404: {"description": "there is no such queue"}},
)
async def put_queue_assignment(
    queue: Annotated[str, Path(max_length=32, description=", ".join(QUEUES))],
    body: QueueAssignmentIn,
    request: Request,
    agent: ApiAgent,
) -> QueueAssignmentOut:
    _admin(agent)
    if queue not in QUEUES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no queue {queue!r}; use one of {', '.join(QUEUES)}")
    try:
        await actions.set_queue_assignment(
            _db(request), queue, auto_assign=body.auto_assign, capacity=body.capacity, by_agent_id=agent.id
        )
    except ValueError as exc:  # the body's bounds already say so; the store checks again
        raise unprocessable(("body", "capacity"), str(exc)) from None
    return _out(next(s for s in await queue_settings(_db(request)) if s.queue == queue))


@router.post(
    "/me/away",
    response_model=PresenceOut,
    summary="Go away (no new automatic assignments) or come back",
)
async def set_away(body: AwayIn, request: Request, agent: ApiAgent) -> PresenceOut:
    db = _db(request)
    await actions.set_away(db, agent.id, body.away)
    return await _presence(request, agent.id)


@router.get("/me/presence", response_model=PresenceOut, summary="Whether automatic assignment sees you online")
async def my_presence(request: Request, agent: ApiAgent) -> PresenceOut:
    return await _presence(request, agent.id)


async def _presence(request: Request, agent_id: int) -> PresenceOut:
    state = request.app.state.desk
    p = await presence_of(state.db, agent_id, window_s=state.settings.assign_online_window_s)
    return PresenceOut(agent_id=p.agent_id, away=p.away, online=p.online, open_tickets=p.open_tickets)
