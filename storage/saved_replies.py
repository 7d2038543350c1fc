"""Saved replies: the store's side (list, create, change, delete).  Admins manage them; agents use them.

A saved reply is shared (queue "") or belongs to one queue; its name is unique within that scope, so
`/refund` in the support queue can differ from the shared `/refund`.

Placeholders (`{customer_name}` ...) are checked when a reply is saved, so a typo is refused then rather
than sent to a customer later; `fill` puts in what the desk or the pager knows about the ticket and leaves
a placeholder it has no value for as typed, for the agent to see and complete before sending.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.errors import NotFound, StoreError
from storage.models import Contact, Queue, SavedReply, Ticket, utcnow
from storage.text import validate_text

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
MAX_TEXT_CHARS = 4_000


PLACEHOLDERS: dict[str, str] = {
    "customer_name": "the customer's display name (their handle when they have none)",
    "customer_handle": "the customer's handle, with @",
    "agent_name": "your name",
    "ticket_id": "the ticket's number",
    "queue": "the ticket's queue",
    "event_name": "the event the customer registered for (their newest registration)",
    "event_date": "its date and time, in the event's time zone",
    "event_link": "its stream link (or registration page)",
    "event_place": "where it takes place",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_placeholders(text: str) -> str:
    unknown = sorted({name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join('{' + n + '}' for n in unknown)}; "
            f"use {', '.join('{' + n + '}' for n in PLACEHOLDERS)}"
        )
    return text


def ticket_values(*, display_name: str, handle: str, agent_name: str, ticket_id: int | None, queue: str) -> dict[str, str]:
    """The placeholders every ticket can fill (the {event_*} ones need the events catalogue)."""
    return {
        "customer_name": display_name or handle,
        "customer_handle": f"@{handle}",
        "agent_name": agent_name,
        "ticket_id": str(ticket_id),
        "queue": queue,
    }


def fill(text: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """The text with the placeholders `values` has filled in, and the names of those left as typed."""
    unfilled: list[str] = []

    def _value(match: re.Match[str]) -> str:
        name = match.group(1)
        if values.get(name):
            return values[name]
        if name not in unfilled:
            unfilled.append(name)
        return match.group(0)

    return _PLACEHOLDER.sub(_value, text), unfilled


class DuplicateName(StoreError):
    def __init__(self, name: str, queue: str) -> None:
        scope = f"the {queue} queue" if queue else "the shared replies"
        super().__init__(f"{scope} already have a saved reply named {name!r}: pick another name or edit that one")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError("a name is 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit")
    return name


def check_queue(queue: str) -> str:
    if queue and queue not in {q.value for q in Queue}:
        raise ValueError(f"unknown queue {queue!r}; use one of {', '.join(q.value for q in Queue)}, or none for shared")
    return queue


async def list_saved_replies(db: Database, *, queue: str | None = None) -> list[SavedReply]:
    """All saved replies (queue None), or those an agent working `queue` may use: shared and that queue's."""
    stmt = select(SavedReply).order_by(SavedReply.name, SavedReply.queue)
    if queue is not None:
        stmt = stmt.where(or_(SavedReply.queue == "", SavedReply.queue == queue))
    async with db.session() as session:
        return list((await session.execute(stmt)).scalars())


async def get_saved_reply(db: Database, reply_id: int) -> SavedReply:
    async with db.session() as session:
        reply = await session.get(SavedReply, reply_id)
    if reply is None:
        raise NotFound("Saved reply", reply_id)
    return reply


async def reply_for_ticket(db: Database, ticket_id: int, name: str, *, agent_name: str) -> tuple[str, list[str]]:
    """The saved reply `name` for this ticket (its queue's own, else the shared one), filled in with what
    the ticket says; the {event_*} placeholders stay unfilled (the desk fills those from the catalogue)."""
    async with db.session() as session:
        found = (
            await session.execute(
                select(Ticket, Contact).join(Contact, Contact.id == Ticket.contact_id).where(Ticket.id == ticket_id)
            )
        ).first()
        if found is None:
            raise NotFound("Ticket", ticket_id)
        ticket, contact = found
        candidates = (
            await session.execute(
                select(SavedReply).where(
                    SavedReply.name == name, or_(SavedReply.queue == "", SavedReply.queue == ticket.queue.value)
                )
            )
        ).scalars().all()
    if not candidates:
        raise NotFound("Saved reply", name)
    reply = max(candidates, key=lambda r: bool(r.queue))
    handle = contact.handle or contact.platform_user_id
    values = ticket_values(
        display_name=contact.display_name, handle=handle, agent_name=agent_name, ticket_id=ticket.id,
        queue=ticket.queue.value,
    )
    return fill(reply.text, values)


async def create_saved_reply(db: Database, *, name: str, text: str, queue: str = "", agent_id: int | None) -> SavedReply:
    reply = SavedReply(
        name=check_name(name), queue=check_queue(queue), text=_check_text(text), created_by=agent_id
    )
    try:
        async with db.transaction() as session:
            session.add(reply)
            await session.flush()
    except IntegrityError:
        raise DuplicateName(name, queue) from None
    return reply


async def update_saved_reply(
    db: Database, reply_id: int, *, name: str | None = None, text: str | None = None, queue: str | None = None
) -> SavedReply:
    scope = (name or "", queue or "")  # for the message, should the new name be taken
    try:
        async with db.transaction() as session:
            reply = await session.get(SavedReply, reply_id, with_for_update=True)
            if reply is None:
                raise NotFound("Saved reply", reply_id)
            scope = (name or reply.name, reply.queue if queue is None else queue)
            if name is not None:
                reply.name = check_name(name)
            if queue is not None:
                reply.queue = check_queue(queue)
            if text is not None:
                reply.text = _check_text(text)
            reply.updated_at = utcnow()
            await session.flush()
    except IntegrityError:
        raise DuplicateName(*scope) from None
    return reply


async def delete_saved_reply(db: Database, reply_id: int) -> None:
    async with db.transaction() as session:
        reply = await session.get(SavedReply, reply_id, with_for_update=True)
        if reply is None:
            raise NotFound("Saved reply", reply_id)
        await session.delete(reply)


def _check_text(text: str) -> str:
    text = validate_text(text, allow_empty=False)
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"a saved reply is at most {MAX_TEXT_CHARS} characters")
    return check_placeholders(text)
