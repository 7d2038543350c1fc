"""The desk's HTML pages: sign-in, CSRF, queues, the ticket page and its actions (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select

from storage import actions
from storage.agents import set_active
from storage.db import Database
from storage.models import OutboxItem, Ticket
from tests.fixtures.desk import DEFAULT_PASSWORD, inbound

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def _sign_in(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = await client.get("/login")
    response = await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": _csrf(form.text), "next": ""}
    )
    assert response.status_code == 303, response.text
    return _csrf((await client.get(response.headers["location"], follow_redirects=True)).text)


async def _ticket(db: Database, ticket_id: int) -> Ticket:
    async with db.session() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


async def test_pages_need_a_sign_in(desk_client) -> None:
    for path in ("/", "/queues/all", "/queues/mine", "/tickets/1", "/stats"):
        response = await desk_client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")  # path-only: never the client's Host
    htmx = await desk_client.get("/queues/all/rows", headers={"HX-Request": "true"})
    assert htmx.headers["hx-redirect"].startswith("/login")


async def test_sign_in_and_out(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    form = await desk_client.get("/login")
    assert form.status_code == 200 and 'type="password"' in form.text
    wrong = await desk_client.post(
        "/login", data={"email": "ann@example.com", "password": "nope", "csrf_token": _csrf(form.text)}
    )
    assert wrong.status_code == 401 and "Wrong e-mail or password" in wrong.text
    csrf = await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/queues/all")
    assert page.status_code == 200 and "Ann" in page.text
    assert (await desk_client.post("/logout", data={"csrf_token": csrf})).status_code == 303
    assert (await desk_client.get("/queues/all")).status_code == 303


async def test_session_cookie_is_httponly_and_samesite_lax(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    form = await desk_client.get("/login")
    response = await desk_client.post(
        "/login", data={"email": "ann@example.com", "password": DEFAULT_PASSWORD, "csrf_token": _csrf(form.text)}
    )
    set_cookie = response.headers["set-cookie"].lower()
    assert "frontdesk_desk=" in set_cookie and "httponly" in set_cookie and "samesite=lax" in set_cookie


async def test_sign_in_redirects_only_to_local_pages(desk_client, make_agent, make_ticket) -> None:
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket()
    form = await desk_client.get("/login")
    data = {"email": "ann@example.com", "password": DEFAULT_PASSWORD, "csrf_token": _csrf(form.text)}
    local = await desk_client.post("/login", data={**data, "next": f"/tickets/{ticket.id}"})
    assert local.headers["location"] == f"/tickets/{ticket.id}"
    await desk_client.post("/logout", data={"csrf_token": _csrf((await desk_client.get("/queues/all")).text)})
    form = await desk_client.get("/login")
    evil = await desk_client.post("/login", data={**data, "csrf_token": _csrf(form.text), "next": "//evil.example/"})
    assert evil.headers["location"] == "/"


async def test_posts_without_the_csrf_token_are_refused(desk_client, make_agent, make_ticket, db) -> None:
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket()
    assert (await desk_client.post("/login", data={"email": "ann@example.com", "password": DEFAULT_PASSWORD})).status_code == 403
    await _sign_in(desk_client, "ann@example.com")
    for data in ({}, {"csrf_token": "forged"}):
        response = await desk_client.post(f"/tickets/{ticket.id}/claim", data=data)
        assert response.status_code == 403
    assert (await _ticket(db, ticket.id)).status == "queued"
    assert (await desk_client.post("/logout", data={})).status_code == 403


async def test_a_disabled_agent_is_signed_out(desk_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    await _sign_in(desk_client, "ann@example.com")
    await set_active(db, "ann@example.com", False)
    assert (await desk_client.get("/queues/all")).status_code == 303


async def test_queues_list_open_tickets_most_urgent_first(desk_client, make_agent, make_ticket) -> None:
    await make_agent("ann@example.com", "Ann")
    normal = await make_ticket("where is my order", handle="carol")
    urgent = await make_ticket("charged twice!!", priority="urgent", handle="dave")
    sales = await make_ticket("50 seats please", queue="sales", category="sales", handle="erin", channel="telegram")
    await _sign_in(desk_client, "ann@example.com")

    everything = (await desk_client.get("/queues/all")).text
    order = [int(i) for i in re.findall(r'data-ticket-id="(\d+)"', everything)]
    assert order == [urgent.id, normal.id, sales.id]
    assert "@dave" in everything and "Telegram" in everything

    support = (await desk_client.get("/queues/support")).text
    assert "@carol" in support and "@erin" not in support
    assert "@erin" in (await desk_client.get("/queues/sales")).text
    assert "@erin" in (await desk_client.get("/queues/all?channel=telegram")).text
    assert "@carol" not in (await desk_client.get("/queues/all?channel=telegram")).text
    assert "@dave" in (await desk_client.get("/queues/all?priority=urgent")).text
    assert "@carol" not in (await desk_client.get("/queues/all?priority=urgent")).text
    assert "Nothing here" in (await desk_client.get("/queues/mine")).text
    rows = await desk_client.get("/queues/all/rows", headers={"HX-Request": "true"})
    assert rows.text.lstrip().startswith("<tbody") and "@dave" in rows.text
    assert (await desk_client.get("/queues/billing")).status_code == 404


async def test_ticket_page_shows_conversation_contact_data_and_audit(desk_client, make_agent, make_ticket, db) -> None:
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket(
        "I'd like 40 licences for my team", queue="sales", category="sales", intent="buy_bulk", confidence=0.93,
        handle="frank", data={"lead_company": "Acme GmbH", "lead_seats": 40},
    )
    await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get(f"/tickets/{ticket.id}")
    assert page.status_code == 200
    html = page.text
    for expected in ("I&#39;d like 40 licences for my team", "@frank", "buy_bulk · 93%", "Acme GmbH", "Lead company",
                     "Escalated", "Claim", 'name="intent"'):
        assert expected.lower() in html.lower(), expected
    assert (await desk_client.get("/tickets/999999")).status_code == 404


async def test_claim_reply_note_and_hand_back_from_the_page(desk_client, make_agent, make_ticket, db) -> None:
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket("help please", handle="gina")
    csrf = await _sign_in(desk_client, "ann@example.com")

    claimed = await desk_client.post(f"/tickets/{ticket.id}/claim", data={"csrf_token": csrf})
    assert claimed.status_code == 303 and claimed.headers["location"].endswith(f"/tickets/{ticket.id}")
    assert (await _ticket(db, ticket.id)).status == "assigned"

    # htmx: the answer is the fresh ticket parts, swapped in out of band.
    reply = await desk_client.post(
        f"/tickets/{ticket.id}/reply", data={"csrf_token": csrf, "text": "Sorry, Gina, fixing it"},
        headers={"HX-Request": "true"},
    )
    assert reply.status_code == 200 and reply.headers["x-desk-ok"] == "1"
    assert "Sorry, Gina, fixing it" in reply.text and 'hx-swap-oob="true"' in reply.text
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(OutboxItem))).scalar_one() == 1

    note = await desk_client.post(f"/tickets/{ticket.id}/note", data={"csrf_token": csrf, "text": "refund agreed"})
    assert note.status_code == 303
    page = (await desk_client.get(f"/tickets/{ticket.id}")).text
    assert "refund agreed" in page and "Sending…" in page

    handed = await desk_client.post(f"/tickets/{ticket.id}/handback", data={"csrf_token": csrf})
    assert handed.status_code == 303
    assert (await _ticket(db, ticket.id)).status == "handed_back"
    assert "handed back" in (await desk_client.get(f"/tickets/{ticket.id}")).text


async def test_refused_actions_come_back_as_a_message(desk_client, make_agent, make_ticket, db) -> None:
    bob = await make_agent("bob@example.com", "Bob")
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket()
    await actions.claim(db, ticket.id, bob.id)
    csrf = await _sign_in(desk_client, "ann@example.com")

    plain = await desk_client.post(f"/tickets/{ticket.id}/claim", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Bob already holds this ticket." in plain.text
    htmx = await desk_client.post(
        f"/tickets/{ticket.id}/reply", data={"csrf_token": csrf, "text": "hi"}, headers={"HX-Request": "true"}
    )
    assert htmx.headers["hx-retarget"] == "#flash" and "held by Bob" in htmx.text
    assert "x-desk-ok" not in htmx.headers
    empty = await desk_client.post(
        f"/tickets/{ticket.id}/note", data={"csrf_token": csrf, "text": "  "}, headers={"HX-Request": "true"}
    )
    assert "empty" in empty.text
    assert (await desk_client.post("/tickets/999999/claim", data={"csrf_token": csrf})).status_code == 404


async def test_resolve_and_admin_reassign_from_the_page(desk_client, make_agent, make_ticket, db) -> None:
    await make_agent("boss@example.com", "Boss", admin=True)
    ann = await make_agent("ann@example.com", "Ann")
    first, second = await make_ticket(), await make_ticket()
    csrf = await _sign_in(desk_client, "boss@example.com")
    page = (await desk_client.get(f"/tickets/{first.id}")).text
    assert 'name="agent_id"' in page  # admins see the assign form
    await desk_client.post(f"/tickets/{first.id}/assign", data={"csrf_token": csrf, "agent_id": str(ann.id)})
    assert (await _ticket(db, first.id)).assignee_id == ann.id
    await desk_client.post(f"/tickets/{second.id}/resolve", data={"csrf_token": csrf})
    assert (await _ticket(db, second.id)).status == "resolved"
    assert "This ticket is closed" in (await desk_client.get(f"/tickets/{second.id}")).text


async def test_agents_do_not_see_or_use_assign(desk_client, make_agent, make_ticket, db) -> None:
    ann = await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket()
    csrf = await _sign_in(desk_client, "ann@example.com")
    assert 'name="agent_id"' not in (await desk_client.get(f"/tickets/{ticket.id}")).text
    refused = await desk_client.post(
        f"/tickets/{ticket.id}/assign", data={"csrf_token": csrf, "agent_id": str(ann.id)}, follow_redirects=True
    )
    assert "Only an admin can reassign tickets" in refused.text
    assert (await _ticket(db, ticket.id)).assignee_id is None


async def test_correct_an_intent_from_the_page(desk_client, make_agent, make_ticket, db) -> None:
    await make_agent("ann@example.com", "Ann")
    await make_ticket("hi there", intent="greet")  # so "greet" is a known intent
    ticket = await make_ticket("I was charged twice", intent="greet", confidence=0.3)
    other = await actions.record_inbound(db, inbound("billing broken", sender="x-99", handle="z"))
    await actions.record_nlu_result(db, other.message_id, intent="billing_issue", confidence=0.9, category="support")
    csrf = await _sign_in(desk_client, "ann@example.com")
    page = (await desk_client.get(f"/tickets/{ticket.id}")).text
    message_id = int(re.search(r'data-message-id="(\d+)"', page).group(1))  # type: ignore[union-attr]
    assert '<option value="billing_issue"' in page
    response = await desk_client.post(
        f"/tickets/{ticket.id}/messages/{message_id}/intent",
        data={"csrf_token": csrf, "intent": "billing_issue"}, follow_redirects=True,
    )
    assert "→ billing_issue" in response.text
    unknown = await desk_client.post(
        f"/tickets/{ticket.id}/messages/{message_id}/intent",
        data={"csrf_token": csrf, "intent": "made_up"}, follow_redirects=True,
    )
    assert "Pick an intent from the list" in unknown.text


async def test_stats_page(desk_client, make_agent, make_ticket) -> None:
    await make_agent("ann@example.com", "Ann")
    await make_ticket(queue="events", category="event")
    await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/stats")
    assert page.status_code == 200 and "Median first response" in page.text and "Events" in page.text
    assert "<title>Figures · Frontdesk desk</title>" in page.text  # the page's title, not a card's markup
    assert page.text.count('id="x-cost"') == 1


@pytest.mark.parametrize("path", ["/static/htmx.min.js", "/static/desk.css", "/static/desk.js"])
async def test_static_assets_are_served(desk_client, path) -> None:
    response = await desk_client.get(path)
    assert response.status_code == 200 and len(response.content) > 500


async def test_the_desk_works_mounted_under_a_prefix(desk_app, make_agent, make_ticket) -> None:
    """`frontdesk run` may serve the desk beside the webhooks, under its own path."""
    from fastapi import FastAPI

    parent = FastAPI()
    parent.mount("/desk", desk_app)
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket(handle="hana")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parent), base_url="http://desk.test") as client:
        bounce = await client.get("/desk/queues/all")
        assert bounce.status_code == 303
        assert bounce.headers["location"].startswith("/desk/login?next=%2Fdesk%2Fqueues%2Fall")
        form = await client.get("/desk/login")
        signed_in = await client.post(
            "/desk/login",
            data={"email": "ann@example.com", "password": DEFAULT_PASSWORD, "csrf_token": _csrf(form.text),
                  "next": "/desk/queues/all"},
        )
        assert signed_in.headers["location"] == "/desk/queues/all"
        page = await client.get("/desk/queues/all")
        assert "@hana" in page.text
        assert 'href="/desk/static/desk.css"' in page.text
        assert f'href="/desk/tickets/{ticket.id}"' in page.text
        assert 'data-live-url="/desk/live"' in page.text
        assert (await client.get("/desk/static/htmx.min.js")).status_code == 200
        token = await client.post("/desk/api/token", json={"email": "ann@example.com", "password": DEFAULT_PASSWORD})
        assert token.status_code == 200
