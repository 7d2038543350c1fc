"""Saved replies in the desk: what each placeholder means for one ticket, and the replies filled in for it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bot.content import ContentError, Event, load_events
from desk.queries import TicketDetail
from storage.db import Database
from storage.saved_replies import fill, list_saved_replies, ticket_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilledReply:
    id: int
    name: str
    queue: str  # "" = shared
    text: str  # placeholders filled in for this ticket
    unfilled: list[str]  # placeholders with no value for this ticket, left as typed


def load_event_catalogue(path: Path) -> dict[str, Event]:
    """The events by key, for the {event_*} placeholders; none (and a warning) when the file is unusable."""
    try:
        return {event.key: event for event in load_events(path)}
    except (ContentError, OSError) as exc:
        log.warning("desk: no events for saved replies' {event_*} placeholders (%s)", exc)
        return {}


def placeholder_values(detail: TicketDetail, agent_name: str, events: dict[str, Event]) -> dict[str, str]:
    ticket = detail.ticket
    values = ticket_values(
        display_name=ticket.customer.display_name, handle=ticket.customer.handle, agent_name=agent_name,
        ticket_id=ticket.id, queue=ticket.queue,
    )
    registered = [r for r in detail.registrations if r.get("status") == "registered" and r.get("event") in events]
    if registered:
        event = events[max(registered, key=lambda r: r["since"])["event"]]
        values |= {
            "event_name": event.name,
            "event_date": event.starts_at.strftime("%-d %B %Y, %H:%M ") + (event.starts_at.tzname() or event.timezone),
            "event_link": event.stream_url or event.registration_url,
            "event_place": event.place,
        }
    return values


async def replies_for_ticket(
    db: Database, detail: TicketDetail, agent_name: str, events: dict[str, Event]
) -> list[FilledReply]:
    """The saved replies an agent may use on this ticket (shared and its queue's), filled in, by name."""
    values = placeholder_values(detail, agent_name, events)
    filled = []
    for reply in await list_saved_replies(db, queue=detail.ticket.queue):
        assert reply.id is not None
        text, unfilled = fill(reply.text, values)
        filled.append(FilledReply(reply.id, reply.name, reply.queue, text, unfilled))
    # A queue's own reply wins over a shared one of the same name.
    by_name: dict[str, FilledReply] = {}
    for reply in filled:
        if reply.name not in by_name or reply.queue:
            by_name[reply.name] = reply
    return sorted(by_name.values(), key=lambda r: r.name)
