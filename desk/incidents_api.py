"""The JSON API for spike alerts and incidents (docs/incidents.md).

Every agent may list and open incidents, link and unlink tickets and send status updates (on the day checkout
breaks, whoever is on shift runs it).  Resolving closes tickets other agents hold, so only the agent who
opened the incident or an admin may resolve it (403 otherwise).  A resolved incident takes no more changes
(409).  Bodies are bounded: a title of 200 characters, 10 keywords, 200 ticket ids per request, 2,000 linked
tickets per incident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from desk.api import ApiAgent
from desk.inputs import RowId, refuse_unstorable_text
from desk.validation import unprocessable
from storage import incidents as reads
from storage.actions import incidents as actions
from storage.errors import InvalidText
from storage.models import Alert, IncidentStatus, IncidentUpdate
from storage.text import MAX_TEXT_CHARS

router = APIRouter(prefix="/api", tags=["incidents"], dependencies=[Depends(refuse_unstorable_text)])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such incident (or ticket, or alert)"},
    409: {"description": "the incident is already resolved"},
}


class IncidentIn(BaseModel):
    title: str = Field(min_length=1, max_length=actions.TITLE_MAX_CHARS)
    intent: str = Field(default="", max_length=64, description="suggest tickets with messages of this NLU intent")
    keywords: list[Annotated[str, Field(max_length=actions.KEYWORD_MAX_CHARS)]] = Field(
        default_factory=list, max_length=actions.MAX_KEYWORDS, description="suggest tickets whose messages contain one"
    )
    alert_id: RowId | None = Field(default=None, description="the spike alert this incident takes up")


class LinksIn(BaseModel):
    ticket_ids: list[RowId] = Field(min_length=1, max_length=actions.MAX_LINKS_PER_CALL)


class UpdateIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class ResolveIn(BaseModel):
    text: str = Field(default="", max_length=MAX_TEXT_CHARS, description="a final message to every linked customer")
    resolve_tickets: bool = Field(default=False, description="resolve every open linked ticket as well")


class TicketOut(BaseModel):
    ticket_id: int
    status: str
    subject: str
    queue: str
    channel: str
    kind: str
    customer: str


class UpdateOut(BaseModel):
    id: int
    text: str
    final: bool
    sent_to: int = Field(description="customers it was queued for")
    withheld: int = Field(description="public threads X would refuse a reply in (the ticket says why)")
    created_at: datetime


class AlertOut(BaseModel):
    id: int
    key: str
    window_start: datetime
    count: int
    baseline: float
    created_at: datetime
    incident_id: int | None


class IncidentOut(BaseModel):
    id: int
    title: str
    intent: str
    keywords: list[str]
    status: str
    opened_by: int | None
    created_at: datetime
    resolved_at: datetime | None
    linked: int


class IncidentDetailOut(IncidentOut):
    links: list[TicketOut]
    updates: list[UpdateOut]
    alerts: list[AlertOut]


class LinkedOut(BaseModel):
    linked: list[int] = Field(description="tickets newly linked (those already linked are left out)")


def _db(request: Request) -> Any:
    return request.app.state.desk.db


def _incident_out(incident: Any, linked: int) -> IncidentOut:
    return IncidentOut(
        id=incident.id, title=incident.title, intent=incident.intent, keywords=incident.keywords,
        status=incident.status.value, opened_by=incident.opened_by, created_at=reads.aware(incident.created_at),
        resolved_at=reads.aware(incident.resolved_at) if incident.resolved_at else None, linked=linked,
    )


def _update_out(update: IncidentUpdate) -> UpdateOut:
    return UpdateOut(id=update.id, text=update.text, final=update.final, sent_to=update.sent_to,  # type: ignore[arg-type]
                     withheld=update.withheld, created_at=reads.aware(update.created_at))


def _alert_out(alert: Alert) -> AlertOut:
    return AlertOut(id=alert.id, key=alert.key, window_start=reads.aware(alert.window_start), count=alert.count,  # type: ignore[arg-type]
                    baseline=alert.baseline, created_at=reads.aware(alert.created_at), incident_id=alert.incident_id)


def _ticket_out(t: reads.LinkedTicket) -> TicketOut:
    return TicketOut(ticket_id=t.ticket_id, status=t.status.value, subject=t.subject, queue=t.queue,
                     channel=t.channel, kind=t.kind.value, customer=t.customer)


async def _detail(request: Request, incident_id: int) -> IncidentDetailOut:
    view = await reads.incident_view(_db(request), incident_id)
    return IncidentDetailOut(
        **_incident_out(view.incident, len(view.links)).model_dump(),
        links=[_ticket_out(t) for t in view.links],
        updates=[_update_out(u) for u in view.updates],
        alerts=[_alert_out(a) for a in view.alerts],
    )


@router.get("/alerts", response_model=list[AlertOut], summary="Spike alerts no incident took up yet (the banner)")
async def list_alerts(request: Request, agent: ApiAgent) -> list[AlertOut]:
    settings = request.app.state.desk.settings
    found = await reads.active_alerts(_db(request), within_s=max(settings.spike_quiet_s, 900))
    return [_alert_out(a) for a in found]


@router.get("/incidents", response_model=list[IncidentOut], summary="Incidents, open ones first")
async def list_incidents(
    request: Request, agent: ApiAgent,
    status_: Annotated[IncidentStatus | None, Query(alias="status", description="open or resolved")] = None,
) -> list[IncidentOut]:
    return [_incident_out(r.incident, r.linked) for r in await reads.list_incidents(_db(request), status=status_)]


@router.post(
    "/incidents", response_model=IncidentDetailOut, status_code=status.HTTP_201_CREATED,
    summary="Open an incident (from an alert: the alert's incident if it has one)", responses=_REFUSALS,
)
async def open_incident(body: IncidentIn, request: Request, agent: ApiAgent) -> IncidentDetailOut:
    try:
        incident = await actions.open_incident(
            _db(request), title=body.title, agent_id=agent.id, intent=body.intent, keywords=body.keywords,
            alert_id=body.alert_id,
        )
    except InvalidText as exc:
        raise unprocessable(("body",), str(exc)) from None
    return await _detail(request, incident.id)  # type: ignore[arg-type]


@router.get("/incidents/{incident_id}", response_model=IncidentDetailOut, summary="An incident, its tickets and updates",
            responses=_REFUSALS)
async def get_incident(incident_id: RowId, request: Request, agent: ApiAgent) -> IncidentDetailOut:
    return await _detail(request, incident_id)


@router.get("/incidents/{incident_id}/suggestions", response_model=list[TicketOut],
            summary="Open tickets matching the incident's intent or keywords, not linked yet", responses=_REFUSALS)
async def suggestions(incident_id: RowId, request: Request, agent: ApiAgent) -> list[TicketOut]:
    view = await reads.incident_view(_db(request), incident_id)
    return [_ticket_out(t) for t in await reads.suggested_tickets(_db(request), view.incident)]


@router.post("/incidents/{incident_id}/links", response_model=LinkedOut,
             summary="Link tickets to the incident (the agent confirmed them)",
             responses={**_REFUSALS, 403: {"description": "the incident would pass 2,000 linked tickets"}})
async def link(incident_id: RowId, body: LinksIn, request: Request, agent: ApiAgent) -> LinkedOut:
    return LinkedOut(linked=await actions.link_tickets(_db(request), incident_id, body.ticket_ids, agent_id=agent.id))


@router.delete("/incidents/{incident_id}/links/{ticket_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Unlink a ticket from the incident", responses={**_REFUSALS, 404: {"description": "not linked"}})
async def unlink(incident_id: RowId, ticket_id: RowId, request: Request, agent: ApiAgent) -> None:
    if not await actions.unlink_ticket(_db(request), incident_id, ticket_id, agent_id=agent.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"ticket {ticket_id} is not linked to incident {incident_id}")


@router.post("/incidents/{incident_id}/updates", response_model=UpdateOut, status_code=status.HTTP_201_CREATED,
             summary="Send one status update to every linked customer on their own channel", responses=_REFUSALS)
async def send_update(incident_id: RowId, body: UpdateIn, request: Request, agent: ApiAgent) -> UpdateOut:
    return _update_out(await actions.send_update(_db(request), incident_id, agent_id=agent.id, text=body.text))


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentDetailOut,
             summary="Resolve the incident (its opener or an admin), optionally with a final message and its tickets",
             responses={**_REFUSALS, 403: {"description": "neither the incident's opener nor an admin"}})
async def resolve(incident_id: RowId, body: ResolveIn, request: Request, agent: ApiAgent) -> IncidentDetailOut:
    await actions.resolve_incident(
        _db(request), incident_id, agent_id=agent.id, text=body.text, resolve_tickets=body.resolve_tickets
    )
    return await _detail(request, incident_id)
