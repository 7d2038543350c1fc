"""The JSON API under /api/ (documented at /docs): the same actions as the pages, for scripts and tools.

Every route but POST /api/token needs `Authorization: Bearer <token>`.  Store errors map to HTTP in
`desk.app`: unknown ids 404, invalid transitions 409 with the current state, another agent's ticket 403,
bad text 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import date as date_
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from desk import figures, queries, search
from desk.auth import CurrentAgent, api_agent, presented_token_secret, sign_in
from desk.inputs import RowId, refuse_unstorable_text
from desk.public_guard import public_reply_warning
from desk.validation import unprocessable
from frontdesk.core.sla import SlaClock, SlaPolicy
from storage import actions, agent_sessions
from storage.errors import NotAllowed, NotFound
from storage.login_throttle import LoginThrottled
from frontdesk.core.vocabulary import Queue
from storage.models import SessionKind

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(refuse_unstorable_text)])
ApiAgent = Annotated[CurrentAgent, Depends(api_agent)]


# --- bodies and answers ----------------------------------------------------------------------------


class TokenRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ThrottledOut(BaseModel):
    detail: str = Field(description="says when to try again (also in the Retry-After header, in seconds)")


class RevokedOut(BaseModel):
    revoked: int = Field(description="how many of your tokens and desk sessions were still live and now are not")


class TextBody(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)


class ReplyBody(TextBody):
    confirm_public: bool = Field(
        default=False,
        description="on a public X thread, a reply that seems to hold an e-mail, phone or order number or an "
        "address is refused with 409 unless this is true (the text is meant to be public)",
    )


class AssignBody(BaseModel):
    agent_id: RowId


class MoveBody(BaseModel):
    queue: Queue


class IntentBody(BaseModel):
    intent: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_./-]+$")


class AgentOut(BaseModel):
    id: int
    name: str
    email: str


class CustomerOut(BaseModel):
    handle: str
    display_name: str
    channel: str
    platform_user_id: str


class SlaOut(BaseModel):
    metric: Literal["first_response", "next_response", "resolution"] = Field(
        description="the clock with the least time left"
    )
    due_at: datetime = Field(description="when its target is used up, counting business hours only")
    remaining_s: int = Field(description="business seconds left; negative: overdue by that much")
    state: Literal["ok", "warning", "breached"] = Field(description="warning from 80% of the target used")


class TicketOut(BaseModel):
    id: int
    queue: str
    status: str
    priority: str
    category: str
    subject: str
    customer: CustomerOut
    assignee: AgentOut | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    waiting_since: datetime | None
    tags: list[str] = Field(description="the ticket's tags, alphabetically")
    sla: SlaOut | None = Field(
        default=None, description="the running SLA clock (content/sla.yml); null when closed or without targets"
    )


class MessageOut(BaseModel):
    id: int
    author: Literal["customer", "bot", "agent", "system"]
    kind: Literal["message", "note"]
    is_note: bool
    text: str
    intent: str | None
    confidence: float | None
    corrected_intent: str | None
    created_at: datetime
    delivered_at: datetime | None
    delivery: str | None = Field(description="outbound messages: pending, sending, sent or failed")
    delivery_error: str | None
    agent: AgentOut | None
    author_handle: str | None = Field(
        description="inbound messages: the handle of whoever wrote it (anyone can reply in a public thread)"
    )
    third_party: bool = Field(
        description="true when someone other than the ticket's customer wrote it: not the customer's words"
    )


class EventOut(BaseModel):
    action: str
    actor: str
    agent: AgentOut | None
    detail: dict[str, Any]
    created_at: datetime


class CsatOut(BaseModel):
    asked_at: datetime
    score: int | None = Field(description="1-5; null while unanswered (or the question lapsed)")
    comment: str = Field(description="the rest of the customer's answer")
    answered_at: datetime | None


class TicketDetailOut(TicketOut):
    conversation: dict[str, Any]
    data: dict[str, Any]
    messages: list[MessageOut]
    events: list[EventOut]
    csat: CsatOut | None = Field(default=None, description="the satisfaction question asked after resolving")


class AcceptedMessage(BaseModel):
    message_id: int
    ticket_id: int
    status: str


class DayFiguresOut(BaseModel):
    messages_in: int = Field(description="customer messages written that day (per queue: on its tickets)")
    new_tickets: int
    conversations: int | None = Field(description="conversations with a customer message that day (all queues only)")
    contained: int | None = Field(description="of those, handled by the bot alone (no ticket)")
    containment: float | None
    first_response_median_s: float | None
    first_response_p90_s: float | None
    resolution_median_s: float | None
    resolution_p90_s: float | None
    sla_breaches: int
    csat_average: float | None
    csat_count: int


class DayOut(DayFiguresOut):
    date: date_
    by_queue: dict[str, DayFiguresOut]


class StatsOut(BaseModel):
    open_by_queue: dict[str, dict[str, int]]
    median_first_response_s: float | None
    median_resolution_s: float | None
    containment: float | None = Field(description="share of conversations the bot handled without a ticket")
    conversations: int
    escalated_conversations: int
    since: datetime
    sla_breaches: dict[str, int] = Field(description="SLA breaches recorded in the period, per queue")
    csat_average: float | None = Field(description="average score (1-5) of the answers to questions asked in the window")
    csat_count: int = Field(description="answers to the satisfaction questions asked in the window")
    csat_asked: int = Field(description="satisfaction questions asked in the window")
    csat_response_rate: float | None = Field(description="csat_count / csat_asked")
    days: list[DayOut] | None = Field(
        default=None, description="with from/to: the figures of every UTC day of the period, oldest first"
    )


def _agent_out(ref: queries.AgentRef | None) -> AgentOut | None:
    return None if ref is None else AgentOut(id=ref.id, name=ref.name, email=ref.email)


def ticket_out(row: queries.TicketRow) -> TicketOut:
    return TicketOut(
        id=row.id,
        queue=row.queue,
        status=row.status,
        priority=row.priority,
        category=row.category,
        subject=row.subject,
        customer=CustomerOut(
            handle=row.customer.handle,
            display_name=row.customer.display_name,
            channel=row.customer.channel,
            platform_user_id=row.customer.platform_user_id,
        ),
        assignee=_agent_out(row.assignee),
        created_at=row.created_at,
        updated_at=row.updated_at,
        first_response_at=row.first_response_at,
        resolved_at=row.resolved_at,
        waiting_since=row.waiting_since,
        tags=list(row.tags),
        sla=_sla_out(row.sla),
    )


def _sla_out(clock: SlaClock | None) -> SlaOut | None:
    if clock is None:
        return None
    return SlaOut(metric=clock.metric.value, due_at=clock.due_at, remaining_s=clock.remaining_s,
                  state=clock.state.value)


def _detail_out(detail: queries.TicketDetail) -> TicketDetailOut:
    return TicketDetailOut(
        **ticket_out(detail.ticket).model_dump(),
        conversation={
            "id": detail.conversation_id,
            "kind": detail.conversation_kind,
            "status": detail.conversation_status,
        },
        data=detail.data,
        messages=[message_out(m) for m in detail.messages],
        events=[
            EventOut(action=e.action, actor=e.actor, agent=_agent_out(e.agent), detail=e.detail, created_at=e.created_at)
            for e in detail.events
        ],
        csat=CsatOut(**detail.csat) if detail.csat else None,
    )


def message_out(m: queries.MessageView) -> MessageOut:
    return MessageOut(
        id=m.id,
        author=m.author,  # type: ignore[arg-type]
        kind=m.kind,  # type: ignore[arg-type]
        is_note=m.is_note,
        text=m.text,
        intent=m.intent,
        confidence=m.confidence,
        corrected_intent=m.corrected_intent,
        created_at=m.created_at,
        delivered_at=m.delivered_at,
        delivery=m.delivery,
        delivery_error=m.delivery_error,
        agent=_agent_out(m.agent),
        author_handle=m.author_handle,
        third_party=m.third_party,
    )


def _sla(request: Request) -> SlaPolicy:
    return request.app.state.desk.sla


def _db(request: Request) -> Any:
    return request.app.state.desk.db


# --- routes ----------------------------------------------------------------------------------------


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Exchange an agent's e-mail and password for a bearer token",
    responses={
        401: {"description": "wrong e-mail or password, or the agent is disabled"},
        429: {
            "model": ThrottledOut,
            "description": "too many failed sign-ins for this account or from this address: refused whatever "
            "the password, until the time in Retry-After has passed",
            "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
        },
    },
)
async def issue_token(body: TokenRequest, request: Request) -> TokenResponse:
    state = request.app.state.desk
    try:
        signed_in = await sign_in(request, body.email, body.password, SessionKind.token)
    except LoginThrottled as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, detail=str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    if signed_in is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong e-mail or password (or the agent is disabled)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return TokenResponse(access_token=state.tokens.issue(signed_in[1]), expires_in=state.tokens.ttl_s)


@router.delete(
    "/token",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke the bearer token you send (your other tokens and sessions stay)",
    responses={204: {"description": "revoked: the token opens nothing from now on"}},
)
async def revoke_token(request: Request, agent: ApiAgent) -> Response:
    secret = presented_token_secret(request)
    assert secret is not None  # api_agent accepted it
    await agent_sessions.revoke(_db(request), secret)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/tokens/revoke-all",
    response_model=RevokedOut,
    summary="Sign out everywhere: revoke all your bearer tokens and desk sessions, this token included",
)
async def revoke_all_tokens(request: Request, agent: ApiAgent) -> RevokedOut:
    return RevokedOut(revoked=await agent_sessions.revoke_all(_db(request), agent.id))


@router.get(
    "/tickets",
    response_model=list[TicketOut],
    summary="Tickets, most urgent and oldest first, a page at a time",
    description="The `X-Total-Count` header says how many match in all; fetch the next page with "
    "`offset` + `limit` (a `Link: <...>; rel=\"next\"` header gives it while there is one).",
)
async def list_tickets(
    request: Request,
    response: Response,
    agent: ApiAgent,
    queue: Annotated[str | None, Query(description="support, sales, events or general")] = None,
    status_: Annotated[
        str, Query(alias="status", description="open, queued, assigned, closed, handed_back, resolved or all")
    ] = "open",
    mine: Annotated[bool, Query(description="only tickets you hold")] = False,
    priority: Annotated[str | None, Query(description="urgent, high, normal or low")] = None,
    category: str | None = None,
    channel: Annotated[str | None, Query(description="x or telegram")] = None,
    tag: Annotated[str | None, Query(max_length=64, description="only tickets with this tag")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE, description="tickets per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="tickets to skip")] = 0,
    sort: Annotated[
        Literal["priority", "sla"],
        Query(description="priority: most urgent, then oldest first; sla: least SLA time left first"),
    ] = "priority",
) -> list[TicketOut]:
    try:
        filters = queries.Filters(
            queue=queue or None,
            status=status_,
            assignee_id=agent.id if mine else None,
            priority=priority or None,
            category=category or None,
            channel=channel or None,
            tag=tag or None,
        ).validate()
    except ValueError as exc:
        raise unprocessable(("query",), str(exc)) from None
    page = await queries.list_tickets(_db(request), filters, offset=offset, limit=limit, sla=_sla(request), sort=sort)
    response.headers["X-Total-Count"] = str(page.total)
    if page.has_next:
        next_url = request.url.include_query_params(offset=page.last, limit=limit)
        response.headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return [ticket_out(row) for row in page.rows]


class CustomerHitOut(BaseModel):
    id: int
    handle: str
    display_name: str
    channel: str
    platform_user_id: str
    latest_ticket_id: int | None


class MessageHitOut(BaseModel):
    id: int
    ticket_id: int | None
    author: str
    channel: str
    snippet: str = Field(description="the message text around the first word found (whole when short)")
    created_at: datetime


class SearchOut(BaseModel):
    query: str
    tickets: list[TicketOut]
    customers: list[CustomerHitOut]
    messages: list[MessageHitOut]


@router.get(
    "/search",
    response_model=SearchOut,
    summary="Search tickets (number, subject), customers (handle, name) and message text",
    description="Every word must occur in a message, as a word or its start; results newest first. "
    "`from`/`to` are ISO 8601 date-times (a date means its midnight UTC).",
)
async def search_everything(
    request: Request,
    agent: ApiAgent,
    q: Annotated[str, Query(min_length=1, max_length=search.MAX_QUERY_CHARS, description="what to look for")],
    queue: Annotated[str | None, Query(description="support, sales, events or general")] = None,
    status_: Annotated[str | None, Query(alias="status", description="open, closed, resolved, ... or all")] = None,
    channel: Annotated[str | None, Query(description="x or telegram")] = None,
    from_: Annotated[datetime | None, Query(alias="from", description="not before (ISO 8601)")] = None,
    to: Annotated[datetime | None, Query(description="not after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT, description="results per kind")] = search.DEFAULT_LIMIT,
) -> SearchOut:
    try:
        filters = search.SearchFilters(
            queue=queue or None,
            status=status_ or None,
            channel=channel or None,
            since=_utc(from_),
            until=_utc(to),
        )
        found = await search.search(_db(request), q, filters, limit=limit, sla=_sla(request))
    except ValueError as exc:
        raise unprocessable(("query",), str(exc)) from None
    return SearchOut(
        query=found.query,
        tickets=[ticket_out(row) for row in found.tickets],
        customers=[CustomerHitOut(**vars(c)) for c in found.customers],
        messages=[MessageHitOut(**vars(m)) for m in found.messages],
    )


def _utc(value: datetime | None) -> datetime | None:
    """A naive date-time is taken as UTC (the store keeps UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get("/tickets/{ticket_id}", response_model=TicketDetailOut, summary="A ticket with its conversation")
async def get_ticket(ticket_id: RowId, request: Request, agent: ApiAgent) -> TicketDetailOut:
    return _detail_out(await queries.ticket_detail(_db(request), ticket_id, sla=_sla(request)))


@router.post(
    "/tickets/{ticket_id}/claim",
    response_model=TicketOut,
    summary="Take a queued ticket",
    responses={409: {"description": "someone else holds it (`holder` names them) or it is closed"}},
)
async def claim(ticket_id: RowId, request: Request, agent: ApiAgent) -> TicketOut:
    await actions.claim(_db(request), ticket_id, agent.id)
    return await _ticket(request, ticket_id)


@router.post(
    "/tickets/{ticket_id}/reply",
    response_model=AcceptedMessage,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Reply to the customer (queued for delivery)",
)
async def reply(
    ticket_id: RowId, body: ReplyBody, request: Request, agent: ApiAgent
) -> AcceptedMessage:
    warning = await public_reply_warning(_db(request), ticket_id, body.text, confirmed=body.confirm_public)
    if warning:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=warning)
    message = await actions.agent_reply(_db(request), ticket_id, agent.id, body.text)
    assert message.id is not None
    return AcceptedMessage(message_id=message.id, ticket_id=ticket_id, status="pending")


