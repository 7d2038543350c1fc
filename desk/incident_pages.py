"""The desk's incident pages: list, open (from a spike alert's banner or by hand), link the suggested
tickets, send a status update to every linked customer, resolve (docs/incidents.md).

Forms post with the session's CSRF token and answer with a redirect; a refused action comes back as the
message at the top of the page.  The changes are the store's (storage/actions/incidents.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from desk.auth import check_csrf
from desk.inputs import MAX_ROW_ID, RowId, refuse_unstorable_text
from desk.pages import Csrf, PageAgent, explain, flash, path_for, render_page
from storage import incidents as reads
from storage.actions import incidents as actions
from storage.errors import NotFound, StoreError

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_unstorable_text)])


def _db(request: Request) -> Any:
    return request.app.state.desk.db


def split_keywords(raw: str) -> list[str]:
    """"checkout, card declined" → ["checkout", "card declined"]."""
    return [word.strip() for word in raw.replace("\n", ",").split(",") if word.strip()]


@router.get("/incidents", name="incidents_page")
async def incidents_page(request: Request, agent: PageAgent) -> Response:
    rows = await reads.list_incidents(_db(request))
    return await render_page(request, "incidents.html", {"rows": rows}, agent=agent)


@router.get("/incidents/new", name="incident_new")
async def incident_new(request: Request, agent: PageAgent, alert: str = "") -> Response:
    """The form, filled in from the alert the banner or the pager linked to (if it still exists)."""
    found = None
    if alert.isdigit() and 0 < int(alert) <= MAX_ROW_ID:
        try:
            found = await reads.get_alert(_db(request), int(alert))
        except NotFound:
            found = None
    if found is not None and found.incident_id is not None:
        return RedirectResponse(path_for(request, "incident_page", incident_id=found.incident_id), status_code=303)
    kind, _, name = found.key.partition(":") if found is not None else ("", "", "")
    context = {
        "alert": found,
        "title": f"Spike: {reads.alert_title(found)}" if found is not None else "",
        "intent": name if kind == "intent" else "",
        "keywords": name if kind == "rule" else "",
    }
    return await render_page(request, "incident_new.html", context, agent=agent)


@router.post("/incidents", name="incident_create")
async def incident_create(
    request: Request, agent: PageAgent, csrf: Csrf = "",
    title: Annotated[str, Form()] = "", intent: Annotated[str, Form()] = "",
    keywords: Annotated[str, Form()] = "", alert_id: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    alert = int(alert_id) if alert_id.isdigit() and 0 < int(alert_id) <= MAX_ROW_ID else None
    try:
        incident = await actions.open_incident(
            _db(request), title=title, agent_id=agent.id, intent=intent, keywords=split_keywords(keywords),
            alert_id=alert,
        )
    except StoreError as exc:
        flash(request, explain(exc))
        target = path_for(request, "incident_new") + (f"?alert={alert}" if alert else "")
        return RedirectResponse(target, status_code=303)
    flash(request, f"Incident #{incident.id} is open. Confirm the tickets that belong to it below.", "ok")
    return RedirectResponse(path_for(request, "incident_page", incident_id=incident.id), status_code=303)


@router.get("/incidents/{incident_id}", name="incident_page")
async def incident_page(incident_id: RowId, request: Request, agent: PageAgent) -> Response:
    try:
        view = await reads.incident_view(_db(request), incident_id)
    except NotFound:
        return await render_page(request, "not_found.html", {"what": f"Incident #{incident_id}"}, agent=agent,
                                 status_code=404)
    suggestions = await reads.suggested_tickets(_db(request), view.incident)
    return await render_page(request, "incident.html", {"v": view, "suggestions": suggestions}, agent=agent)


async def _act(
    request: Request, incident_id: int, csrf: str, action: Callable[[], Awaitable[Any]], done: Callable[[Any], str]
) -> Response:
    check_csrf(request, csrf)
    try:
        result = await action()
    except StoreError as exc:
        flash(request, explain(exc))
    else:
        flash(request, done(result), "ok")
    return RedirectResponse(path_for(request, "incident_page", incident_id=incident_id), status_code=303)


@router.post("/incidents/{incident_id}/links", name="incident_link")
async def incident_link(
    incident_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
    ticket_id: Annotated[list[RowId], Form()] = [],  # noqa: B006 - FastAPI copies form defaults
) -> Response:
    return await _act(
        request, incident_id, csrf,
        lambda: actions.link_tickets(_db(request), incident_id, ticket_id, agent_id=agent.id),
        lambda new: f"{len(new)} ticket(s) linked." if new else "Tick the tickets to link first.",
    )


@router.post("/incidents/{incident_id}/links/{ticket_id}/delete", name="incident_unlink")
async def incident_unlink(
    incident_id: RowId, ticket_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
) -> Response:
    return await _act(
        request, incident_id, csrf,
        lambda: actions.unlink_ticket(_db(request), incident_id, ticket_id, agent_id=agent.id),
        lambda _: f"Ticket #{ticket_id} is no longer linked.",
    )


def _sent(update: Any) -> str:
    said = f"Update sent to {update.sent_to} customer(s)."
    if update.withheld:
        said += (f" {update.withheld} public thread(s) withheld: X allows a reply only under a post that "
                 "mentions the brand (see the ticket).")
    return said


@router.post("/incidents/{incident_id}/updates", name="incident_update")
async def incident_update(
    incident_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "", text: Annotated[str, Form()] = "",
) -> Response:
    return await _act(
        request, incident_id, csrf,
        lambda: actions.send_update(_db(request), incident_id, agent_id=agent.id, text=text), _sent,
    )


@router.post("/incidents/{incident_id}/resolve", name="incident_resolve")
async def incident_resolve(
    incident_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "", text: Annotated[str, Form()] = "",
    resolve_tickets: Annotated[str, Form()] = "",
) -> Response:
    return await _act(
        request, incident_id, csrf,
        lambda: actions.resolve_incident(
            _db(request), incident_id, agent_id=agent.id, text=text, resolve_tickets=resolve_tickets == "1"
        ),
        lambda _: "Incident resolved." + (" Its open tickets are resolved too." if resolve_tickets == "1" else ""),
    )
