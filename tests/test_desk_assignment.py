"""Automatic assignment in the desk: the admin's settings (API and page), away and back, the live notice."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from storage import actions
from storage.assignment import forget_seen_memo, presence_of
from storage.db import Database
from tests.fixtures.desk import DEFAULT_PASSWORD, api_login

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _fresh_seen_memo() -> None:
    forget_seen_memo()


@pytest.fixture
async def admin(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("root@example.com", "Rita Admin", admin=True)
    return await api_login(desk_client, "root@example.com")


@pytest.fixture
async def agent(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def _sign_in(client: httpx.AsyncClient, email: str) -> str:
    form = await client.get("/login")
    csrf = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    response = await client.post("/login", data={"email": email, "password": DEFAULT_PASSWORD, "csrf_token": csrf})
    assert response.status_code == 303, response.text
    return CSRF.search((await client.get("/queues/all")).text).group(1)  # type: ignore[union-attr]


async def test_an_admin_switches_a_queue_to_round_robin_and_reads_it_back(desk_client, admin) -> None:
    before = (await desk_client.get("/api/queues/assignment", headers=admin)).json()
    assert [(q["queue"], q["auto_assign"], q["updated_by"]) for q in before] == [
        ("support", False, None), ("sales", False, None), ("events", False, None), ("general", False, None)
    ]
    put = await desk_client.put(
        "/api/queues/sales/assignment", headers=admin, json={"auto_assign": True, "capacity": 3}
    )
    assert put.status_code == 200, put.text
    assert put.json()["queue"] == "sales" and put.json()["auto_assign"] is True and put.json()["capacity"] == 3
    after = {q["queue"]: q for q in (await desk_client.get("/api/queues/assignment", headers=admin)).json()}
    assert after["sales"]["auto_assign"] is True and after["sales"]["updated_by"] is not None
    assert after["support"]["auto_assign"] is False


async def test_every_refusal_of_the_assignment_api(desk_client, admin, agent) -> None:
    body = {"auto_assign": True, "capacity": 3}
    assert (await desk_client.get("/api/queues/assignment")).status_code == 401
    assert (await desk_client.put("/api/queues/support/assignment", json=body)).status_code == 401
    assert (await desk_client.post("/api/me/away", json={"away": True})).status_code == 401
    assert (await desk_client.get("/api/me/presence")).status_code == 401

    forbidden = await desk_client.get("/api/queues/assignment", headers=agent)
    assert forbidden.status_code == 403 and "only an admin" in forbidden.json()["detail"]
    assert (await desk_client.put("/api/queues/support/assignment", headers=agent, json=body)).status_code == 403

    unknown = await desk_client.put("/api/queues/billing/assignment", headers=admin, json=body)
    assert unknown.status_code == 404 and "support, sales, events, general" in unknown.json()["detail"]
    long_name = await desk_client.put(f"/api/queues/{'x' * 40}/assignment", headers=admin, json=body)
    assert long_name.status_code == 422
    for bad in ({"auto_assign": True, "capacity": 0}, {"auto_assign": True, "capacity": 101},
                {"auto_assign": True}, {"capacity": 3}, {"auto_assign": "sometimes", "capacity": 3},
                {"auto_assign": True, "capacity": "many"}):
        refused = await desk_client.put("/api/queues/support/assignment", headers=admin, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
    for bad_away in ({}, {"away": "maybe"}, {"away": None}):
        assert (await desk_client.post("/api/me/away", headers=agent, json=bad_away)).status_code == 422
    # Nothing was changed by any refusal.
    settings = (await desk_client.get("/api/queues/assignment", headers=admin)).json()
    assert not any(q["auto_assign"] for q in settings)


async def test_an_agent_goes_away_and_comes_back_by_api(desk_client, agent, db: Database) -> None:
    away = await desk_client.post("/api/me/away", headers=agent, json={"away": True})
    assert away.status_code == 200 and away.json()["away"] is True
    assert (await desk_client.get("/api/me/presence", headers=agent)).json()["away"] is True
    back = (await desk_client.post("/api/me/away", headers=agent, json={"away": False})).json()
    assert back["away"] is False and back["online"] is True  # coming back is being here


async def test_the_routes_are_documented(desk_client) -> None:
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    assert paths["/api/queues/assignment"]["get"]["summary"]
    assert paths["/api/queues/{queue}/assignment"]["put"]["summary"]
    assert paths["/api/me/away"]["post"]["summary"]


async def test_the_top_bar_toggle_sets_an_agent_away_and_back(desk_client, make_agent, db: Database) -> None:
    ann = await make_agent("ann@example.com", "Ann")
    csrf = await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/queues/all")
    assert 'id="away-toggle"' in page.text and "Available" in page.text
    assert (await desk_client.post("/me/away", data={"away": "1"})).status_code == 403  # no CSRF token
    went = await desk_client.post("/me/away", data={"csrf_token": csrf, "away": "1", "next": "/queues/mine"})
    assert went.status_code == 303 and went.headers["location"] == "/queues/mine"
    assert (await presence_of(db, ann.id, window_s=120)).away
    page = await desk_client.get("/queues/mine")
    assert 'aria-pressed="true"' in page.text and "no new tickets are assigned to you" in page.text
    offsite = await desk_client.post("/me/away", data={"csrf_token": csrf, "away": "0", "next": "//evil.example/"})
    assert offsite.headers["location"] == "/"  # never bounced to another site
    assert not (await presence_of(db, ann.id, window_s=120)).away


async def test_the_assignment_page_is_for_admins(desk_client, make_agent, db: Database) -> None:
    await make_agent("ann@example.com", "Ann")
    await make_agent("root@example.com", "Rita Admin", admin=True)
    csrf = await _sign_in(desk_client, "ann@example.com")
    assert "Assignment</a>" not in (await desk_client.get("/queues/all")).text
    refused = await desk_client.get("/assignment")
    assert refused.status_code == 403 and "Only an admin" in refused.text
    await desk_client.post("/assignment/support", data={"csrf_token": csrf, "auto_assign": "1", "capacity": "2"})
    async with httpx.AsyncClient(transport=desk_client._transport, base_url="http://desk.test") as root:
        root_csrf = await _sign_in(root, "root@example.com")
        page = await root.get("/assignment")
        assert page.status_code == 200 and 'data-queue="support"' in page.text
        assert "Ann" in page.text and "Offline" in page.text
        assert (await root.post("/assignment/billing", data={"csrf_token": root_csrf, "capacity": "2"})).status_code == 404
        bad = await root.post("/assignment/support", data={"csrf_token": root_csrf, "auto_assign": "1",
                                                          "capacity": "lots"}, follow_redirects=True)
        assert "The capacity is a number of open tickets" in bad.text
        done = await root.post("/assignment/support", data={"csrf_token": root_csrf, "auto_assign": "1",
                                                           "capacity": "2"}, follow_redirects=True)
        assert "new tickets go to online agents by round robin, at most 2 open each" in done.text
    from storage.assignment import queue_settings

    support = (await queue_settings(db))[0]
    assert support.auto_assign and support.capacity == 2  # the admin's change, not the agent's attempt


async def _next_event(lines, wanted: str) -> dict:  # type: ignore[no-untyped-def]
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == wanted:
            return json.loads(line.split(":", 1)[1])  # type: ignore[no-any-return]
    raise AssertionError(f"the stream ended before a {wanted!r} event")


async def test_the_live_feed_makes_an_agent_online_and_brings_only_them_the_notice(
    desk_server, make_agent, make_ticket, db: Database
) -> None:
    root = await make_agent("root@example.com", "Rita Admin", admin=True)
    ann = await make_agent("ann@example.com", "Ann")
    bob = await make_agent("bob@example.com", "Bob")
    await actions.set_away(db, bob.id, True)  # type: ignore[arg-type]
    await actions.set_queue_assignment(db, "support", auto_assign=True, capacity=2, by_agent_id=root.id)  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=desk_server.base_url, timeout=30) as client:
        ann_h, bob_h = await api_login(client, ann.email), await api_login(client, bob.email)
        async with client.stream("GET", "/live", headers=ann_h) as ann_live, \
                client.stream("GET", "/live", headers=bob_h) as bob_live:
            ann_lines, bob_lines = ann_live.aiter_lines(), bob_live.aiter_lines()
            await asyncio.wait_for(_next_event(ann_lines, "ready"), 20)
            await asyncio.wait_for(_next_event(bob_lines, "ready"), 20)
            assert (await presence_of(db, ann.id, window_s=120)).online  # type: ignore[arg-type]
            ticket = await make_ticket("my parcel is lost", sender="assign-live-1")
            assigned = await actions.assign_ticket(db, ticket.id, online_window_s=120)  # type: ignore[arg-type]
            assert assigned is not None and assigned.agent_id == ann.id  # Bob is away
            notice = await asyncio.wait_for(_next_event(ann_lines, "assigned"), 20)
            assert notice == {"ticket_id": ticket.id, "agent_id": ann.id, "queue": "support"}
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(_next_event(bob_lines, "assigned"), 3)
