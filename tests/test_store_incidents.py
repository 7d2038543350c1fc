"""Spike alerts and incidents in the store (SQLite and PostgreSQL): raised once, quiet afterwards; linked
tickets, one update per customer on their channel, resolution with a final message (docs/incidents.md).

The spike tests use recorded messages with NLU results at chosen times: the clock is the point there, not
the pipeline (tests/test_incidents_e2e.py runs the real one).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.spike_alerts import check_spikes
from bot.spikes import SpikeConfig
from storage import actions
from storage import incidents as reads
from storage.actions import incidents as incident_actions
from storage.db import Database
from storage.errors import IncidentResolved, InvalidText, NotAllowed, NotFound
from storage.models import Alert, Message, OutboxItem, Ticket, TicketEvent, TicketStatus
from tests.fixtures.desk import inbound
from tests.store_helpers import dm, mention

CONFIG = SpikeConfig(window_s=900, baseline_windows=8, stdevs=3.0, min_count=10, quiet_s=7200)
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # a window start
_n = iter(range(10_000, 99_999))


async def _said(db: Database, intent: str, category: str, at: datetime, count: int = 1) -> None:
    """`count` customer messages the NLU read as `intent`, recorded at `at`."""
    for _ in range(count):
        n = next(_n)
        recorded = await actions.record_inbound(db, dm(f"message {n}", sender=str(n), handle=f"c{n}"))
        await actions.record_nlu_result(db, recorded.message_id, intent=intent, confidence=0.9, category=category)
        async with db.transaction() as session:
            await session.execute(update(Message).where(Message.id == recorded.message_id).values(created_at=at))


async def _alerts(db: Database) -> list[Alert]:
    async with db.session() as session:
        return list((await session.execute(select(Alert).order_by(Alert.id))).scalars().all())


async def test_a_burst_of_complaints_raises_exactly_one_alert_and_none_while_it_goes_on(db: Database) -> None:
    for window in range(8):  # an ordinary morning: one or two complaints, some greetings
        await _said(db, "complaint", "support", T0 - timedelta(minutes=15 * (8 - window)) + timedelta(minutes=3),
                    1 + window % 2)
        await _said(db, "greet", "smalltalk", T0 - timedelta(minutes=15 * (8 - window)) + timedelta(minutes=5), 3)
    await _said(db, "complaint", "support", T0 + timedelta(minutes=2), 14)

    raised = await check_spikes(db, CONFIG, now=T0 + timedelta(minutes=6))
    assert [(a.key, a.count, a.baseline) for a in raised] == [("intent:complaint", 14, 1.5)]
    # Its category spiked too (14 support messages), but that is the same burst: quieted by the intent's alert.
    assert [a.key for a in await _alerts(db)] == ["intent:complaint"]

    # The burst goes on: the same window checked again, the next window, an hour later: no new alert.
    await _said(db, "complaint", "support", T0 + timedelta(minutes=8), 5)
    assert await check_spikes(db, CONFIG, now=T0 + timedelta(minutes=9)) == []
    await _said(db, "complaint", "support", T0 + timedelta(minutes=16), 20)
    assert await check_spikes(db, CONFIG, now=T0 + timedelta(minutes=20)) == []
    await _said(db, "complaint", "support", T0 + timedelta(minutes=61), 25)
    assert await check_spikes(db, CONFIG, now=T0 + timedelta(minutes=65)) == []
    assert len(await _alerts(db)) == 1

    # After the quiet period a new burst is a new alert.
    await _said(db, "complaint", "support", T0 + timedelta(hours=5, minutes=1), 15)
    [again] = await check_spikes(db, CONFIG, now=T0 + timedelta(hours=5, minutes=4))
    assert again.key == "intent:complaint"


async def test_a_quiet_brands_three_messages_are_no_spike(db: Database) -> None:
    await _said(db, "payment_failed", "support", T0 + timedelta(minutes=1), 3)
    assert await check_spikes(db, CONFIG, now=T0 + timedelta(minutes=5)) == []


async def test_several_processes_checking_at_once_raise_one_alert(db: Database) -> None:
    await _said(db, "payment_failed", "support", T0 + timedelta(minutes=1), 12)
    now = T0 + timedelta(minutes=4)
    results = await asyncio.gather(*(check_spikes(db, CONFIG, now=now) for _ in range(4)))
    assert sum(len(r) for r in results) == 1
    assert [a.key for a in await _alerts(db)] == ["intent:payment_failed"]


async def test_a_burst_spread_over_intents_alerts_its_category(db: Database) -> None:
    for intent in ("order_problem", "billing_refund", "product_issue"):
        await _said(db, intent, "support", T0 + timedelta(minutes=1), 4)
    [alert] = await check_spikes(db, dataclasses.replace(CONFIG), now=T0 + timedelta(minutes=5))
    assert (alert.key, alert.count) == ("category:support", 12)


# --- incidents ------------------------------------------------------------------------------------------------


async def _ticket(db: Database, message, intent: str = "payment_failed") -> Ticket:  # type: ignore[no-untyped-def]
    recorded = await actions.record_inbound(db, message)
    await actions.record_nlu_result(db, recorded.message_id, intent=intent, confidence=0.9, category="support")
    return await actions.escalate(db, recorded.conversation_id, queue="support", subject=message.text[:60])


async def _outbox(db: Database) -> list[OutboxItem]:
    async with db.session() as session:
        return list((await session.execute(select(OutboxItem).order_by(OutboxItem.id))).scalars().all())


async def _events(db: Database, action: str) -> list[TicketEvent]:
    async with db.session() as session:
        found = await session.execute(select(TicketEvent).where(TicketEvent.action == action).order_by(TicketEvent.id))
        return list(found.scalars().all())


async def test_an_update_reaches_each_linked_customer_on_their_channel_and_resolve_closes_them(
    db: Database, make_agent  # type: ignore[no-untyped-def]
) -> None:
    ann = await make_agent(name="Ann")
    by_dm = await _ticket(db, dm("checkout says payment failed", sender="501", handle="dana"))
    in_public = await _ticket(db, dataclasses.replace(
        mention("@brand checkout broken?", sender="502", handle="pat", msg_id="7001"), summons_brand=True))
    on_telegram = await _ticket(db, inbound("card declined at checkout", sender="503", handle="tia", channel="telegram"))
    unrelated = await _ticket(db, dm("where is my parcel", sender="504", handle="olga"), intent="order_problem")

    incident = await incident_actions.open_incident(
        db, title="Checkout fails", agent_id=ann.id, intent="payment_failed", keywords=["Checkout", "checkout", " "])
    assert incident.keywords == ["checkout"]
    suggested = [t.ticket_id for t in await reads.suggested_tickets(db, incident)]
    assert suggested == [by_dm.id, in_public.id, on_telegram.id]  # not the parcel

    assert await incident_actions.link_tickets(db, incident.id, suggested, agent_id=ann.id) == suggested
    assert await incident_actions.link_tickets(db, incident.id, suggested, agent_id=ann.id) == []  # already
    assert await reads.suggested_tickets(db, incident) == []

    sent = await incident_actions.send_update(db, incident.id, agent_id=ann.id, text="We're on it: checkout is failing.")
    assert (sent.sent_to, sent.withheld) == (3, 0)
    rows = await _outbox(db)
    updates = [r for r in rows if r.idempotency_key.startswith(f"incident-update:{sent.id}:")]
    assert [r.target for r in updates] == [
        {"kind": "dm", "recipient_id": "501"},
        {"kind": "reply", "in_reply_to": "7001"},
        {"kind": "telegram", "chat_id": "503"},
    ]
    assert {r.idempotency_key for r in updates} == {f"incident-update:{sent.id}:ticket:{t}" for t in suggested}
    assert [e.ticket_id for e in await _events(db, "incident_update")] == suggested

    # Too long for the public thread: refused as a whole, nothing written.
    with pytest.raises(InvalidText, match=f"at most 280.*ticket #{in_public.id}"):
        await incident_actions.send_update(db, incident.id, agent_id=ann.id, text="x" * 281)
    assert len(await _outbox(db)) == len(rows)

    # Another agent may update but not resolve; the opener resolves with a final message and the tickets.
    bob = await make_agent(name="Bob")
    await actions.claim(db, by_dm.id, bob.id)  # held by Bob: the incident still closes it
    with pytest.raises(NotAllowed, match="only the agent who opened"):
        await incident_actions.resolve_incident(db, incident.id, agent_id=bob.id)
    await incident_actions.resolve_incident(db, incident.id, agent_id=ann.id, text="Fixed. Sorry!", resolve_tickets=True)
    async with db.session() as session:
        statuses = {t.id: t.status for t in (await session.execute(select(Ticket))).scalars().all()}
    assert [statuses[t] for t in suggested] == [TicketStatus.resolved] * 3
    assert statuses[unrelated.id] == TicketStatus.queued
    finals = [r for r in await _outbox(db) if r.text == "Fixed. Sorry!"]
    assert len(finals) == 3
    assert {e.detail.get("incident_id") for e in await _events(db, "resolved")} == {incident.id}

    with pytest.raises(IncidentResolved, match="already resolved"):
        await incident_actions.send_update(db, incident.id, agent_id=ann.id, text="again")
    with pytest.raises(IncidentResolved):
        await incident_actions.link_tickets(db, incident.id, [unrelated.id], agent_id=ann.id)


async def test_a_public_thread_x_would_refuse_is_withheld_and_said_on_the_ticket(db: Database, make_agent) -> None:  # type: ignore[no-untyped-def]
    ann = await make_agent()
    quiet = await _ticket(db, dataclasses.replace(
        mention("checkout broken", sender="601", handle="lee", msg_id="8001"), summons_brand=False))
    incident = await incident_actions.open_incident(db, title="Checkout", agent_id=ann.id)
    await incident_actions.link_tickets(db, incident.id, [quiet.id], agent_id=ann.id)
    sent = await incident_actions.send_update(db, incident.id, agent_id=ann.id, text="On it.")
    assert (sent.sent_to, sent.withheld) == (0, 1)
    assert await _outbox(db) == []
    [withheld] = await _events(db, "public_reply_withheld")
    assert withheld.ticket_id == quiet.id and "X lets the brand reply only" in withheld.detail["reason"]


async def test_one_customer_with_two_linked_tickets_gets_one_message(db: Database, make_agent) -> None:  # type: ignore[no-untyped-def]
    ann = await make_agent()
    public = await _ticket(db, dataclasses.replace(
        mention("@brand checkout?", sender="701", handle="kim", msg_id="9001"), summons_brand=True))
    private = await _ticket(db, dm("checkout failed", sender="701", handle="kim"))
    incident = await incident_actions.open_incident(db, title="Checkout", agent_id=ann.id)
    await incident_actions.link_tickets(db, incident.id, [public.id, private.id], agent_id=ann.id)
    sent = await incident_actions.send_update(db, incident.id, agent_id=ann.id, text="On it.")
    assert sent.sent_to == 1
    assert [r.target["kind"] for r in await _outbox(db)] == ["dm"]  # the private channel wins


async def test_links_and_alerts_in_the_store(db: Database, make_agent) -> None:  # type: ignore[no-untyped-def]
    ann = await make_agent()
    await _said(db, "payment_failed", "support", T0 + timedelta(minutes=1), 12)
    [alert] = await check_spikes(db, CONFIG, now=T0 + timedelta(minutes=3))
    first = await incident_actions.open_incident(db, title="Payments", agent_id=ann.id, alert_id=alert.id)
    second = await incident_actions.open_incident(db, title="Payments too", agent_id=ann.id, alert_id=alert.id)
    assert second.id == first.id  # the alert's button pressed twice opens one incident
    assert await reads.active_alerts(db, within_s=10**9) == []

    ticket = await _ticket(db, dm("payment failed", sender="801", handle="max"))
    await incident_actions.link_tickets(db, first.id, [ticket.id], agent_id=ann.id)
    assert await incident_actions.unlink_ticket(db, first.id, ticket.id, agent_id=ann.id) is True
    assert await incident_actions.unlink_ticket(db, first.id, ticket.id, agent_id=ann.id) is False
    assert [e.action for e in await _events(db, "incident_linked")] == ["incident_linked"]
    assert len(await _events(db, "incident_unlinked")) == 1
    with pytest.raises(NotFound):
        await incident_actions.link_tickets(db, first.id, [999_999], agent_id=ann.id)
    with pytest.raises(InvalidText, match="at most 10"):
        await incident_actions.open_incident(db, title="t", agent_id=ann.id, keywords=[f"w{i}" for i in range(11)])
    with pytest.raises(InvalidText, match="title is empty"):
        await incident_actions.open_incident(db, title="  ", agent_id=ann.id)


async def test_a_listening_rules_burst_is_an_alert_of_its_own(db: Database) -> None:
    """Posts a listening rule found (docs/listening.md) count by when they were posted: a burst of "checkout"
    posts is `rule:checkout`; a week of posts found at once by the first search is no spike."""
    from storage.actions import listening

    def post(n: int, at: datetime) -> listening.NewListeningItem:
        return listening.NewListeningItem(
            platform_post_id=f"77{n}", conversation_ref=f"77{n}", rule="checkout", author_id=f"9{n}",
            author_handle=f"p{n}", author_name="", author_accepts_dms=None, text="checkout broken again",
            posted_at=at, category="support", addressed_brand=False,
            intent="complaint", confidence=0.9, sentiment="negative",
        )

    now = T0 + timedelta(minutes=10)
    await listening.record_items(db, [post(i, T0 - timedelta(hours=1 + i)) for i in range(30)])  # the backfill
    assert await check_spikes(db, CONFIG, now=now) == []
    await listening.record_items(db, [post(100 + i, T0 + timedelta(minutes=2)) for i in range(11)])
    [alert] = await check_spikes(db, CONFIG, now=now)
    assert (alert.key, alert.count) == ("rule:checkout", 11)
