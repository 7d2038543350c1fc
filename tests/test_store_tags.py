"""Ticket tags in the store: add, remove, the limit, the audit trail, erasure, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from frontdesk.core.vocabulary import MAX_TAGS_PER_TICKET
from storage import actions
from storage.actions.privacy import erase_contacts
from storage.actions.tags import (
    InvalidTag,
    TooManyTags,
    add_tag,
    add_tags_in,
    normalise_tag,
    remove_tag,
    tags_of_in,
)
from storage.agents import create_agent, set_active
from storage.db import Database
from storage.errors import NotAllowed, NotFound
from storage.models import Ticket, TicketEvent, TicketTag
from tests.store_helpers import dm


async def _agent(db: Database, name: str = "Ada"):  # type: ignore[no-untyped-def]
    return await create_agent(db, email=f"{name.lower()}@brand.example", name=name, password="correct horse")


async def _ticket(db: Database, sender: str = "111") -> Ticket:
    rec = await actions.record_inbound(db, dm("where is my order QX-1", sender=sender))
    return await actions.escalate(db, rec.conversation_id, queue="support", category="support")


async def _tags(db: Database, ticket_id: int) -> tuple[str, ...]:
    async with db.session() as s:
        return (await tags_of_in(s, [ticket_id])).get(ticket_id, ())


async def _events(db: Database, ticket_id: int, *actions_: str) -> list[tuple[str, str, dict]]:
    async with db.session() as s:
        rows = await s.execute(
            select(TicketEvent.action, TicketEvent.actor, TicketEvent.detail)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.action.in_(actions_))  # type: ignore[attr-defined]
            .order_by(TicketEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.parametrize(("raw", "stored"), [("VIP", "vip"), ("  late-delivery ", "late-delivery"), ("q4_2026", "q4_2026")])
def test_tags_are_stored_lower_case_and_trimmed(raw: str, stored: str) -> None:
    assert normalise_tag(raw) == stored


@pytest.mark.parametrize("raw", ["", " ", "two words", "vip!", "#vip", "x" * 33, "café", "a/b"])
def test_a_tag_outside_the_allowed_form_is_refused_with_the_rule(raw: str) -> None:
    with pytest.raises(InvalidTag, match="1-32 letters"):
        normalise_tag(raw)


async def test_adding_a_tag_records_who_and_adding_it_again_records_nothing(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    assert await add_tag(db, ticket.id, "VIP", agent_id=agent.id) is True
    assert await add_tag(db, ticket.id, "vip", agent_id=agent.id) is False
    assert await _tags(db, ticket.id) == ("vip",)
    assert await _events(db, ticket.id, "tagged") == [("tagged", f"agent:{agent.id}", {"tag": "vip"})]
    async with db.session() as s:
        row = (await s.execute(select(TicketTag))).scalar_one()
    assert row.created_by == f"agent:{agent.id}"


async def test_removing_a_tag_is_audited_once_and_removing_a_missing_one_is_no_error(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    await add_tag(db, ticket.id, "vip", agent_id=agent.id)
    await add_tag(db, ticket.id, "order", agent_id=agent.id)
    assert await remove_tag(db, ticket.id, "VIP", agent_id=agent.id) is True
    assert await remove_tag(db, ticket.id, "vip", agent_id=agent.id) is False
    assert await _tags(db, ticket.id) == ("order",)
    assert [e[0] for e in await _events(db, ticket.id, "tagged", "untagged")] == ["tagged", "tagged", "untagged"]


async def test_a_ticket_holds_at_most_the_limit_and_the_refusal_names_it(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    for n in range(MAX_TAGS_PER_TICKET):
        await add_tag(db, ticket.id, f"t{n:02d}", agent_id=agent.id)
    with pytest.raises(TooManyTags, match=f"{MAX_TAGS_PER_TICKET} tags"):
        await add_tag(db, ticket.id, "one-more", agent_id=agent.id)
    assert await add_tag(db, ticket.id, "t00", agent_id=agent.id) is False  # one it has: still no error
    assert len(await _tags(db, ticket.id)) == MAX_TAGS_PER_TICKET


async def test_concurrent_taggers_never_pass_the_limit_nor_write_a_tag_twice(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    for n in range(MAX_TAGS_PER_TICKET - 2):
        await add_tag(db, ticket.id, f"t{n:02d}", agent_id=agent.id)
    outcomes = await asyncio.gather(
        *(add_tag(db, ticket.id, tag, agent_id=agent.id) for tag in ["a", "b", "c", "d", "a", "b"]),
        return_exceptions=True,
    )
    assert len(await _tags(db, ticket.id)) == MAX_TAGS_PER_TICKET
    assert sum(o is True for o in outcomes) == 2
    assert all(o is True or o is False or isinstance(o, TooManyTags) for o in outcomes)
    assert len(await _events(db, ticket.id, "tagged")) == MAX_TAGS_PER_TICKET


async def test_tags_on_an_unknown_ticket_or_by_a_disabled_agent_are_refused(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    with pytest.raises(NotFound, match="Ticket"):
        await add_tag(db, 999_999, "vip", agent_id=agent.id)
    with pytest.raises(NotFound, match="Ticket"):
        await remove_tag(db, 999_999, "vip", agent_id=agent.id)
    await set_active(db, agent.email, False)
    with pytest.raises(NotAllowed, match="disabled"):
        await add_tag(db, ticket.id, "vip", agent_id=agent.id)
    assert await _tags(db, ticket.id) == ()


async def test_the_bot_tags_inside_its_own_transaction_and_stops_quietly_at_the_limit(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    for n in range(MAX_TAGS_PER_TICKET - 1):
        await add_tag(db, ticket.id, f"t{n:02d}", agent_id=agent.id)
    async with db.transaction() as s:
        locked = await s.get(Ticket, ticket.id)
        assert await add_tags_in(s, locked, ["vip", "order", "t00"]) == ["vip"]
    tags = await _tags(db, ticket.id)
    assert "vip" in tags and "order" not in tags and len(tags) == MAX_TAGS_PER_TICKET
    assert (await _events(db, ticket.id, "tagged"))[-1] == ("tagged", "bot", {"tag": "vip"})


async def test_erasing_the_customer_keeps_the_tags_and_their_audit_events(db: Database) -> None:
    agent = await _agent(db)
    ticket = await _ticket(db)
    await add_tag(db, ticket.id, "vip", agent_id=agent.id)
    await erase_contacts(db, [ticket.contact_id])
    assert await _tags(db, ticket.id) == ("vip",)
    assert await _events(db, ticket.id, "tagged") == [("tagged", f"agent:{agent.id}", {"tag": "vip"})]
