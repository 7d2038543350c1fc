"""The Listening page: what people say about the brand on X, filterable by rule, category and sentiment, and
the actions on a post (open a ticket, note, dismiss, reply where X allows it, else a DM where the author
accepts them, else why not).  Forms post with the session's CSRF token and redirect back with a message."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from desk.auth import check_csrf
from desk.inputs import MAX_ROW_ID, RowId, refuse_unstorable_text
from desk.listening import ticket_route, view
from desk.pages import Csrf, PageAgent, _explain, _flash, _render, path_for
from frontdesk.core.vocabulary import CATEGORIES, LISTENING_STATUSES, SENTIMENTS
from storage import listening as store
from storage.actions import listening as actions
from storage.errors import NotFound, StoreError

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_unstorable_text)])
PAGE_SIZE = 25
_FILTERS = ("rule", "category", "sentiment", "status")


def _filters(request: Request) -> dict[str, str]:
    """The filters in the query string that name something real (anything else is ignored, not an error)."""
    rules = set(request.app.state.desk.listening.names)
    allowed = {"category": CATEGORIES, "sentiment": SENTIMENTS, "status": LISTENING_STATUSES}
    out = {}
    for name in _FILTERS:
        value = request.query_params.get(name, "")
        if value and (value in rules if name == "rule" else value in allowed[name]):
            out[name] = value
    return out


def _back(request: Request, filters: str) -> str:
    """Where a form returns: the page with the filters it was posted from (never another site)."""
    params = {k: v for k, v in parse_qsl(filters) if k in _FILTERS}
    query = urlencode(params)
    return path_for(request, "listening_page") + (f"?{query}" if query else "")


@router.get("/listening", name="listening_page")
async def listening_page(request: Request, agent: PageAgent) -> Response:
    state = request.app.state.desk
    filters = _filters(request)
    raw_before = request.query_params.get("before", "")
    before = int(raw_before) if raw_before.isdigit() and 0 < int(raw_before) <= MAX_ROW_ID else None
    items = await store.list_items(state.db, store.ListeningFilter(**filters), before_id=before, limit=PAGE_SIZE + 1)
    older = items[PAGE_SIZE - 1].id if len(items) > PAGE_SIZE else None
    context: dict[str, Any] = {
        "items": [view(i) for i in items[:PAGE_SIZE]],
        "filters": filters,
        "filter_query": urlencode(filters),
        "older_query": urlencode({**filters, "before": older}) if older else "",
        "rules": state.listening.names,
        "rule_counts": await store.count_by_rule(state.db),
        "categories": CATEGORIES,
        "sentiments": SENTIMENTS,
        "statuses": LISTENING_STATUSES,
    }
    return await _render(request, "listening.html", context, agent=agent)


async def _act(request: Request, csrf: str, filters: str, action: Any, done: str) -> Response:
    check_csrf(request, csrf)
    try:
        await action()
        _flash(request, done, "ok")
    except actions.ListeningReplyNotAllowed as refused:
        _flash(request, "Not sent: " + _explain(refused))
    except StoreError as exc:
        _flash(request, _explain(exc))
    return RedirectResponse(_back(request, filters), status_code=303)


async def _route(request: Request, item_id: int) -> actions.TicketRoute:
    item = await store.get_item(request.app.state.desk.db, item_id)
    if item is None:
        raise NotFound("ListeningItem", item_id)
    return ticket_route(item, request.app.state.desk.taxonomy)


Filters = Annotated[str, Form()]


@router.post("/listening/{item_id}/ticket", name="listening_ticket")
async def listening_ticket(item_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
                           filters: Filters = "") -> Response:
    db = request.app.state.desk.db

    async def act() -> None:
        await actions.open_ticket(db, item_id, agent.id, await _route(request, item_id))

    return await _act(request, csrf, filters, act, "Ticket opened; nothing was sent.")


@router.post("/listening/{item_id}/note", name="listening_note")
async def listening_note(item_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
                         filters: Filters = "", note: Annotated[str, Form()] = "") -> Response:
    db = request.app.state.desk.db
    return await _act(request, csrf, filters, lambda: actions.note_item(db, item_id, agent.id, note), "Note saved.")


@router.post("/listening/{item_id}/dismiss", name="listening_dismiss")
async def listening_dismiss(item_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
                            filters: Filters = "") -> Response:
    db = request.app.state.desk.db
    return await _act(request, csrf, filters, lambda: actions.dismiss_item(db, item_id, agent.id), "Dismissed.")


@router.post("/listening/{item_id}/reply", name="listening_reply")
async def listening_reply(item_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
                          filters: Filters = "", text: Annotated[str, Form()] = "",
                          via: Annotated[str, Form()] = "public") -> Response:
    db = request.app.state.desk.db

    async def act() -> None:
        await actions.reply_to_item(db, item_id, agent.id, text, await _route(request, item_id), dm=via == "dm")

    done = "DM queued." if via == "dm" else "Public reply queued."
    return await _act(request, csrf, filters, act, done)
