"""CSAT: "How did we do? Reply 1–5" after a resolved ticket, the answer read by the bot (SQLite and PostgreSQL).

The worker runs with the fake keyword parser of tests/test_bot_worker_fake_nlu.py (what is checked is the
store, the router's rule and the effects, not the model); the question goes out through the real outbox.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.content import Content, csat_policy
from bot.router import RouterConfig, csat_score
from bot.worker import BotWorker
from frontdesk.core.settings import Settings
from storage import actions
from storage.actions.csat import CsatPolicy
from storage.agents import create_agent
from storage.db import Database
from storage.models import (
    Conversation,
    CsatResponse,
    Message,
    OutboxItem,
    Ticket,
    TicketEvent,
    utcnow,
)
from tests.store_helpers import dm, mention
from tests.test_bot_worker_fake_nlu import KeywordParser

QUESTION = "How did we do? Reply 1–5"


def _policy(**overrides: object) -> CsatPolicy:
    return csat_policy(Settings(_env_file=None, **overrides))  # type: ignore[arg-type]


def _worker(db: Database, content: Content, config: RouterConfig, **kwargs: object) -> BotWorker:
    return BotWorker(db, KeywordParser(), content, config, owner="w1", idle_poll_s=0.05, **kwargs)  # type: ignore[arg-type]


async def _resolved_ticket(db: Database, *, sender: str = "901", agent_replies: bool = True, claim_only: bool = False,
                           policy: CsatPolicy | None = None, inbound=None) -> Ticket:  # type: ignore[no-untyped-def]
    """A customer's ticket an agent claimed, answered (unless `claim_only`) and resolved (default CSAT policy)."""
    recorded = await actions.record_inbound(db, inbound or dm("my parcel is broken", sender=sender))
    await actions.mark_handled(db, recorded.message_id)  # the bot's part is played: straight to the desk
    ticket = await actions.escalate(db, recorded.conversation_id, queue="support", subject="broken")
    assert ticket.id is not None
    if agent_replies:
        agent = await _agent(db)
        await actions.claim(db, ticket.id, agent.id)
        if not claim_only:
            await actions.agent_reply(db, ticket.id, agent.id, "Sorry! A new one is on its way.")
        return await actions.resolve(db, ticket.id, agent.id, csat=policy or _policy())
    return await actions.resolve(db, ticket.id, None, csat=policy or _policy())


async def _agent(db: Database):  # type: ignore[no-untyped-def]
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(TicketEvent))).scalar_one()
    return await create_agent(db, email=f"ada{count}@brand.example", name="Ada", password="correct horse")


async def _sent(db: Database, conversation_id: int) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(
            select(OutboxItem.text).where(OutboxItem.conversation_id == conversation_id).order_by(OutboxItem.id)
        )
        return list(rows.scalars())


async def _questions(db: Database, conversation_id: int) -> int:
    return sum(QUESTION.split("?")[0] in text for text in await _sent(db, conversation_id))


async def _response(db: Database, ticket_id: int) -> CsatResponse | None:
    async with db.session() as session:
        return (await session.execute(select(CsatResponse).where(CsatResponse.ticket_id == ticket_id))).scalar_one_or_none()


async def _events(db: Database, ticket_id: int) -> list[tuple[str, dict]]:
    async with db.session() as session:
        rows = await session.execute(
            select(TicketEvent.action, TicketEvent.detail).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def _tickets(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Ticket))).scalar_one())


