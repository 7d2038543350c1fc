"""Ticket tags: add and remove, one transaction each, with the audit event (`tagged` / `untagged`).

Both are idempotent: adding a tag the ticket has, or removing one it lacks, changes nothing and records
nothing.  Any agent may tag any ticket, open or closed (tags also sort closed work).  The ticket row is
locked first, so two agents tagging one ticket at once cannot pass the per-ticket limit together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.core.vocabulary import MAX_TAGS_PER_TICKET, TAG_MAX_CHARS, TAG_PATTERN
from storage.actions._common import agent_actor, audit, get_agent, get_for_update, insert_ignoring_conflict
from storage.db import Database
from storage.errors import NotAllowed, StoreError
from storage.models import Ticket, TicketTag, utcnow

_TAG = re.compile(TAG_PATTERN)


class InvalidTag(StoreError, ValueError):
    """A tag name outside the allowed form."""


class TooManyTags(StoreError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(
            f"ticket {ticket_id} already has {MAX_TAGS_PER_TICKET} tags, the most a ticket may have: "
            "remove one before adding another"
        )


def normalise_tag(raw: str) -> str:
    """The stored form of a tag: trimmed and lower-case; InvalidTag for anything else than 1-32 of a-z 0-9 - _."""
    tag = raw.strip().lower()
    if not _TAG.match(tag):
        raise InvalidTag(
            f"a tag is 1-{TAG_MAX_CHARS} letters (a-z), digits, '-' or '_', without spaces, e.g. vip or late-delivery"
        )
    return tag


async def add_tag(db: Database, ticket_id: int, tag: str, *, agent_id: int) -> bool:
    """An agent tags a ticket; True if the tag is new on it (False: it was there, nothing recorded)."""
    tag = normalise_tag(tag)
    async with db.transaction() as session:
        ticket = await get_for_update(session, Ticket, ticket_id)
        await _active_agent(session, agent_id)
        added = await _add_in(session, ticket, [tag], actor=agent_actor(agent_id), agent_id=agent_id, strict=True)
        return bool(added)


async def remove_tag(db: Database, ticket_id: int, tag: str, *, agent_id: int) -> bool:
    """An agent takes a tag off; True if the ticket had it (False: nothing to do, nothing recorded)."""
    tag = normalise_tag(tag)
    async with db.transaction() as session:
        ticket = await get_for_update(session, Ticket, ticket_id)
        await _active_agent(session, agent_id)
        removed = await session.execute(
            delete(TicketTag).where(TicketTag.ticket_id == ticket_id, TicketTag.tag == tag).returning(TicketTag.id)
        )
        if removed.first() is None:
            return False
        ticket.updated_at = utcnow()  # the desks' live feed announces the change
        audit(session, ticket, "untagged", actor=agent_actor(agent_id), agent_id=agent_id, detail={"tag": tag})
        return True


async def add_tags_in(session: AsyncSession, ticket: Ticket, tags: Iterable[str], *, actor: str = "bot") -> list[str]:
    """The bot's rules tag a ticket inside the escalation's transaction; returns the tags that were new.

    Never refuses: the rules' tags were checked when the content loaded, and a ticket already at the
    limit keeps the tags agents gave it (the rule's extra tags are left off) rather than lose the message.
    """
    wanted = [normalise_tag(t) for t in tags]
    return await _add_in(session, ticket, wanted, actor=actor, agent_id=None, strict=False) if wanted else []


async def tag_open_ticket_in(
    session: AsyncSession, conversation_id: int, tags: Iterable[str], *, actor: str = "bot"
) -> list[str]:
    """`add_tags_in` on the conversation's open ticket (none: nothing to tag); returns the tags that were new."""
    ticket = (
        await session.execute(select(Ticket).where(Ticket.open_conversation_id == conversation_id).with_for_update())
    ).scalar_one_or_none()
    return [] if ticket is None else await add_tags_in(session, ticket, tags, actor=actor)


async def tags_of_in(session: AsyncSession, ticket_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Each ticket's tags, alphabetically (tickets without tags are absent)."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(TicketTag.ticket_id, TicketTag.tag)
        .where(TicketTag.ticket_id.in_(ids))  # type: ignore[attr-defined]
        .order_by(TicketTag.ticket_id, TicketTag.tag)
    )
    found: dict[int, list[str]] = {}
    for ticket_id, tag in rows:
        found.setdefault(ticket_id, []).append(tag)
    return {ticket_id: tuple(tags) for ticket_id, tags in found.items()}


async def _add_in(
    session: AsyncSession, ticket: Ticket, tags: list[str], *, actor: str, agent_id: int | None, strict: bool
) -> list[str]:
    assert ticket.id is not None
    have = set((await tags_of_in(session, [ticket.id])).get(ticket.id, ()))
    added: list[str] = []
    now = utcnow()
    for tag in dict.fromkeys(tags):  # each once, in the order given
        if tag in have:
            continue
        if len(have) >= MAX_TAGS_PER_TICKET:
            if strict:
                raise TooManyTags(ticket.id)
            break
        new_id = await insert_ignoring_conflict(
            session, TicketTag, {"ticket_id": ticket.id, "tag": tag, "created_by": actor, "created_at": now},
            ["ticket_id", "tag"],
        )
        have.add(tag)
        if new_id is None:  # written meanwhile by a transaction that did not lock the ticket
            continue
        audit(session, ticket, "tagged", actor=actor, agent_id=agent_id, detail={"tag": tag})
        added.append(tag)
    if added:
        ticket.updated_at = now
    return added


async def _active_agent(session: AsyncSession, agent_id: int) -> None:
    agent = await get_agent(session, agent_id)
    if not agent.active:
        raise NotAllowed(f"agent {agent.email} is disabled")


__all__ = [
    "InvalidTag", "TooManyTags", "add_tag", "add_tags_in", "normalise_tag", "remove_tag", "tag_open_ticket_in",
    "tags_of_in",
]
