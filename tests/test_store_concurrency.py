"""Races that real traffic produces, each on many separate database connections at once."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import func, select

from storage import actions
from storage.agents import create_agent
from storage.db import Database
from storage.errors import AlreadyClaimed
from storage.models import Message, Ticket
from tests.store_helpers import dm

_pwd = "correct horse battery"


def _wide(db: Database) -> Database:
    """A second engine on the same store with a pool wide enough that every task has its own connection."""
    if db.dialect == "postgresql":
        return Database(db.url, pool_size=60, max_overflow=0)
    return Database(db.url)


async def test_fifty_agents_claim_one_ticket_and_exactly_one_wins(db: Database, fast_password_hashing: None) -> None:
    agents = [
        await create_agent(db, email=f"agent{i}@brand.example", name=f"Agent {i}", password=_pwd) for i in range(50)
    ]
    rec = await actions.record_inbound(db, dm())
    ticket = await actions.escalate(db, rec.conversation_id, queue="support")
    wide = _wide(db)
    try:
        results = await asyncio.gather(
            *(actions.claim(wide, ticket.id, a.id) for a in agents), return_exceptions=True
        )
    finally:
        await wide.dispose()
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(e, AlreadyClaimed) for e in losers), {type(e).__name__ for e in losers}
    winner_name = next(a.name for a in agents if a.id == winners[0].assignee_id)
    assert all(f"already claimed by {winner_name}" == str(e) for e in losers)


async def test_twenty_concurrent_copies_of_one_message_store_one_row(db: Database) -> None:
    wide = _wide(db)
    try:
        results = await asyncio.gather(*(actions.record_inbound(wide, dm("hi", msg_id="dm-same")) for _ in range(20)))
    finally:
        await wide.dispose()
    assert sum(r.is_new for r in results) == 1
    assert len({r.message_id for r in results}) == 1
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Message))).scalar_one() == 1


async def test_twenty_concurrent_escalations_open_one_ticket(db: Database) -> None:
    rec = await actions.record_inbound(db, dm())
    wide = _wide(db)
    try:
        tickets = await asyncio.gather(
            *(actions.escalate(wide, rec.conversation_id, queue="support", reason=f"try {i}") for i in range(20))
        )
    finally:
        await wide.dispose()
    assert len({t.id for t in tickets}) == 1
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Ticket))).scalar_one() == 1


@pytest.mark.parametrize("senders", [5])
async def test_first_messages_from_the_same_new_customer_race_to_one_contact(db: Database, senders: int) -> None:
    ids = itertools.count()
    wide = _wide(db)
    try:
        results = await asyncio.gather(
            *(actions.record_inbound(wide, dm(f"msg {next(ids)}", sender="777")) for _ in range(senders))
        )
    finally:
        await wide.dispose()
    assert len({r.contact_id for r in results}) == 1
    assert len({r.conversation_id for r in results}) == 1