@router.post(
    "/tickets/{ticket_id}/notes",
    response_model=AcceptedMessage,
    status_code=status.HTTP_201_CREATED,
    summary="Add an internal note (never sent to the customer)",
)
async def add_note(
    ticket_id: RowId, body: TextBody, request: Request, agent: ApiAgent
) -> AcceptedMessage:
    message = await actions.add_note(_db(request), ticket_id, agent.id, body.text)
    assert message.id is not None
    return AcceptedMessage(message_id=message.id, ticket_id=ticket_id, status="note")


@router.post("/tickets/{ticket_id}/handback", response_model=TicketOut, summary="Give the conversation back to the bot")
async def hand_back(ticket_id: RowId, request: Request, agent: ApiAgent) -> TicketOut:
    await actions.hand_back(_db(request), ticket_id, agent.id)
    return await _ticket(request, ticket_id)


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketOut, summary="Close the ticket as resolved")
async def resolve(ticket_id: RowId, request: Request, agent: ApiAgent) -> TicketOut:
    await actions.resolve(_db(request), ticket_id, agent.id, csat=request.app.state.desk.csat)
    return await _ticket(request, ticket_id)


@router.post(
    "/tickets/{ticket_id}/assign",
    response_model=TicketOut,
    summary="Give an open ticket to an agent (admins only)",
    responses={403: {"description": "you are not an admin"}},
)
async def assign(
    ticket_id: RowId, body: AssignBody, request: Request, agent: ApiAgent
) -> TicketOut:
    if not agent.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin can assign tickets")
    try:
        await actions.reassign(_db(request), ticket_id, body.agent_id, by_agent_id=agent.id)
    except NotFound as exc:
        if exc.what == "Agent":
            raise unprocessable(("body", "agent_id"), f"{exc}: pick an agent id from the desk") from None
        raise
    return await _ticket(request, ticket_id)


