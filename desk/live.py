"""Live updates: a server-sent-event stream of what changed in the store.

One poller per process looks at the store once a second (only while somebody listens) and fans the
changes out to every open stream.  Polling the database, rather than an in-process signal, sees writes
from every replica and from the bot's workers, on SQLite and PostgreSQL alike.

Events (each `data:` is JSON):
    tickets   {"ids": [...]}                          tickets created or changed (status, holder, ...)
    messages  {"ids": [...], "ticket_ids": [...]}     messages added, delivered, or given an intent
    sla       {"alerts": [{"ticket_id", "metric", "state", "subject"}]}
                                                      SLA warnings and breaches the sweeper recorded
                                                      (bot/sla_sweeper.py); the page shows a banner
    assigned  {"ticket_id", "agent_id", "queue"}       a ticket was assigned automatically (only to its agent)

An open stream is also the agent's presence in the desk (storage/assignment.py `seen`): automatic
assignment counts them online while it lasts, and a little after.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from desk.auth import CurrentAgent, any_agent
from frontdesk.core.sla import EVENT_ACTIONS
from storage.assignment import seen
from storage.db import Database
from storage.models import Message, Ticket, TicketEvent, utcnow

log = logging.getLogger(__name__)

# Rows are re-read over a window rather than "since the last id": on PostgreSQL a transaction that
# started earlier can commit a lower id later, and replicas' clocks differ by a little.
MESSAGE_ID_WINDOW = 200
SLA_EVENT_ID_WINDOW = 200
_SLA_STATES = {action: state.value for state, action in EVENT_ACTIONS.items()}
TICKET_TIME_WINDOW = timedelta(seconds=30)
HEARTBEAT_S = 15.0
STREAM_MAX_S = 120.0  # streams end now and then (EventSource reconnects and the page refreshes itself)
CLIENT_RETRY_MS = 1000


class LiveFeed:
    """Watches the store and hands each subscriber the changes, as (event, data) pairs."""

    def __init__(self, db: Database, *, poll_s: float = 1.0) -> None:
        self._db = db
        self._poll_s = poll_s
        self._subscribers: set[asyncio.Queue[tuple[str, dict[str, Any]] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._ticket_marks: dict[int, tuple[Any, ...]] = {}
        self._message_marks: dict[int, tuple[Any, ...]] = {}
        self._assigned_seen: set[int] = set()
        self._max_message_id = 0
        self._sla_events_seen: set[int] = set()
        self._max_sla_event_id = 0
        self._primed = False
        self._ready = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self) -> asyncio.Queue[tuple[str, dict[str, Any]] | None]:
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(maxsize=100)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="desk-live-feed")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, dict[str, Any]] | None]) -> None:
        self._subscribers.discard(queue)

    async def close(self) -> None:
        """End every stream (at shutdown, so servers need not wait for them)."""
        self._closed = True
        for queue in list(self._subscribers):
            _offer(queue, None)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        while self._subscribers and not self._closed:
            try:
                for event in await self.poll():
                    for queue in list(self._subscribers):
                        _offer(queue, event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("desk live feed: polling the store failed; retrying")
            if self._primed:
                self._ready.set()
            await asyncio.sleep(self._poll_s)
        self._primed = False  # nobody listened for a while: start from a fresh picture next time
        self._ready = asyncio.Event()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the feed has its first picture: from then on, every change reaches the subscribers."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            pass

    async def poll(self) -> list[tuple[str, dict[str, Any]]]:
        """Compare the recent rows with the last look; the first look only takes the picture."""
        cutoff = utcnow() - TICKET_TIME_WINDOW
        async with self._db.session() as session:
            if not self._primed:
                self._max_message_id = (await session.execute(select(func.max(Message.id)))).scalar_one() or 0
                self._max_sla_event_id = (
                    await session.execute(
                        select(func.max(TicketEvent.id)).where(TicketEvent.action.in_(tuple(_SLA_STATES)))  # type: ignore[attr-defined]
                    )
                ).scalar_one() or 0
            tickets = (
                await session.execute(
                    select(Ticket.id, Ticket.status, Ticket.assignee_id, Ticket.priority, Ticket.updated_at).where(
                        Ticket.updated_at >= cutoff
                    )
                )
            ).all()
            messages = (
                await session.execute(
                    select(
                        Message.id, Message.ticket_id, Message.delivered_at, Message.intent, Message.corrected_intent
                    ).where(Message.id > self._max_message_id - MESSAGE_ID_WINDOW)
                )
            ).all()
            sla_events = (
                await session.execute(
                    select(TicketEvent.id, TicketEvent.ticket_id, TicketEvent.action, TicketEvent.detail, Ticket.subject)
                    .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                    .where(
                        TicketEvent.action.in_(tuple(_SLA_STATES)),  # type: ignore[attr-defined]
                        TicketEvent.id > self._max_sla_event_id - SLA_EVENT_ID_WINDOW,
                    )
                    .order_by(TicketEvent.id)
                )
            ).all()
            assigned = (
                await session.execute(
                    select(TicketEvent.id, TicketEvent.ticket_id, TicketEvent.agent_id, TicketEvent.detail).where(
                        TicketEvent.action == "assigned", TicketEvent.created_at >= cutoff
                    )
                )
            ).all()
        ticket_marks = {row[0]: tuple(row[1:]) for row in tickets}
        message_marks = {row[0]: tuple(row[1:]) for row in messages}
        changed_tickets = sorted(t for t, mark in ticket_marks.items() if self._ticket_marks.get(t) != mark)
        changed_messages = sorted(m for m, mark in message_marks.items() if self._message_marks.get(m) != mark)
        self._ticket_marks = ticket_marks
        self._message_marks = message_marks
        if message_marks:
            self._max_message_id = max(self._max_message_id, max(message_marks))
        new_sla = [row for row in sla_events if row[0] not in self._sla_events_seen]
        self._sla_events_seen = {row[0] for row in sla_events}
        if sla_events:
            self._max_sla_event_id = max(self._max_sla_event_id, sla_events[-1][0])
        new_assignments = [row for row in assigned if row[0] not in self._assigned_seen]
        self._assigned_seen = {row[0] for row in assigned}
        if not self._primed:
            self._primed = True
            return []
        events: list[tuple[str, dict[str, Any]]] = [
            ("assigned", {"ticket_id": ticket_id, "agent_id": agent_id, "queue": (detail or {}).get("queue", "")})
            for _, ticket_id, agent_id, detail in sorted(new_assignments)
        ]
        if changed_tickets:
            events.append(("tickets", {"ids": changed_tickets}))
        if changed_messages:
            ticket_ids = sorted({message_marks[m][0] for m in changed_messages if message_marks[m][0] is not None})
            events.append(("messages", {"ids": changed_messages, "ticket_ids": ticket_ids}))
        if new_sla:
            alerts = [
                {"ticket_id": ticket_id, "metric": (detail or {}).get("metric", ""), "state": _SLA_STATES[action],
                 "subject": subject}
                for _, ticket_id, action, detail, subject in new_sla
            ]
            events.append(("sla", {"alerts": alerts}))
            # The rows' colours and the ticket's clock changed too: the pages refresh them.
            events.append(("tickets", {"ids": sorted({a["ticket_id"] for a in alerts})}))
        return events


async def _here(db: Database, agent: CurrentAgent) -> None:
    """The agent is in the desk now; a failed write only delays their presence (the stream goes on)."""
    try:
        await seen(db, agent.id)
    except Exception:  # noqa: BLE001
        log.warning("desk live feed: could not record that agent %s is online", agent.id, exc_info=True)


def _offer(queue: asyncio.Queue[tuple[str, dict[str, Any]] | None], item: tuple[str, dict[str, Any]] | None) -> None:
    """A slow client loses old events rather than holding the feed up (it refreshes on the next one)."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        try:
            queue.get_nowait()
            queue.put_nowait(item)
        except (asyncio.QueueEmpty, asyncio.QueueFull):
            pass


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


router = APIRouter(tags=["live"])


@router.get(
    "/live",
    summary="Server-sent events: tickets and messages as they change",
    response_class=StreamingResponse,
)
async def live_events(request: Request, agent: Annotated[CurrentAgent, Depends(any_agent)]) -> StreamingResponse:
    feed: LiveFeed = request.app.state.desk.live
    db: Database = request.app.state.desk.db

    async def stream() -> AsyncIterator[str]:
        queue = feed.subscribe()
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + STREAM_MAX_S
        try:
            yield f"retry: {CLIENT_RETRY_MS}\n: hello {agent.name}\n\n"
            await _here(db, agent)
            await feed.wait_ready()
            yield _sse("ready", {})
            while not feed.closed and loop.time() < ends_at:
                await _here(db, agent)  # at most one write per agent per 30 s (storage/assignment.py)
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": ping\n\n"
                    continue
                if item is None:
                    return
                if item[0] == "assigned" and item[1]["agent_id"] != agent.id:
                    continue  # the notice is for the agent who got the ticket
                yield _sse(*item)
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
