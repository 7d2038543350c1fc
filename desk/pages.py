"""The HTML desk: sign in, queues, a ticket and its actions (Jinja2 + htmx, no front-end build).

Every form posts with the session's CSRF token.  Actions answer htmx requests with the fragment to
swap in, and plain form posts with a redirect (so the desk works without JavaScript too); a refused
action comes back as a message at the top of the page, never as a raw error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from desk import charts, customers, queries, search
from desk import figures as daily_figures
from desk.figures_api import csv_response
from desk.auth import (
    CSRF_FORM_FIELD,
    CurrentAgent,
    check_csrf,
    csrf_token,
    end_session,
    session_agent,
    sign_in,
    start_session,
)
from desk.inputs import RowId, refuse_unstorable_text
from desk.public_guard import public_reply_warning
from desk.saved_replies import replies_for_ticket
from frontdesk.core.sla import SlaClock
from frontdesk.core.vocabulary import ASSIGN_CAPACITY_MAX
from storage import actions, assignment, usage
from storage import saved_replies as saved_replies_store
from storage.actions.tags import add_tag, remove_tag
from storage.cursors import active_send_pauses
from storage.customers import CannotLink, link_contacts, unlink_contact
from storage.errors import AlreadyClaimed, NotFound, StoreError
from storage.incidents import active_alerts, alert_title
from storage.login_throttle import LoginThrottled
from storage.models import Priority, Queue, SessionKind, utcnow
from storage.personal_data import find_contacts

# A path id out of range is a 404 page (desk.app); unstorable text in a form or query string a 422.
router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_unstorable_text)])

QUEUE_TABS: tuple[tuple[str, str], ...] = (
    ("all", "All open"),
    ("mine", "Mine"),
    ("support", "Support"),
    ("sales", "Sales"),
    ("events", "Events"),
    ("general", "General"),
)
CATEGORIES = ("support", "sales", "event", "human", "smalltalk", "other")


Csrf = Annotated[str, Form(alias=CSRF_FORM_FIELD)]


class SignInRequired(Exception):
    """Raised by `page_agent`; answered with a redirect to the sign-in page."""


async def page_agent(request: Request) -> CurrentAgent:
    agent = await session_agent(request)
    if agent is None:
        raise SignInRequired()
    return agent


PageAgent = Annotated[CurrentAgent, Depends(page_agent)]


def path_for(request: Request, name: str, /, **path_params: Any) -> str:
    """The path of route `name` (under the app's mount prefix), without scheme and host.

    `request.url_for` builds an absolute URL from the Host header the client sent; a redirect or link
    built from it would point wherever a forged Host says.
    """
    return request.url_for(name, **path_params).path


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"{path_for(request, 'login_form')}?{urlencode({'next': target})}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": login})
    return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)


# --- template helpers ------------------------------------------------------------------------------


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _since(value: datetime | None) -> str:
    return "—" if value is None else _duration(utcnow() - value)


def _time(value: datetime | None) -> Markup:
    """A <time> element: UTC on the page, the ISO value for machines and for the title tooltip."""
    if value is None:
        return Markup("—")
    value = value.astimezone(UTC)
    iso = value.isoformat(timespec="seconds")
    today = utcnow().date() == value.date()
    shown = value.strftime("%H:%M" if today else "%d %b %H:%M")
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(iso, shown)


def _sla_left(clock: SlaClock | None) -> str:
    """"25m left", "overdue 1h 05m" (business time), or "—" when no clock runs."""
    if clock is None:
        return "—"
    left = clock.remaining_s
    if left > 0:
        return f"{_duration(timedelta(seconds=left))} left"
    return "due now" if left == 0 else f"overdue {_duration(timedelta(seconds=-left))}"


def _confidence(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def install_template_helpers(templates: Jinja2Templates) -> None:
    env = templates.env
    env.filters["duration"] = _duration
    env.filters["since"] = _since
    env.filters["time"] = _time
    env.filters["confidence"] = _confidence
    env.filters["sla_left"] = _sla_left
    env.filters["seconds"] = lambda value: _duration(None if value is None else timedelta(seconds=value))
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
    env.globals["QUEUE_TABS"] = QUEUE_TABS
    env.globals["PRIORITIES"] = [p.name for p in Priority]
    env.globals["CATEGORIES"] = CATEGORIES
    env.globals["CSRF_FORM_FIELD"] = CSRF_FORM_FIELD
    env.filters["alert_title"] = alert_title


def _flash(request: Request, text: str, kind: str = "error") -> None:
    request.session["flash"] = {"kind": kind, "text": text}


def _take_flash(request: Request) -> dict[str, str] | None:
    return request.session.pop("flash", None)


async def _render(
    request: Request, name: str, context: dict[str, Any], *, agent: CurrentAgent | None, status_code: int = 200
) -> HTMLResponse:
    state = request.app.state.desk
    # A queue filtered by a tag counts its tabs with the same filter (the tabs' links keep it too).
    tag = getattr(context.get("filters"), "tag", None)
    base: dict[str, Any] = {
        "agent": agent,
        "csrf": csrf_token(request),
        "flash": _take_flash(request) if not request.headers.get("hx-request") else None,
        "counts": await queries.open_counts(state.db, agent.id if agent else None, tag=tag) if agent else {},
        # A platform's rate limit holding replies back: every page says so, and until when.
        "send_pauses": await active_send_pauses(state.db) if agent else [],
        # A spike no incident took up yet: every page says so, with the link that opens one.
        "spike_alerts": await active_alerts(state.db, within_s=max(state.settings.spike_quiet_s, 900)) if agent else [],
        "away": await assignment.is_away(state.db, agent.id) if agent else False,
    }
    return state.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


render_page = _render  # for the feature page modules (desk/incident_pages.py)


def flash(request: Request, text: str, kind: str = "error") -> None:
    _flash(request, text, kind)


def explain(exc: StoreError) -> str:
    return _explain(exc)


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# --- sign in and out -------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str | None:
    """Only local paths: a sign-in link must not bounce agents to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@router.get("/login", name="login_form")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await session_agent(request) is not None:
        return RedirectResponse(_safe_next(next) or path_for(request, "home"), status_code=303)
    return await _render(request, "login.html", {"next": _safe_next(next) or "", "email": ""}, agent=None)


@router.post("/login", name="login")
async def login(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
    csrf_token_: Csrf = "",
) -> Response:
    check_csrf(request, csrf_token_)
    context = {"next": _safe_next(next) or "", "email": email}
    try:
        signed_in = await sign_in(request, email, password, SessionKind.cookie) if email and password else None
    except LoginThrottled as exc:
        minutes = -(-exc.retry_after_s // 60)
        _flash(request, f"Too many failed sign-ins for this account or from this address. "
                        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.")
        response = await _render(request, "login.html", context, agent=None, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if signed_in is None:
        _flash(request, "Wrong e-mail or password, or the account is disabled.")
        return await _render(request, "login.html", context, agent=None, status_code=401)
    start_session(request, signed_in[1])
    return RedirectResponse(_safe_next(next) or path_for(request, "home"), status_code=303)


@router.post("/logout", name="logout")
async def logout(request: Request, csrf_token_: Csrf = "") -> Response:
    check_csrf(request, csrf_token_)
    await end_session(request)
    return RedirectResponse(path_for(request, "login_form"), status_code=303)


# --- queues ----------------------------------------------------------------------------------------


@router.get("/", name="home")
async def home(request: Request, agent: PageAgent) -> Response:
    return RedirectResponse(path_for(request, "queue_page", name="all"), status_code=303)


def _queue_filters(name: str, agent: CurrentAgent, params: dict[str, str]) -> queries.Filters:
    if name not in dict(QUEUE_TABS):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no queue {name!r}")
    try:
        return queries.Filters(
            queue=name if name in queries.QUEUE_NAMES else None,
            status=params.get("status") or "open",
            assignee_id=agent.id if name == "mine" else None,
            priority=params.get("priority") or None,
            category=params.get("category") or None,
            channel=params.get("channel") or None,
            tag=params.get("tag") or None,
        ).validate()
    except ValueError:
        return queries.Filters(
            queue=name if name in queries.QUEUE_NAMES else None, assignee_id=agent.id if name == "mine" else None
        )


def _filter_params(request: Request) -> dict[str, str]:
    keys = ("status", "priority", "category", "channel", "tag", "sort")
    return {k: request.query_params[k] for k in keys if request.query_params.get(k)}


def _page_number(request: Request) -> int:
    """The 1-based page asked for; anything that is not a sensible page number means the first."""
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 1_000_000 else 1


async def _queue_page_rows(request: Request, filters: queries.Filters) -> queries.TicketPage:
    state = request.app.state.desk
    size = queries.PAGE_SIZE
    sort = _sort(request)
    page = await queries.list_tickets(
        state.db, filters, offset=(_page_number(request) - 1) * size, limit=size, sla=state.sla, sort=sort
    )
    if not page.rows and page.total:  # past the end (tickets were closed meanwhile): show the last page
        last_offset = (page.total - 1) // size * size
        page = await queries.list_tickets(state.db, filters, offset=last_offset, limit=size, sla=state.sla, sort=sort)
    return page


def _sort(request: Request) -> str:
    """`?sort=sla`: least SLA time left first; anything else is the usual order."""
    return "sla" if request.query_params.get("sort") == "sla" else "priority"


def _queue_context(name: str, request: Request, agent: CurrentAgent) -> dict[str, Any]:
    params = _filter_params(request)
    return {"queue": name, "params": params, "filters": _queue_filters(name, agent, params), "now": utcnow(),
            "sort": _sort(request), "sla_enabled": request.app.state.desk.sla.targets.enabled}


@router.get("/queues/{name}", name="queue_page")
async def queue_page(name: str, request: Request, agent: PageAgent) -> Response:
    context = _queue_context(name, request, agent)
    page = await _queue_page_rows(request, context["filters"])
    context |= {
        "queue_label": dict(QUEUE_TABS)[name],
        "page": page,
        "rows": page.rows,
        "query": urlencode(context["params"]),
        "unfiltered_query": urlencode({k: v for k, v in context["params"].items() if k != "tag"}),
    }
    return await _render(request, "queue.html", context, agent=agent)


@router.get("/queues/{name}/rows", name="queue_rows")
async def queue_rows(name: str, request: Request, agent: PageAgent) -> Response:
    context = _queue_context(name, request, agent)
    page = await _queue_page_rows(request, context["filters"])
    context |= {"page": page, "rows": page.rows, "oob": True}
    return await _render(request, "_queue_rows.html", context, agent=agent)


# --- search ----------------------------------------------------------------------------------------


@router.get("/search", name="search_page")
async def search_page(request: Request, agent: PageAgent) -> Response:
    params = request.query_params
    q = params.get("q", "").strip()
    context: dict[str, Any] = {"q": q, "results": None, "error": "", "params": dict(params)}
    if q:
        try:
            filters = search.SearchFilters(
                queue=params.get("queue") or None,
                status=params.get("status") or None,
                channel=params.get("channel") or None,
                since=_date_param(params.get("from"), end_of_day=False),
                until=_date_param(params.get("to"), end_of_day=True),
            )
            context["results"] = await search.search(request.app.state.desk.db, q, filters,
                                                     sla=request.app.state.desk.sla)
        except ValueError as exc:
            context["error"] = str(exc)
    status_code = 422 if context["error"] else 200
    return await _render(request, "search.html", context, agent=agent, status_code=status_code)


def _date_param(raw: str | None, *, end_of_day: bool) -> datetime | None:
    """A `YYYY-MM-DD` from the date inputs, as the start (or the end) of that day in UTC."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date: use YYYY-MM-DD") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1, microseconds=-1) if end_of_day else start


# --- a ticket --------------------------------------------------------------------------------------


async def _ticket_context(request: Request, ticket_id: int, agent: CurrentAgent) -> dict[str, Any]:
    state = request.app.state.desk
    detail = await queries.ticket_detail(state.db, ticket_id, sla=state.sla)
    ticket = detail.ticket
    holds = ticket.assignee is not None and ticket.assignee.id == agent.id
    return {
        "detail": detail,
        "t": ticket,
        "holds": holds,
        "can_reply": ticket.status == "assigned" and (holds or agent.is_admin),
        "intents": await state.intent_choices(),
        "agents": await queries.active_agents(state.db) if agent.is_admin else [],
        "queue_names": queries.QUEUE_NAMES,
        "saved_replies": await replies_for_ticket(state.db, detail, agent.name, state.events)
        if ticket.status in ("queued", "assigned")
        else [],
        "now": utcnow(),
    }


@router.get("/tickets/{ticket_id}", name="ticket_page")
async def ticket_page(ticket_id: RowId, request: Request, agent: PageAgent) -> Response:
    try:
        context = await _ticket_context(request, ticket_id, agent)
    except NotFound:
        return await _render(request, "not_found.html", {"what": f"Ticket #{ticket_id}"}, agent=agent, status_code=404)
    return await _render(request, "ticket.html", context, agent=agent)


@router.get("/tickets/{ticket_id}/parts", name="ticket_parts")
async def ticket_parts(ticket_id: RowId, request: Request, agent: PageAgent) -> Response:
    """The parts of the ticket page that change by themselves (live updates swap them out of band)."""
    context = await _ticket_context(request, ticket_id, agent)
    return await _render(request, "_ticket_parts.html", context, agent=agent)


async def _after_action(request: Request, ticket_id: int, agent: CurrentAgent, error: str | None) -> Response:
    """Plain posts: back to the ticket (with the error, if any).  htmx: the fresh page parts."""
    if not _is_htmx(request):
        if error:
            _flash(request, error)
        return RedirectResponse(path_for(request, "ticket_page", ticket_id=ticket_id), status_code=303)
    if error:
        response = await _render(request, "_flash.html", {"flash": {"kind": "error", "text": error}}, agent=agent)
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    context = {**await _ticket_context(request, ticket_id, agent), "with_composer": True}
    response = await _render(request, "_ticket_parts.html", context, agent=agent)
    response.headers["X-Desk-Ok"] = "1"
    return response


def _explain(exc: StoreError) -> str:
    if isinstance(exc, AlreadyClaimed):
        return f"{exc.holder} already holds this ticket."
    message = str(exc)
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


async def _do(
    request: Request, ticket_id: int, agent: CurrentAgent, csrf: str, action: Callable[[], Awaitable[Any]]
) -> Response:
    check_csrf(request, csrf)
    try:
        await action()
    except StoreError as exc:
        if isinstance(exc, NotFound) and exc.what == "Ticket":
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
        return await _after_action(request, ticket_id, agent, _explain(exc))
    return await _after_action(request, ticket_id, agent, None)


@router.post("/tickets/{ticket_id}/claim", name="ticket_claim")
async def ticket_claim(
    ticket_id: RowId, request: Request, agent: PageAgent,
    csrf: Csrf = "",
) -> Response:
    return await _do(request, ticket_id, agent, csrf, lambda: actions.claim(request.app.state.desk.db, ticket_id, agent.id))


@router.post("/tickets/{ticket_id}/reply", name="ticket_reply")
async def ticket_reply(
    ticket_id: RowId, request: Request, agent: PageAgent,
    text: Annotated[str, Form()] = "", csrf: Csrf = "", confirm_public: Annotated[str, Form()] = "",
) -> Response:
    db = request.app.state.desk.db
    warning = await public_reply_warning(db, ticket_id, text, confirmed=confirm_public == "1")
    if warning:
        check_csrf(request, csrf)
        return await _after_action(request, ticket_id, agent, warning)
    return await _do(request, ticket_id, agent, csrf, lambda: actions.agent_reply(db, ticket_id, agent.id, text))


@router.post("/tickets/{ticket_id}/note", name="ticket_note")
async def ticket_note(
    ticket_id: RowId, request: Request, agent: PageAgent,
    text: Annotated[str, Form()] = "", csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    return await _do(request, ticket_id, agent, csrf, lambda: actions.add_note(db, ticket_id, agent.id, text))


@router.post("/tickets/{ticket_id}/handback", name="ticket_handback")
async def ticket_handback(
    ticket_id: RowId, request: Request, agent: PageAgent,
    csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    return await _do(request, ticket_id, agent, csrf, lambda: actions.hand_back(db, ticket_id, agent.id))


@router.post("/tickets/{ticket_id}/resolve", name="ticket_resolve")
async def ticket_resolve(
    ticket_id: RowId, request: Request, agent: PageAgent,
    csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    return await _do(request, ticket_id, agent, csrf, lambda: actions.resolve(db, ticket_id, agent.id, csat=request.app.state.desk.csat))


@router.post("/tickets/{ticket_id}/assign", name="ticket_assign")
async def ticket_assign(
    ticket_id: RowId, request: Request, agent: PageAgent,
    agent_id: Annotated[RowId, Form()], csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    return await _do(request, ticket_id, agent, csrf, lambda: actions.reassign(db, ticket_id, agent_id, by_agent_id=agent.id))


@router.post("/tickets/{ticket_id}/tags", name="ticket_tag_add")
async def ticket_tag_add(
    ticket_id: RowId, request: Request, agent: PageAgent,
    tag: Annotated[str, Form()] = "", csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    return await _do(request, ticket_id, agent, csrf, lambda: add_tag(db, ticket_id, tag, agent_id=agent.id))


@router.post("/tickets/{ticket_id}/tags/{tag}/delete", name="ticket_tag_remove")
async def ticket_tag_remove(
    ticket_id: RowId, tag: Annotated[str, Path(max_length=64)], request: Request, agent: PageAgent, csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    return await _do(request, ticket_id, agent, csrf, lambda: remove_tag(db, ticket_id, tag, agent_id=agent.id))


@router.post("/tickets/{ticket_id}/move", name="ticket_move")
async def ticket_move(
    ticket_id: RowId, request: Request, agent: PageAgent,
    queue: Annotated[str, Form()] = "", csrf: Csrf = "",
) -> Response:
    db = request.app.state.desk.db
    if queue not in queries.QUEUE_NAMES:
        check_csrf(request, csrf)
        return await _after_action(request, ticket_id, agent, f"Pick a queue from the list (got {queue!r}).")
    return await _do(
        request, ticket_id, agent, csrf, lambda: actions.move_to_queue(db, ticket_id, Queue(queue), agent_id=agent.id)
    )


@router.post("/tickets/{ticket_id}/messages/{message_id}/intent", name="message_intent")
async def message_intent(
    ticket_id: RowId, message_id: RowId, request: Request, agent: PageAgent,
    intent: Annotated[str, Form()] = "", csrf: Csrf = "",
) -> Response:
    state = request.app.state.desk
    if intent not in await state.intent_choices():
        check_csrf(request, csrf)
        return await _after_action(request, ticket_id, agent, f"Pick an intent from the list (got {intent!r}).")
    return await _do(
        request, ticket_id, agent, csrf, lambda: actions.correct_intent(state.db, message_id, intent, agent_id=agent.id)
    )


# --- figures ---------------------------------------------------------------------------------------


@router.get("/stats", name="stats_page")
async def stats_page(
    request: Request, agent: PageAgent, days: int = 30, from_: str = Query(default="", alias="from"),
    to: str = "", queue: str = "",
) -> Response:
    days = min(max(days, 1), 3650)
    state = request.app.state.desk
    figures = await queries.stats(state.db, days=days)
    period, period_error = _chosen_period(from_, to, days)
    chosen_queue = queue if queue in queries.QUEUE_NAMES else None
    per_day = await daily_figures.daily(state.db, period, queue=chosen_queue)
    try:  # X's bill: the stored usage priced by the brand's table (a bad table shows its error, not a 500)
        cost: usage.CostEstimate | None = await usage.estimate_cost(state.db, usage.load_prices(state.settings.content_dir))
        cost_error = None
    except usage.PriceTableError as exc:
        cost, cost_error = None, str(exc)
    context = {
        "s": figures, "days": days, "cost": cost, "cost_error": cost_error, "period": period,
        "period_error": period_error, "period_queue": chosen_queue or "", "queues": queries.QUEUE_NAMES,
        "charts": _charts(per_day, one_queue=chosen_queue is not None),
    }
    return await _render(request, "stats.html", context, agent=agent)


@router.get("/stats.csv", name="stats_csv_page")
async def stats_csv_page(
    request: Request, agent: PageAgent, period: Annotated[daily_figures.PeriodQuery, Depends(daily_figures.period_query)]
) -> Response:
    """The figures page's CSV download (the same as `GET /api/stats.csv`, signed in by the session)."""
    return await csv_response(request, period)


def _chosen_period(from_: str, to: str, days: int) -> tuple[daily_figures.Period, str | None]:
    """The period the form asked for; a bad one shows the last `days` days (up to a year) and says why."""
    today = utcnow().date()
    fallback = daily_figures.Period(today - timedelta(days=min(days, daily_figures.MAX_DAYS) - 1), today)
    if not from_ and not to:
        return fallback, None
    try:
        return daily_figures.Period.checked(date.fromisoformat(from_ or to), date.fromisoformat(to or from_)), None
    except ValueError as exc:  # PeriodError is one; so is a date that is not YYYY-MM-DD
        reason = str(exc) if isinstance(exc, daily_figures.PeriodError) else "dates are written YYYY-MM-DD"
        return fallback, f"That period cannot be shown ({reason}); showing {fallback.start} to {fallback.end}."


def _charts(per_day: list[daily_figures.Day], *, one_queue: bool) -> list[Markup]:
    days = [d.day for d in per_day]
    f = [d.figures for d in per_day]
    duration = charts.duration_label
    return [
        charts.chart("Volume in", days, [
            charts.Series("Customer messages", [x.messages_in for x in f], "s0"),
            charts.Series("New tickets", [x.new_tickets for x in f], "s1"),
        ], kind="bar"),
        charts.chart("Handled by the bot alone" + (" (all queues only)" if one_queue else ""), days, [
            charts.Series("Containment", [None if x.containment is None else x.containment * 100 for x in f], "s0"),
        ], fmt=lambda v: f"{v:.0f}%", top=100),
        charts.chart("First response", days, [
            charts.Series("Median", [x.first_response_median_s for x in f], "s0"),
            charts.Series("p90", [x.first_response_p90_s for x in f], "s1"),
        ], fmt=duration),
        charts.chart("Resolution", days, [
            charts.Series("Median", [x.resolution_median_s for x in f], "s0"),
            charts.Series("p90", [x.resolution_p90_s for x in f], "s1"),
        ], fmt=duration),
        charts.chart("SLA breaches", days, [charts.Series("Breaches", [x.sla_breaches for x in f], "s2")], kind="bar"),
        charts.chart("CSAT", days, [charts.Series("Average score", [x.csat_average for x in f], "s0")],
                     fmt=lambda v: f"{v:.1f}", top=5),
    ]


# --- events: registrations (desk/event_registrations.py) -------------------------------------------


@router.get("/events", name="events_page")
async def events_page(request: Request, agent: PageAgent) -> Response:
    from desk.event_registrations import events_overview, registration_counts

    counts = await registration_counts(request.app.state.desk.db)
    return await _render(request, "events.html", {"events": events_overview(request, counts)}, agent=agent)


@router.get("/events/{event_key}/registrations.csv", name="event_registrations_csv")
async def event_registrations_csv(event_key: str, request: Request, agent: PageAgent) -> Response:
    from desk.event_registrations import csv_response

    return await csv_response(request, agent, event_key)


# --- public posts (storage/actions/public_posts.py) -----------------------------------------------


@router.get("/public-posts", name="public_posts_page")
async def public_posts_page(request: Request, agent: PageAgent) -> Response:
    from storage.public_posts import list_posts

    posts = await list_posts(request.app.state.desk.db)
    return await _render(request, "public_posts.html", {"posts": posts}, agent=agent)


async def _change_posts(request: Request, csrf: str, change: Callable[[], Awaitable[Any]], done: str) -> Response:
    check_csrf(request, csrf)
    try:
        await change()
        _flash(request, done, "ok")
    except StoreError as exc:
        _flash(request, _explain(exc))
    return RedirectResponse(path_for(request, "public_posts_page"), status_code=303)


@router.post("/public-posts", name="public_post_draft")
async def public_post_draft(
    request: Request, agent: PageAgent, csrf: Csrf = "",
    text: Annotated[str, Form(max_length=1000)] = "", confirm_public: Annotated[str, Form()] = "",
) -> Response:
    from storage.actions.public_posts import draft_post

    db = request.app.state.desk.db
    return await _change_posts(
        request, csrf, lambda: draft_post(db, agent.id, text, confirm_public=bool(confirm_public)),
        "Draft saved: another agent must approve it before it is posted.",
    )


@router.post("/public-posts/{post_id}/approve", name="public_post_approve")
async def public_post_approve(
    post_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
    scheduled_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    from storage.actions.public_posts import approve_post
    from storage.errors import InvalidText

    db = request.app.state.desk.db

    async def approve() -> None:
        when = None
        if scheduled_at.strip():
            try:  # the form's datetime-local has no zone: the page says it is UTC
                when = datetime.fromisoformat(scheduled_at.strip())
            except ValueError:
                raise InvalidText(f"{scheduled_at!r} is not a date and time, e.g. 2026-12-24T09:00") from None
        await approve_post(db, post_id, agent.id, scheduled_at=when)

    done = "Approved: it is scheduled." if scheduled_at.strip() else "Approved: it is being posted now."
    return await _change_posts(request, csrf, approve, done)


@router.post("/public-posts/{post_id}/discard", name="public_post_discard")
async def public_post_discard(post_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "") -> Response:
    from storage.actions.public_posts import discard_post

    db = request.app.state.desk.db
    return await _change_posts(request, csrf, lambda: discard_post(db, post_id, agent.id), "Draft discarded.")


# --- saved replies ---------------------------------------------------------------------------------


@router.get("/saved-replies", name="saved_replies_page")
async def saved_replies_page(request: Request, agent: PageAgent) -> Response:
    return await _render(
        request,
        "saved_replies.html",
        {
            "replies": await saved_replies_store.list_saved_replies(request.app.state.desk.db),
            "placeholders": saved_replies_store.PLACEHOLDERS,
            "queues": queries.QUEUE_NAMES,
        },
        agent=agent,
    )


async def _change_saved_replies(
    request: Request, agent: CurrentAgent, csrf: str, change: Callable[[], Awaitable[Any]], done: str
) -> Response:
    check_csrf(request, csrf)
    if not agent.is_admin:
        _flash(request, "Only an admin can change saved replies.")
    else:
        try:
            await change()
            _flash(request, done, "ok")
        except (ValueError, StoreError) as exc:
            _flash(request, _explain(exc) if isinstance(exc, StoreError) else str(exc)[:1].upper() + str(exc)[1:])
    return RedirectResponse(path_for(request, "saved_replies_page"), status_code=303)


@router.post("/saved-replies", name="saved_reply_create")
async def saved_reply_create(
    request: Request, agent: PageAgent, csrf: Csrf = "",
    name: Annotated[str, Form()] = "", text: Annotated[str, Form()] = "", queue: Annotated[str, Form()] = "",
) -> Response:
    db = request.app.state.desk.db
    return await _change_saved_replies(
        request, agent, csrf,
        lambda: saved_replies_store.create_saved_reply(db, name=name.strip(), text=text, queue=queue, agent_id=agent.id),
        f"Saved reply /{name.strip()} added.",
    )


@router.post("/saved-replies/{reply_id}", name="saved_reply_update")
async def saved_reply_update(
    reply_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "",
    name: Annotated[str, Form()] = "", text: Annotated[str, Form()] = "", queue: Annotated[str, Form()] = "",
) -> Response:
    db = request.app.state.desk.db
    return await _change_saved_replies(
        request, agent, csrf,
        lambda: saved_replies_store.update_saved_reply(db, reply_id, name=name.strip(), text=text, queue=queue),
        f"Saved reply /{name.strip()} changed.",
    )


@router.post("/saved-replies/{reply_id}/delete", name="saved_reply_delete")
async def saved_reply_delete(reply_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "") -> Response:
    db = request.app.state.desk.db
    return await _change_saved_replies(
        request, agent, csrf, lambda: saved_replies_store.delete_saved_reply(db, reply_id), "Saved reply deleted."
    )


# --- the customer panel ----------------------------------------------------------------------------


@router.get("/customers/{contact_id}", name="customer_page")
async def customer_page(contact_id: RowId, request: Request, agent: PageAgent) -> Response:
    try:
        profile = await customers.customer_profile(request.app.state.desk.db, contact_id)
    except NotFound:
        return await _render(request, "not_found.html", {"what": f"Customer #{contact_id}"}, agent=agent, status_code=404)
    return await _render(request, "customer.html", {"p": profile}, agent=agent)


@router.post("/customers/{contact_id}/link", name="customer_link")
async def customer_link(
    contact_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "", other: Annotated[str, Form()] = "",
) -> Response:
    """Link by the other contact's number ("#12" or "12") or handle ("@sam", unique across channels)."""
    check_csrf(request, csrf)
    db = request.app.state.desk.db
    wanted = other.strip().removeprefix("#")
    if wanted.isdigit() and 0 < int(wanted) <= 2**31 - 1:
        candidates = [int(wanted)]
    else:
        candidates = [c.id for c in await find_contacts(db, wanted) if c.id != contact_id] if wanted else []
    if len(candidates) != 1:
        _flash(request, "No contact matches that." if not candidates else
               "Several contacts have that handle: use the contact's number (on its customer page).")
    else:
        try:
            await customers.customer_profile(db, candidates[0])
            group = await link_contacts(db, contact_id, candidates[0])
            _flash(request, f"Linked: {len(group)} contacts are now one customer.", "ok")
        except NotFound:
            _flash(request, f"There is no contact #{candidates[0]}.")
        except CannotLink as exc:
            _flash(request, str(exc)[:1].upper() + str(exc)[1:] + ".")
    return RedirectResponse(path_for(request, "customer_page", contact_id=contact_id), status_code=303)


@router.post("/customers/{contact_id}/unlink", name="customer_unlink")
async def customer_unlink(contact_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "") -> Response:
    check_csrf(request, csrf)
    await unlink_contact(request.app.state.desk.db, contact_id)
    _flash(request, "This contact is on its own again.", "ok")
    return RedirectResponse(path_for(request, "customer_page", contact_id=contact_id), status_code=303)


# --- automatic assignment --------------------------------------------------------------------------


@router.post("/me/away", name="me_away")
async def me_away(
    request: Request, agent: PageAgent, csrf: Csrf = "",
    away: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "",
) -> Response:
    """The top bar's toggle: away (no new assignments; held tickets stay) or back."""
    check_csrf(request, csrf)
    going = away == "1"
    await actions.set_away(request.app.state.desk.db, agent.id, going)
    _flash(request, "You are away: no new tickets are assigned to you; the ones you hold stay yours." if going
           else "You are back: automatic assignment may give you tickets again.", "ok")
    return RedirectResponse(_safe_next(next) or path_for(request, "home"), status_code=303)


@router.get("/assignment", name="assignment_page")
async def assignment_page(request: Request, agent: PageAgent) -> Response:
    state = request.app.state.desk
    if not agent.is_admin:
        return await _render(request, "assignment.html", {"forbidden": True}, agent=agent, status_code=403)
    context = {
        "settings_by_queue": await assignment.queue_settings(state.db),
        "people": await assignment.presences(state.db, window_s=state.settings.assign_online_window_s),
        "window_s": int(state.settings.assign_online_window_s),
        "capacity_max": ASSIGN_CAPACITY_MAX,
    }
    return await _render(request, "assignment.html", context, agent=agent)


@router.post("/assignment/{queue}", name="assignment_update")
async def assignment_update(
    queue: str, request: Request, agent: PageAgent, csrf: Csrf = "",
    auto_assign: Annotated[str, Form()] = "", capacity: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    if queue not in queries.QUEUE_NAMES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no queue {queue!r}")
    if not agent.is_admin:
        _flash(request, "Only an admin can change how queues are assigned.")
    elif not capacity.strip().isdigit():
        _flash(request, f"The capacity is a number of open tickets, 1 to {ASSIGN_CAPACITY_MAX}.")
    else:
        on = auto_assign == "1"
        try:
            await actions.set_queue_assignment(
                request.app.state.desk.db, queue, auto_assign=on, capacity=int(capacity), by_agent_id=agent.id
            )
            _flash(request, f"{queue.capitalize()}: " + (
                f"new tickets go to online agents by round robin, at most {int(capacity)} open each." if on
                else "tickets wait for an agent to claim them."), "ok")
        except ValueError as exc:
            _flash(request, str(exc)[:1].upper() + str(exc)[1:] + ".")
    return RedirectResponse(path_for(request, "assignment_page"), status_code=303)