async def test_resolving_asks_once_and_a_score_is_stored_thanked_and_not_a_new_ticket(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    ticket = await _resolved_ticket(db)
    sent = await _sent(db, ticket.conversation_id)
    assert sent[-1].startswith("How did we do? Reply 1–5")  # queued in the resolve's own transaction
    asked = await _response(db, ticket.id)
    assert asked is not None and asked.score is None and asked.contact_id == ticket.contact_id
    assert [a for a, _ in await _events(db, ticket.id)][-2:] == ["resolved", "csat_asked"]

    answer = await actions.record_inbound(db, dm("5 great, thanks Ada", sender="901"))
    await _worker(db, content, router_config).drain()

    stored = await _response(db, ticket.id)
    assert stored is not None and (stored.score, stored.comment) == (5, "great, thanks Ada")
    assert stored.answered_at is not None
    assert (await _sent(db, ticket.conversation_id))[-1] == "Thank you for your feedback! It helps us get better."
    assert await _tickets(db) == 1  # not routed as a new support message
    async with db.session() as session:
        message = await session.get(Message, answer.message_id)
        conversation = await session.get(Conversation, ticket.conversation_id)
    assert message is not None and message.ticket_id == ticket.id  # agents read it on the ticket
    assert conversation is not None and "csat" not in conversation.bot_state
    assert ("csat_answered", {"score": 5, "message_id": answer.message_id}) in await _events(db, ticket.id)

    # The next ticket of the same customer, within the window: no second question.
    second = await _resolved_ticket(db)
    assert await _questions(db, second.conversation_id) == 1
    assert await _response(db, second.id) is None
    skipped = [d for a, d in await _events(db, second.id) if a == "csat_skipped"]
    assert skipped and "asked within 30 days" in skipped[0]["reason"]


async def test_anything_but_a_score_is_routed_as_usual_and_the_question_lapses(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    ticket = await _resolved_ticket(db, sender="902")
    await actions.record_inbound(db, dm("hello, where is my package? it is late", sender="902"))
    worker = _worker(db, content, router_config)
    await worker.drain()
    assert "shop.example.com/orders" in (await _sent(db, ticket.conversation_id))[-1]  # answered as ever
    # A "5" now is an ordinary message: the question lapsed with the message before.
    await actions.record_inbound(db, dm("5", sender="902"))
    await worker.drain()
    response = await _response(db, ticket.id)
    assert response is not None and response.score is None
    assert "Thank you for your feedback" not in " ".join(await _sent(db, ticket.conversation_id))


async def test_an_answer_after_the_answer_time_is_not_read_as_a_score(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    ticket = await _resolved_ticket(db, sender="903", policy=_policy(csat_answer_hours=72))
    await actions.record_inbound(db, dm("5", sender="903"))
    later = utcnow() + timedelta(hours=73)
    await _worker(db, content, router_config, clock=lambda: later).drain()
    response = await _response(db, ticket.id)
    assert response is not None and response.score is None


async def test_bot_only_tickets_are_not_asked_unless_configured(db: Database) -> None:
    ticket = await _resolved_ticket(db, sender="904", agent_replies=False)
    assert await _questions(db, ticket.conversation_id) == 0
    reasons = [d["reason"] for a, d in await _events(db, ticket.id) if a == "csat_skipped"]
    assert reasons and reasons[0].startswith("bot-only")

    asked = await _resolved_ticket(db, sender="905", agent_replies=False, policy=_policy(csat_after_bot_only=True))
    assert await _questions(db, asked.conversation_id) == 1


async def test_csat_off_asks_nobody_and_records_nothing(db: Database) -> None:
    ticket = await _resolved_ticket(db, sender="906", policy=_policy(csat_enabled=False))
    assert await _questions(db, ticket.conversation_id) == 0
    assert await _response(db, ticket.id) is None
    assert "csat_skipped" not in [a for a, _ in await _events(db, ticket.id)]


async def test_a_window_of_zero_asks_after_every_ticket(db: Database) -> None:
    policy = _policy(csat_window_days=0)
    first = await _resolved_ticket(db, sender="907", policy=policy)
    second = await _resolved_ticket(db, sender="907", policy=policy)
    assert await _questions(db, first.conversation_id) == 2 and second.conversation_id == first.conversation_id


async def test_a_public_thread_is_asked_in_the_thread_only_where_x_allows_the_reply(db: Database) -> None:
    allowed = await _resolved_ticket(db, inbound=mention("@brand my parcel is broken", sender="908", handle="sam"))
    async with db.session() as session:
        row = (await session.execute(
            select(OutboxItem).where(OutboxItem.conversation_id == allowed.conversation_id).order_by(OutboxItem.id.desc())
        )).scalars().first()
    assert row is not None and "sam" in row.text and "1–5" in row.text and row.target["kind"] == "reply"

    # A thread whose customer post does not summon the brand: X would refuse the reply, so nothing is asked.
    refused_post = mention("my parcel is broken", sender="909", handle="kim")
    refused_post = type(refused_post)(**{**refused_post.__dict__, "summons_brand": False})
    refused = await _resolved_ticket(db, inbound=refused_post, claim_only=True)  # no public reply possible
    assert await _questions(db, refused.conversation_id) == 0
    reasons = [d["reason"] for a, d in await _events(db, refused.id) if a == "csat_skipped"]
    assert reasons and reasons[0].startswith("public thread")
    assert await _response(db, refused.id) is None


async def test_erasing_the_customer_erases_their_comment_and_keeps_the_score(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    from storage.actions.privacy import erase_contacts

    ticket = await _resolved_ticket(db, sender="910")
    await actions.record_inbound(db, dm("4 - my address is 1 Main St", sender="910"))
    await _worker(db, content, router_config).drain()
    await erase_contacts(db, [ticket.contact_id])
    response = await _response(db, ticket.id)
    assert response is not None and (response.score, response.comment) == (4, "[erased]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", (4, "")), ("5/5", (5, "")), ("4 - quick and kind", (4, "quick and kind")), ("⭐⭐⭐⭐", (4, "")),
        ("⭐️⭐️⭐️ ok", (3, "ok")), ("five", (5, "")), ("Five stars - lovely", (5, "lovely")), ("5 great", (5, "great")),
        ("@brand 2 slow", (2, "slow")), ("3 out of 5, fine", (3, "fine")),
        ("10", None), ("4.5", None), ("5/10", None), ("2nd time I ask", None), ("2 items missing?", None),
        ("one more thing", None), ("hello", None), ("", None),
    ],
)
def test_what_counts_as_a_score(text: str, expected: tuple[int, str] | None) -> None:
    assert csat_score(text) == expected



# --- the router's rule, as data ----------------------------------------------------------------------------


def _awaiting(hours: float) -> dict:
    from tests.fixtures.bot import NOW

    return {"csat": {"ticket_id": 12, "until": (NOW + timedelta(hours=hours)).isoformat()}}


def test_the_router_records_a_score_and_thanks_without_routing(content: Content, router_config: RouterConfig) -> None:
    from bot.router import Escalate, RecordCsat, Reply, UpdateState, route
    from tests.fixtures.bot import incoming

    decision = route(incoming("4 - quick and kind", "out_of_scope", 0.99, state=_awaiting(1)), content, router_config)
    [recorded] = decision.of(RecordCsat)
    assert (recorded.ticket_id, recorded.score, recorded.comment) == (12, 4, "quick and kind")
    assert recorded.thanks.startswith("Thank you for your feedback")
    assert not decision.of(Escalate) and not decision.of(Reply)
    assert decision.of(UpdateState)[0].changes["csat"] is None

    public = route(incoming("@brand 5", "out_of_scope", 0.99, kind="public", state=_awaiting(1)), content, router_config)
    assert "{handle}" not in public.of(RecordCsat)[0].thanks


@pytest.mark.parametrize(("text", "hours"), [("I want a real human", 1), ("5", -1)])
def test_anything_else_or_too_late_is_routed_and_the_question_lapses(
    content: Content, router_config: RouterConfig, text: str, hours: float
) -> None:
    from bot.router import RecordCsat, UpdateState, route
    from tests.fixtures.bot import incoming

    decision = route(incoming(text, "ask_human", 0.99, state=_awaiting(hours)), content, router_config)
    assert not decision.of(RecordCsat)
    assert decision.rule.endswith("(CSAT question lapsed)")
    assert any(u.changes.get("csat", "kept") is None for u in decision.of(UpdateState))


# --- the desk ---------------------------------------------------------------------------------------------


async def test_the_desk_resolves_asks_and_shows_the_answer_on_the_ticket(
    db: Database, desk_client, make_agent, content: Content, router_config: RouterConfig
) -> None:
    from tests.fixtures.desk import api_login

    agent = await make_agent("ann@example.com", "Ann")
    headers = await api_login(desk_client, agent.email)
    recorded = await actions.record_inbound(db, dm("my parcel is broken", sender="920"))
    await actions.mark_handled(db, recorded.message_id)
    ticket = await actions.escalate(db, recorded.conversation_id, queue="support", subject="broken")
    for step, body in (("claim", None), ("reply", {"text": "A new one is on its way"}), ("resolve", None)):
        assert (await desk_client.post(f"/api/tickets/{ticket.id}/{step}", json=body, headers=headers)).status_code < 300
    assert (await _sent(db, ticket.conversation_id))[-1].startswith(QUESTION)
    detail = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert detail["csat"]["score"] is None and detail["csat"]["asked_at"]

    await actions.record_inbound(db, dm("⭐⭐⭐⭐⭐ <b>lovely</b>", sender="920"))
    await _worker(db, content, router_config).drain()
    detail = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert (detail["csat"]["score"], detail["csat"]["comment"]) == (5, "<b>lovely</b>")
    from tests.test_desk_pages import _sign_in

    await _sign_in(desk_client, "ann@example.com")
    page = (await desk_client.get(f"/tickets/{ticket.id}")).text
    assert "<strong>5/5</strong> · “&lt;b&gt;lovely&lt;/b&gt;”" in page


def test_a_lapsed_question_tags_the_new_ticket_once(content: Content, router_config: RouterConfig) -> None:
    from dataclasses import replace

    from bot.router import Escalate, TagTicket, route
    from tests.fixtures.bot import incoming

    msg = replace(incoming("I want a real human", "ask_human", 0.99, state=_awaiting(1)), customer_handle="acme_ceo")
    decision = route(msg, content, router_config)
    assert decision.of(Escalate) and [t.tags for t in decision.of(TagTicket)] == [("vip",)]