@router.post(
    "/tickets/{ticket_id}/move",
    response_model=TicketOut,
    summary="Move an open ticket to another queue (a label for `frontdesk nlu retrain`)",
    responses={403: {"description": "held by another agent (its holder or an admin may move it)"},
               409: {"description": "the ticket is closed"}},
)
async def move(ticket_id: RowId, body: MoveBody, request: Request, agent: ApiAgent) -> TicketOut:
    await actions.move_to_queue(_db(request), ticket_id, body.queue, agent_id=agent.id)
    return await _ticket(request, ticket_id)


@router.post(
    "/messages/{message_id}/intent",
    response_model=MessageOut,
    summary="Correct the NLU: what a customer message really meant",
)
async def correct_intent(
    message_id: RowId, body: IntentBody, request: Request, agent: ApiAgent
) -> MessageOut:
    state = request.app.state.desk
    if state.taxonomy is not None and state.taxonomy.intents and body.intent not in state.taxonomy.intents:
        raise unprocessable(
            ("body", "intent"),
            f"unknown intent {body.intent!r}; use one of {', '.join(sorted(state.taxonomy.intents))}",
        )
    await correct_message_intent(state.db, message_id, body.intent, agent.id)
    return message_out(await queries.message_view(state.db, message_id))


async def correct_message_intent(db: Any, message_id: int, intent: str, agent_id: int) -> None:
    """The store refuses non-customer messages with NotAllowed; for a message that is a conflict (409)."""
    try:
        await actions.correct_intent(db, message_id, intent, agent_id=agent_id)
    except NotAllowed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.get(
    "/stats", response_model=StatsOut,
    summary="Open tickets per queue, response times, containment, SLA breaches, CSAT; with from/to, every day",
)
async def get_stats(
    request: Request,
    agent: ApiAgent,
    period: Annotated[figures.PeriodQuery, Depends(figures.period_query)],
    days: Annotated[int, Query(ge=1, le=3650, description="window for the times and containment")] = 30,
) -> StatsOut:
    s = await queries.stats(_db(request), days=days)
    per_day = None
    if period.period is not None:
        per_day = [day_out(d) for d in await figures.daily(_db(request), period.period, queue=period.queue)]
    return StatsOut(
        csat_average=s.csat_average,
        csat_count=s.csat_count,
        csat_asked=s.csat_asked,
        csat_response_rate=s.csat_response_rate,
        days=per_day,
        open_by_queue=s.open_by_queue,
        median_first_response_s=s.median_first_response_s,
        median_resolution_s=s.median_resolution_s,
        containment=s.containment,
        conversations=s.conversations,
        escalated_conversations=s.escalated_conversations,
        since=s.since,
        sla_breaches=s.sla_breaches,
    )


def day_out(day: figures.Day) -> DayOut:
    return DayOut(
        date=day.day, **day.figures.as_dict(),
        by_queue={q: DayFiguresOut(**f.as_dict()) for q, f in day.by_queue.items()},
    )


async def _ticket(request: Request, ticket_id: int) -> TicketOut:
    return ticket_out((await queries.ticket_detail(_db(request), ticket_id, sla=_sla(request))).ticket)
