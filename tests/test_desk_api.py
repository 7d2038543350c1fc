"""The desk's JSON API against a real store (SQLite and PostgreSQL), through httpx on the ASGI app."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from desk import create_desk_app
from desk.auth import TokenSigner
from storage import actions, agent_sessions
from storage.agents import set_active
from storage.db import Database
from storage.models import OutboxItem, SessionKind, TicketEvent
from storage.outbox import lease_due, mark_sent
from tests.fixtures.desk import api_login, inbound, mint_api_token

API_ROUTES = [
    ("GET", "/api/tickets", None),
    ("GET", "/api/tickets/1", None),
    ("POST", "/api/tickets/1/claim", None),
    ("POST", "/api/tickets/1/reply", {"text": "hi"}),
    ("POST", "/api/tickets/1/notes", {"text": "hi"}),
    ("POST", "/api/tickets/1/handback", None),
    ("POST", "/api/tickets/1/resolve", None),
    ("POST", "/api/tickets/1/assign", {"agent_id": 1}),
    ("POST", "/api/tickets/1/move", {"queue": "sales"}),
    ("POST", "/api/messages/1/intent", {"intent": "greet"}),
    ("GET", "/api/stats", None),
    ("GET", "/api/stats.csv?from=2026-11-01&to=2026-11-02", None),
]


async def _outbox_count(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(OutboxItem))).scalar_one()


# --- tokens and authentication ---------------------------------------------------------------------


async def test_token_for_the_right_password_opens_the_api(desk_client, make_agent, make_ticket) -> None:
    agent = await make_agent("ann@example.com", "Ann")
    await make_ticket()
    response = await desk_client.post("/api/token", json={"email": "ANN@example.com", "password": "correct horse battery"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["access_token"]
    listed = await desk_client.get("/api/tickets", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200 and len(listed.json()) == 1
    assert agent.id is not None


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "ann@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": "correct horse battery"},
    ],
)
async def test_token_refused_for_bad_credentials(desk_client, make_agent, credentials) -> None:
    await make_agent("ann@example.com", "Ann")
    response = await desk_client.post("/api/token", json=credentials)
    assert response.status_code == 401
    assert "access_token" not in response.json()


async def test_token_refused_for_a_disabled_agent(desk_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    await set_active(db, "ann@example.com", False)
    response = await desk_client.post("/api/token", json={"email": "ann@example.com", "password": "correct horse battery"})
    assert response.status_code == 401


async def test_token_request_with_a_bad_body_is_422(desk_client) -> None:
    assert (await desk_client.post("/api/token", json={"email": "ann@example.com"})).status_code == 422
    assert (await desk_client.post("/api/token", content=b"not json")).status_code == 422


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES)
async def test_every_api_route_needs_a_token(desk_client, method, path, body) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWxhZGRpbjpvcGVu"}):
        response = await desk_client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path, headers)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_signed_with_another_key_is_refused(desk_client, make_agent, db) -> None:
    agent = await make_agent()
    live_sign_in = await agent_sessions.create(db, agent.id, SessionKind.token, ttl_s=3600)
    forged = TokenSigner("some-other-secret", 3600).issue(live_sign_in)
    response = await desk_client.get("/api/tickets", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_an_expired_token_is_refused(db, desk_settings, make_agent) -> None:
    agent = await make_agent()
    expired_app = create_desk_app(db, desk_settings.model_copy(update={"desk_token_ttl_s": -1}))
    headers = await mint_api_token(db, agent.id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=expired_app), base_url="http://desk.test") as c:
        response = await c.get("/api/tickets", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_disabling_an_agent_revokes_their_token(desk_client, make_agent, db) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    assert (await desk_client.get("/api/tickets", headers=headers)).status_code == 200
    await set_active(db, agent.email, False)
    assert (await desk_client.get("/api/tickets", headers=headers)).status_code == 401


async def test_docs_describe_the_api(desk_client) -> None:
    assert (await desk_client.get("/docs")).status_code == 200
    spec = (await desk_client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"  # /docs can authorize
    for path in ("/api/token", "/api/tickets", "/api/tickets/{ticket_id}/claim", "/api/stats",
                 "/api/messages/{message_id}/intent"):
        assert path in paths


# --- listing and reading ---------------------------------------------------------------------------


async def test_list_sorts_by_priority_then_age_and_filters(desk_client, make_agent, make_ticket) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    low = await make_ticket("just a question", priority="low", queue="general", category="other")
    normal_old = await make_ticket("order late", priority="normal")
    urgent = await make_ticket("my card was charged twice", priority="urgent", handle="bob")
    normal_new = await make_ticket("want to buy 50 seats", priority="normal", queue="sales", category="sales",
                                   channel="telegram")

    rows = (await desk_client.get("/api/tickets", headers=headers)).json()
    assert [r["id"] for r in rows] == [urgent.id, normal_old.id, normal_new.id, low.id]
    first = rows[0]
    assert first["priority"] == "urgent" and first["queue"] == "support" and first["status"] == "queued"
    assert first["customer"] == {"handle": "bob", "display_name": "", "channel": "x",
                                 "platform_user_id": first["customer"]["platform_user_id"]}
    assert first["assignee"] is None and first["created_at"] and first["waiting_since"]

    sales = (await desk_client.get("/api/tickets?queue=sales", headers=headers)).json()
    assert [r["id"] for r in sales] == [normal_new.id]
    assert sales[0]["customer"]["channel"] == "telegram"
    assert [r["id"] for r in (await desk_client.get("/api/tickets?channel=telegram", headers=headers)).json()] == [
        normal_new.id
    ]

    await desk_client.post(f"/api/tickets/{normal_old.id}/claim", headers=headers)
    mine = (await desk_client.get("/api/tickets?mine=true", headers=headers)).json()
    assert [r["id"] for r in mine] == [normal_old.id]
    assert mine[0]["assignee"]["id"] == agent.id
    queued = (await desk_client.get("/api/tickets?status=queued", headers=headers)).json()
    assert normal_old.id not in [r["id"] for r in queued] and len(queued) == 3

    await desk_client.post(f"/api/tickets/{low.id}/resolve", headers=headers)
    open_ids = [r["id"] for r in (await desk_client.get("/api/tickets", headers=headers)).json()]
    assert low.id not in open_ids
    closed = (await desk_client.get("/api/tickets?status=resolved", headers=headers)).json()
    assert [r["id"] for r in closed] == [low.id]


async def test_list_with_an_unknown_filter_is_422(desk_client, make_agent) -> None:
    headers = await api_login(desk_client, (await make_agent()).email)
    assert (await desk_client.get("/api/tickets?queue=billing", headers=headers)).status_code == 422
    assert (await desk_client.get("/api/tickets?status=sleeping", headers=headers)).status_code == 422


async def test_ticket_detail_has_the_whole_conversation(desk_client, make_agent, make_ticket, db) -> None:
    agent = await make_agent(name="Ann")
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket("I want to register for the meetup", queue="events", category="event",
                               intent="event_register", confidence=0.62,
                               data={"event": "berlin-meetup", "seats": 2})
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    reply = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": "You're in!"})
    await desk_client.post(f"/api/tickets/{ticket.id}/notes", headers=headers, json={"text": "VIP, be nice"})
    # The outbox sender delivers the reply.
    leased = await lease_due(db, "test-sender")
    assert [d.message_id for d in leased] == [reply.json()["message_id"]]
    await mark_sent(db, leased[0].id, "dm-out-1")

    detail = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert detail["id"] == ticket.id and detail["queue"] == "events" and detail["status"] == "assigned"
    assert detail["data"] == {"event": "berlin-meetup", "seats": 2}
    messages = detail["messages"]
    assert [(m["author"], m["text"], m["is_note"]) for m in messages] == [
        ("customer", "I want to register for the meetup", False),
        ("agent", "You're in!", False),
        ("agent", "VIP, be nice", True),
    ]
    customer, agent_reply, note = messages
    assert customer["intent"] == "event_register" and customer["confidence"] == pytest.approx(0.62)
    assert customer["delivered_at"] is None
    assert agent_reply["delivered_at"] is not None and agent_reply["delivery"] == "sent"
    assert agent_reply["agent"]["name"] == "Ann"
    assert note["kind"] == "note" and note["delivery"] is None
    assert [e["action"] for e in detail["events"]] == ["escalated", "claimed", "replied", "note"]


async def test_unknown_ticket_is_404(desk_client, make_agent) -> None:
    headers = await api_login(desk_client, (await make_agent()).email)
    for method, path, body in API_ROUTES[1:8]:
        response = await desk_client.request(method, path.replace("/1", "/999999", 1), json=body, headers=headers)
        assert response.status_code in (404, 403), (path, response.text)  # assign: 403 for non-admins first
        if "assign" not in path:
            assert response.status_code == 404 and "does not exist" in response.json()["detail"]


# --- the actions -----------------------------------------------------------------------------------


async def test_claim_is_200_for_the_holder_and_409_naming_the_holder_for_others(
    desk_client, make_agent, make_ticket
) -> None:
    ann, bob = await make_agent(name="Ann"), await make_agent(name="Bob")
    ann_h, bob_h = await api_login(desk_client, ann.email), await api_login(desk_client, bob.email)
    ticket = await make_ticket()
    first = await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=ann_h)
    assert first.status_code == 200
    assert first.json()["status"] == "assigned" and first.json()["assignee"]["name"] == "Ann"
    assert (await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=ann_h)).status_code == 200
    second = await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=bob_h)
    assert second.status_code == 409
    assert second.json()["holder"] == "Ann" and "Ann" in second.json()["detail"]


async def test_reply_is_queued_for_delivery(desk_client, make_agent, make_ticket, db) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket()
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    before = await _outbox_count(db)
    response = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": "On it!"})
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert await _outbox_count(db) == before + 1
    async with db.session() as session:
        row = (await session.execute(select(OutboxItem).order_by(OutboxItem.id.desc()).limit(1))).scalar_one()
    assert row.text == "On it!" and row.message_id == response.json()["message_id"]


async def test_reply_refusals(desk_client, make_agent, make_ticket, db) -> None:
    ann, bob = await make_agent(name="Ann"), await make_agent(name="Bob")
    ann_h, bob_h = await api_login(desk_client, ann.email), await api_login(desk_client, bob.email)
    ticket = await make_ticket()
    # Not claimed yet: a conflict with the ticket's state, which the answer names.
    unclaimed = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=ann_h, json={"text": "hi"})
    assert unclaimed.status_code == 409 and unclaimed.json()["status"] == "queued"
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=ann_h)
    # Another agent's ticket.
    other = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=bob_h, json={"text": "hi"})
    assert other.status_code == 403 and "Ann" in other.json()["detail"]
    # Bad bodies.
    for body in ({}, {"text": ""}, {"text": 5}, {"text": "   "}, {"text": "a\x00b"}):
        response = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=ann_h, json=body)
        assert response.status_code == 422, body
    assert await _outbox_count(db) == 0


async def test_notes_are_internal(desk_client, make_agent, make_ticket, db) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket()
    response = await desk_client.post(f"/api/tickets/{ticket.id}/notes", headers=headers, json={"text": "called them"})
    assert response.status_code == 201
    assert await _outbox_count(db) == 0
    detail = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert detail["messages"][-1]["is_note"] is True and detail["messages"][-1]["text"] == "called them"
    assert (await desk_client.post(f"/api/tickets/{ticket.id}/notes", headers=headers, json={})).status_code == 422


async def test_hand_back_then_invalid_transitions_are_409_with_the_state(desk_client, make_agent, make_ticket) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket()
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    handed = await desk_client.post(f"/api/tickets/{ticket.id}/handback", headers=headers)
    assert handed.status_code == 200 and handed.json()["status"] == "handed_back"
    for action in ("handback", "resolve", "claim"):
        response = await desk_client.post(f"/api/tickets/{ticket.id}/{action}", headers=headers)
        assert response.status_code == 409, action
        assert response.json()["status"] == "handed_back"
    reply = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": "hi"})
    assert reply.status_code == 409 and reply.json()["status"] == "handed_back"


async def test_resolve(desk_client, make_agent, make_ticket) -> None:
    ann, bob = await make_agent(name="Ann"), await make_agent(name="Bob")
    ann_h, bob_h = await api_login(desk_client, ann.email), await api_login(desk_client, bob.email)
    ticket = await make_ticket()
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=ann_h)
    assert (await desk_client.post(f"/api/tickets/{ticket.id}/resolve", headers=bob_h)).status_code == 403
    resolved = await desk_client.post(f"/api/tickets/{ticket.id}/resolve", headers=ann_h)
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_at"]
    again = await desk_client.post(f"/api/tickets/{ticket.id}/resolve", headers=ann_h)
    assert again.status_code == 409 and again.json()["status"] == "resolved"


async def test_assign_is_for_admins(desk_client, make_agent, make_ticket) -> None:
    admin, ann, bob = await make_agent(name="Boss", admin=True), await make_agent(name="Ann"), await make_agent(name="Bob")
    admin_h, ann_h = await api_login(desk_client, admin.email), await api_login(desk_client, ann.email)
    ticket = await make_ticket()
    refused = await desk_client.post(f"/api/tickets/{ticket.id}/assign", headers=ann_h, json={"agent_id": ann.id})
    assert refused.status_code == 403
    assigned = await desk_client.post(f"/api/tickets/{ticket.id}/assign", headers=admin_h, json={"agent_id": bob.id})
    assert assigned.status_code == 200
    assert assigned.json()["assignee"]["name"] == "Bob" and assigned.json()["status"] == "assigned"
    moved = await desk_client.post(f"/api/tickets/{ticket.id}/assign", headers=admin_h, json={"agent_id": ann.id})
    assert moved.json()["assignee"]["name"] == "Ann"
    assert (await desk_client.post(f"/api/tickets/{ticket.id}/assign", headers=admin_h, json={})).status_code == 422
    unknown = await desk_client.post(f"/api/tickets/{ticket.id}/assign", headers=admin_h, json={"agent_id": 999999})
    assert unknown.status_code == 422
    missing = await desk_client.post("/api/tickets/999999/assign", headers=admin_h, json={"agent_id": ann.id})
    assert missing.status_code == 404
    await desk_client.post(f"/api/tickets/{ticket.id}/resolve", headers=ann_h)
    closed = await desk_client.post(f"/api/tickets/{ticket.id}/assign", headers=admin_h, json={"agent_id": bob.id})
    assert closed.status_code == 409 and closed.json()["status"] == "resolved"


async def test_moving_a_ticket_to_another_queue(desk_client, make_agent, make_ticket, db) -> None:
    admin, ann, bob = await make_agent(name="Boss", admin=True), await make_agent(name="Ann"), await make_agent(name="Bob")
    admin_h, ann_h = await api_login(desk_client, admin.email), await api_login(desk_client, ann.email)
    bob_h = await api_login(desk_client, bob.email)
    ticket = await make_ticket("how much is the pro plan", queue="general", category="other")
    moved = await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=ann_h, json={"queue": "sales"})
    assert moved.status_code == 200 and moved.json()["queue"] == "sales"
    assert (await desk_client.get("/api/tickets?queue=sales", headers=ann_h)).json()[0]["id"] == ticket.id
    events = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=ann_h)).json()["events"]
    assert events[-1]["action"] == "moved" and events[-1]["detail"] == {"from": "general", "to": "sales"}
    again = await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=ann_h, json={"queue": "sales"})
    assert again.status_code == 200  # already there: nothing changes, no second event
    events = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=ann_h)).json()["events"]
    assert [e["action"] for e in events].count("moved") == 1

    bad = await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=ann_h, json={"queue": "vip"})
    assert bad.status_code == 422
    assert (await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=ann_h, json={})).status_code == 422
    missing = await desk_client.post("/api/tickets/999999/move", headers=ann_h, json={"queue": "sales"})
    assert missing.status_code == 404
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=ann_h)
    held = await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=bob_h, json={"queue": "events"})
    assert held.status_code == 403 and "held by another agent" in held.json()["detail"]
    by_admin = await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=admin_h, json={"queue": "events"})
    assert by_admin.status_code == 200 and by_admin.json()["queue"] == "events"
    await desk_client.post(f"/api/tickets/{ticket.id}/resolve", headers=ann_h)
    closed = await desk_client.post(f"/api/tickets/{ticket.id}/move", headers=ann_h, json={"queue": "sales"})
    assert closed.status_code == 409


async def test_intent_correction(desk_client, make_agent, make_ticket, db) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket("can I get a refund", intent="greet", confidence=0.41)
    detail = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    customer_message = detail["messages"][0]["id"]
    response = await desk_client.post(
        f"/api/messages/{customer_message}/intent", headers=headers, json={"intent": "refund_request"}
    )
    assert response.status_code == 200
    assert response.json()["corrected_intent"] == "refund_request" and response.json()["intent"] == "greet"
    detail = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert detail["messages"][0]["corrected_intent"] == "refund_request"
    assert detail["events"][-1]["action"] == "intent_corrected"

    note = await desk_client.post(f"/api/tickets/{ticket.id}/notes", headers=headers, json={"text": "x"})
    refused = await desk_client.post(
        f"/api/messages/{note.json()['message_id']}/intent", headers=headers, json={"intent": "greet"}
    )
    assert refused.status_code == 409
    assert (await desk_client.post("/api/messages/999999/intent", headers=headers, json={"intent": "x"})).status_code == 404
    bad = await desk_client.post(f"/api/messages/{customer_message}/intent", headers=headers, json={"intent": "no spaces"})
    assert bad.status_code == 422


async def test_stats(desk_client, make_agent, make_ticket, db) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    # Two conversations the bot handled alone, two that became tickets.
    for n in range(2):
        await actions.record_inbound(db, inbound("what are your opening hours?", sender=f"bot-only-{n}", handle="c"))
    first = await make_ticket(priority="high")
    await make_ticket(queue="sales", category="sales")
    await desk_client.post(f"/api/tickets/{first.id}/claim", headers=headers)
    await desk_client.post(f"/api/tickets/{first.id}/reply", headers=headers, json={"text": "Looking now"})
    await desk_client.post(f"/api/tickets/{first.id}/resolve", headers=headers)

    stats = (await desk_client.get("/api/stats", headers=headers)).json()
    assert stats["open_by_queue"]["sales"] == {"queued": 1, "assigned": 0, "total": 1}
    assert stats["open_by_queue"]["support"]["total"] == 0
    assert stats["conversations"] == 4 and stats["escalated_conversations"] == 2
    assert stats["containment"] == pytest.approx(0.5)
    assert stats["median_first_response_s"] is not None and stats["median_first_response_s"] >= 0
    assert stats["median_resolution_s"] is not None
    assert (await desk_client.get("/api/stats?days=0", headers=headers)).status_code == 422


async def test_stats_on_an_empty_store(desk_client, make_agent) -> None:
    headers = await api_login(desk_client, (await make_agent()).email)
    stats = (await desk_client.get("/api/stats", headers=headers)).json()
    assert stats["containment"] is None and stats["median_first_response_s"] is None
    assert set(stats["open_by_queue"]) == {"support", "sales", "events", "general"}


# --- against a real server: concurrency and the live feed -------------------------------------------


async def test_thirty_concurrent_claims_have_exactly_one_winner(desk_server, make_agent, make_ticket, db) -> None:
    agents = [await make_agent(name=f"Racer {n}", password="racer-password") for n in range(30)]
    ticket = await make_ticket()
    minted = [await mint_api_token(db, a.id) for a in agents]  # 30 argon2 logins would only add time
    limits = httpx.Limits(max_connections=30, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=desk_server.base_url, limits=limits, timeout=60) as client:
        assert (await client.get("/docs")).status_code == 200  # the standalone server serves the whole app
        # One real login, so the minted tokens are known to be what the server issues.
        assert (await client.post("/api/token", json={"email": agents[0].email, "password": "racer-password"})).status_code == 200
        responses = await asyncio.gather(
            *(
                client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
                for headers in minted
            )
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 29
    winner = next(r for r in responses if r.status_code == 200).json()["assignee"]["name"]
    assert all(r.json()["holder"] == winner for r in responses if r.status_code == 409)
    async with db.session() as session:
        claims = (
            await session.execute(
                select(func.count())
                .select_from(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "claimed")
            )
        ).scalar_one()
    assert claims == 1  # one winner in the audit trail too


async def _next_event(lines, wanted: str) -> dict:
    import json

    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == wanted:
            return json.loads(line.split(":", 1)[1])
    raise AssertionError(f"the stream ended before a {wanted!r} event")


async def test_live_feed_reports_new_tickets_and_messages(desk_server, make_agent, make_ticket, db) -> None:
    agent = await make_agent()
    async with httpx.AsyncClient(base_url=desk_server.base_url, timeout=30) as client:
        headers = await api_login(client, agent.email)
        assert (await client.get("/live")).status_code == 401
        async with client.stream("GET", "/live", headers=headers) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            await asyncio.wait_for(_next_event(lines, "ready"), 20)
            ticket = await make_ticket("hello? anyone?", sender="live-1")
            tickets = await asyncio.wait_for(_next_event(lines, "tickets"), 20)
            assert ticket.id in tickets["ids"]
            await actions.record_inbound(db, inbound("still waiting", sender="live-1", handle="x"))
            messages = await asyncio.wait_for(_next_event(lines, "messages"), 20)
            assert ticket.id in messages["ticket_ids"]


async def test_waiting_time_counts_from_the_first_unanswered_message(desk_client, make_agent, make_ticket, db) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket("hello", sender="w-1")
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": "hi there"})
    row = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert row["waiting_since"] is None
    await actions.record_inbound(db, inbound("are you there?", sender="w-1", handle="x"))
    row = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
    assert row["waiting_since"] is not None
    assert row["waiting_since"] == row["messages"][-1]["created_at"]
