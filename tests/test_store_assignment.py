"""Automatic assignment in the store, on SQLite and PostgreSQL: round robin, capacity, online, away, races."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storage import actions
from storage.agents import create_agent, set_active
from storage.assignment import forget_seen_memo, presence_of, queue_settings, seen
from storage.db import Database
from storage.errors import AlreadyClaimed, NotAllowed
from storage.models import (
    AgentPresence,
    AgentRole,
    Conversation,
    ConversationStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
    utcnow,
)
from tests.store_helpers import dm

WINDOW_S = 120.0
_pwd = "correct horse battery"


@pytest.fixture(autouse=True)
def _fresh_seen_memo() -> None:
    forget_seen_memo()


async def _agent(db: Database, name: str, *, admin: bool = False, online: bool = True):  # type: ignore[no-untyped-def]
    agent = await create_agent(
        db, email=f"{name.lower()}@brand.example", name=name, password=_pwd,
        role=AgentRole.admin if admin else AgentRole.agent,
    )
    if online:
        await seen(db, agent.id)
    return agent


async def _ticket(db: Database, queue: str = "support", sender: str | None = None) -> Ticket:
    rec = await actions.record_inbound(db, dm(sender=sender or str(random.randrange(10**9))))
    return await actions.escalate(db, rec.conversation_id, queue=queue)


async def _auto(db: Database, queue: str = "support", capacity: int = 2) -> None:
    admin = await _agent(db, f"Admin{queue}", admin=True, online=False)
    await actions.set_queue_assignment(db, queue, auto_assign=True, capacity=capacity, by_agent_id=admin.id)


async def _assign(db: Database, ticket: Ticket) -> actions.Assignment | None:
    return await actions.assign_ticket(db, ticket.id, online_window_s=WINDOW_S)  # type: ignore[arg-type]


async def test_a_queue_by_hand_is_never_assigned(db: Database, fast_password_hashing: None) -> None:
    await _agent(db, "Ada")
    ticket = await _ticket(db)
    assert await _assign(db, ticket) is None
    assert [(s.queue, s.auto_assign) for s in await queue_settings(db)] == [
        ("support", False), ("sales", False), ("events", False), ("general", False)
    ]


async def test_round_robin_gives_the_least_recently_assigned_agent_the_next_ticket(
    db: Database, fast_password_hashing: None
) -> None:
    await _auto(db, capacity=5)
    ada, bob = await _agent(db, "Ada"), await _agent(db, "Bob")
    got = [await _assign(db, await _ticket(db)) for _ in range(4)]
    assert [a.agent_name for a in got if a] == ["Ada", "Bob", "Ada", "Bob"]

    ticket = await _ticket(db)
    assigned = await _assign(db, ticket)
    assert assigned is not None and assigned.agent_id == ada.id
    async with db.session() as session:
        row = await session.get(Ticket, ticket.id)
        assert row.status == TicketStatus.assigned and row.assignee_id == ada.id  # type: ignore[union-attr]
        conversation = await session.get(Conversation, row.conversation_id)  # type: ignore[union-attr]
        assert conversation.status == ConversationStatus.agent  # type: ignore[union-attr]
        [event] = (await session.execute(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "assigned")
        )).scalars().all()
    assert event.actor == "system" and event.agent_id == ada.id
    assert event.detail["agent_name"] == "Ada" and event.detail["capacity"] == 5
    assert bob.id != ada.id


async def test_capacity_counts_every_open_ticket_an_agent_holds(db: Database, fast_password_hashing: None) -> None:
    await _auto(db, capacity=2)
    ada = await _agent(db, "Ada")
    claimed = await _ticket(db, queue="sales")  # a ticket of another queue, claimed by hand, counts too
    await actions.claim(db, claimed.id, ada.id)  # type: ignore[arg-type]
    first = await _ticket(db)
    assert (await _assign(db, first)).agent_id == ada.id  # type: ignore[union-attr]
    full = await _ticket(db)
    assert await _assign(db, full) is None  # two open: full
    await actions.resolve(db, first.id, ada.id)  # type: ignore[arg-type]
    assert (await _assign(db, full)).agent_id == ada.id  # type: ignore[union-attr]


async def test_away_offline_and_disabled_agents_get_nothing_and_keep_what_they_hold(
    db: Database, fast_password_hashing: None
) -> None:
    await _auto(db, capacity=5)
    ada = await _agent(db, "Ada")
    held = await _ticket(db)
    assert (await _assign(db, held)).agent_id == ada.id  # type: ignore[union-attr]
    await actions.set_away(db, ada.id, True)  # type: ignore[arg-type]
    assert (await presence_of(db, ada.id, window_s=WINDOW_S)).away  # type: ignore[arg-type]
    waiting = await _ticket(db)
    assert await _assign(db, waiting) is None
    async with db.session() as session:
        assert (await session.get(Ticket, held.id)).assignee_id == ada.id  # type: ignore[union-attr]

    await _agent(db, "Cy", online=False)  # never seen: offline
    assert await _assign(db, waiting) is None
    dee = await _agent(db, "Dee")
    await set_active(db, dee.email, False)
    assert await _assign(db, waiting) is None

    await actions.set_away(db, ada.id, False)  # type: ignore[arg-type]
    assert (await _assign(db, waiting)).agent_id == ada.id  # type: ignore[union-attr]


async def test_an_agent_not_seen_within_the_window_is_offline(db: Database, fast_password_hashing: None) -> None:
    await _auto(db)
    ada = await _agent(db, "Ada")
    ticket = await _ticket(db)
    later = utcnow() + timedelta(seconds=WINDOW_S + 1)
    assert await actions.assign_ticket(db, ticket.id, online_window_s=WINDOW_S, now=later) is None  # type: ignore[arg-type]
    assert not (await presence_of(db, ada.id, window_s=WINDOW_S, now=later)).online  # type: ignore[arg-type]


async def test_seen_writes_at_most_once_per_agent_per_thirty_seconds(db: Database, fast_password_hashing: None) -> None:
    ada = await _agent(db, "Ada", online=False)
    assert await seen(db, ada.id) is True  # type: ignore[arg-type]
    results = await asyncio.gather(*(seen(db, ada.id) for _ in range(50)))  # type: ignore[arg-type]
    assert not any(results)
    forget_seen_memo()  # another process: the row itself says it is fresh
    assert await seen(db, ada.id) is False  # type: ignore[arg-type]
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(AgentPresence))).scalar_one() == 1


async def test_a_claimed_ticket_is_not_assigned_and_an_assigned_one_cannot_be_claimed(
    db: Database, fast_password_hashing: None
) -> None:
    await _auto(db)
    ada, bob = await _agent(db, "Ada"), await _agent(db, "Bob", online=False)
    claimed = await _ticket(db)
    await actions.claim(db, claimed.id, bob.id)  # type: ignore[arg-type]
    assert await _assign(db, claimed) is None
    assigned = await _ticket(db)
    assert (await _assign(db, assigned)).agent_id == ada.id  # type: ignore[union-attr]
    with pytest.raises(AlreadyClaimed, match="already claimed by Ada"):
        await actions.claim(db, assigned.id, bob.id)  # type: ignore[arg-type]


async def test_the_sweep_assigns_what_waited_while_nobody_was_online(db: Database, fast_password_hashing: None) -> None:
    await _auto(db, capacity=2)
    await _auto(db, queue="sales", capacity=2)
    urgent_last = [await _ticket(db) for _ in range(2)]
    rec = await actions.record_inbound(db, dm(sender="999"))
    urgent = await actions.escalate(db, rec.conversation_id, queue="support", priority="urgent")
    by_hand = await _ticket(db, queue="events")
    assert await actions.assign_waiting(db, online_window_s=WINDOW_S) == []  # nobody online

    ada = await _agent(db, "Ada")
    done = await actions.assign_waiting(db, online_window_s=WINDOW_S)
    assert [a.ticket_id for a in done] == [urgent.id, urgent_last[0].id]  # most urgent first, then capacity
    assert {a.agent_id for a in done} == {ada.id}
    async with db.session() as session:
        assert (await session.get(Ticket, by_hand.id)).status == TicketStatus.queued  # type: ignore[union-attr]


async def test_only_an_admin_switches_a_queue_and_bad_settings_are_refused(
    db: Database, fast_password_hashing: None
) -> None:
    admin, ada = await _agent(db, "Root", admin=True), await _agent(db, "Ada")
    with pytest.raises(NotAllowed):
        await actions.set_queue_assignment(db, "support", auto_assign=True, capacity=3, by_agent_id=ada.id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown queue 'billing'"):
        await actions.set_queue_assignment(db, "billing", auto_assign=True, capacity=3, by_agent_id=admin.id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between 1 and 100"):
        await actions.set_queue_assignment(db, "support", auto_assign=True, capacity=0, by_agent_id=admin.id)  # type: ignore[arg-type]
    await actions.set_queue_assignment(db, "support", auto_assign=True, capacity=3, by_agent_id=admin.id)  # type: ignore[arg-type]
    await actions.set_queue_assignment(db, "support", auto_assign=False, capacity=4, by_agent_id=admin.id)  # type: ignore[arg-type]
    support = (await queue_settings(db))[0]
    assert (support.auto_assign, support.capacity, support.updated_by) == (False, 4, admin.id)


@pytest.mark.postgres
async def test_concurrent_assigners_and_claimers_never_give_a_ticket_two_holders_nor_overfill_an_agent(
    db: Database, fast_password_hashing: None
) -> None:
    """Several worker processes' sweeps and escalation triggers, and agents pressing Claim, all at once,
    each on its own PostgreSQL connection, over the same tickets."""
    if db.dialect != "postgresql":
        pytest.skip("the race needs many connections at once: PostgreSQL")
    capacity = 3
    await _auto(db, capacity=capacity)
    online = [await _agent(db, f"Online{i}") for i in range(4)]
    claimers = [await _agent(db, f"Claimer{i}", online=False) for i in range(6)]
    tickets = [await _ticket(db, sender=f"5{i:04d}") for i in range(30)]
    wide = Database(db.url, pool_size=50, max_overflow=0)

    async def assigner(seed: int) -> None:
        order = tickets[:]
        random.Random(seed).shuffle(order)
        for ticket in order:
            await actions.assign_ticket(wide, ticket.id, online_window_s=WINDOW_S)  # type: ignore[arg-type]

    async def sweeper() -> None:
        for _ in range(3):
            await actions.assign_waiting(wide, online_window_s=WINDOW_S)

    async def claimer(agent_id: int, seed: int) -> None:
        order = tickets[:]
        random.Random(seed).shuffle(order)
        for ticket in order[:8]:
            try:
                await actions.claim(wide, ticket.id, agent_id)  # type: ignore[arg-type]
            except AlreadyClaimed:
                pass

    try:
        await asyncio.gather(
            *(assigner(i) for i in range(12)),
            *(sweeper() for _ in range(4)),
            *(claimer(a.id, 100 + i) for i, a in enumerate(claimers)),  # type: ignore[arg-type]
        )
    finally:
        await wide.dispose()

    async with db.session() as session:
        rows = (await session.execute(select(Ticket.id, Ticket.status, Ticket.assignee_id))).all()
        takes = (await session.execute(
            select(TicketEvent.ticket_id, func.count())
            .where(TicketEvent.action.in_(["claimed", "assigned"]))  # type: ignore[attr-defined]
            .group_by(TicketEvent.ticket_id)
        )).all()
    assert all(n == 1 for _, n in takes), "a ticket was taken twice"
    assert {t for t, _ in takes} == {r[0] for r in rows if r[1] == TicketStatus.assigned}
    online_ids = {a.id for a in online}
    per_agent: dict[int, int] = {}
    for _, _, assignee in rows:
        if assignee is not None:
            per_agent[assignee] = per_agent.get(assignee, 0) + 1
    assert all(per_agent.get(a, 0) <= capacity for a in online_ids), per_agent
    # Every online agent was filled up (4 × 3 = 12 slots, 30 tickets): the race did not lose assignments
    # unless claimers took the tickets first.
    assigned_to_online = sum(per_agent.get(a, 0) for a in online_ids)
    claimed = sum(per_agent.get(a.id, 0) for a in claimers)  # type: ignore[misc]
    assert assigned_to_online == min(len(online) * capacity, len(tickets) - claimed)
