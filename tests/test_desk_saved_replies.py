"""Saved replies through the API and the pages, on SQLite and PostgreSQL: admins manage, agents use them."""

from __future__ import annotations

import pytest

from storage import actions
from storage.saved_replies import fill
from tests.fixtures.desk import api_login


@pytest.fixture
async def admin(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("root@example.com", "Rita Admin", admin=True)
    return await api_login(desk_client, "root@example.com")


@pytest.fixture
async def agent(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def _add(client, headers, **body):  # type: ignore[no-untyped-def]
    return await client.post("/api/saved-replies", headers=headers, json=body)


async def test_an_admin_adds_one_and_an_agent_gets_it_filled_in_for_a_ticket(
    desk_client, admin, agent, make_ticket
) -> None:
    created = await _add(
        desk_client, admin, name="sorry-late", queue="support",
        text="Hi {customer_name}, I'm {agent_name} and I'm looking into ticket #{ticket_id} now.",
    )
    assert created.status_code == 201, created.text
    ticket = await make_ticket("my parcel is late", handle="maya_k")
    filled = (await desk_client.get(f"/api/tickets/{ticket.id}/saved-replies", headers=agent)).json()
    assert [r["name"] for r in filled] == ["sorry-late"]
    assert filled[0]["text"] == f"Hi maya_k, I'm Ann and I'm looking into ticket #{ticket.id} now."
    assert filled[0]["unfilled"] == []


async def test_queue_replies_show_only_in_their_queue_and_win_over_shared_ones(
    desk_client, admin, agent, make_ticket
) -> None:
    await _add(desk_client, admin, name="hello", text="Hello from all of us")
    await _add(desk_client, admin, name="hello", queue="sales", text="Hello from sales")
    await _add(desk_client, admin, name="pricing", queue="sales", text="Our plans: …")
    support = await make_ticket("broken", handle="a1")
    sales = await make_ticket("pricing?", handle="a2", queue="sales", category="sales")
    on_support = (await desk_client.get(f"/api/tickets/{support.id}/saved-replies", headers=agent)).json()
    on_sales = (await desk_client.get(f"/api/tickets/{sales.id}/saved-replies", headers=agent)).json()
    assert [(r["name"], r["text"]) for r in on_support] == [("hello", "Hello from all of us")]
    assert [(r["name"], r["text"]) for r in on_sales] == [("hello", "Hello from sales"), ("pricing", "Our plans: …")]
    listed = (await desk_client.get("/api/saved-replies", params={"queue": "support"}, headers=agent)).json()
    assert [r["queue"] for r in listed] == [""]


async def test_an_event_placeholder_without_a_registration_is_left_for_the_agent(
    desk_client, admin, agent, make_ticket
) -> None:
    await _add(desk_client, admin, name="join", text="Join {event_name} here: {event_link}")
    ticket = await make_ticket("how do I join", handle="b1")
    [reply] = (await desk_client.get(f"/api/tickets/{ticket.id}/saved-replies", headers=agent)).json()
    assert reply["text"] == "Join {event_name} here: {event_link}"
    assert reply["unfilled"] == ["event_name", "event_link"]


async def test_event_placeholders_come_from_the_customers_registration(
    desk_client, admin, agent, make_ticket, db
) -> None:
    from storage.actions.registrations import register

    await _add(desk_client, admin, name="join", text="Join {event_name} ({event_date}): {event_link}")
    ticket = await make_ticket("how do I join the webinar", handle="c1")
    await register(db, ticket.contact_id, "launch-livestream-2027-02")
    [reply] = (await desk_client.get(f"/api/tickets/{ticket.id}/saved-replies", headers=agent)).json()
    assert reply["text"] == (
        "Join Spring product launch (livestream) (18 February 2027, 17:00 GMT): "
        "https://events.example.com/live/spring-launch"
    )


async def test_admins_change_and_delete_them(desk_client, admin) -> None:
    reply_id = (await _add(desk_client, admin, name="bye", text="Bye!")).json()["id"]
    changed = await desk_client.patch(f"/api/saved-replies/{reply_id}", headers=admin, json={"text": "Goodbye!"})
    assert changed.status_code == 200 and changed.json()["text"] == "Goodbye!" and changed.json()["name"] == "bye"
    assert (await desk_client.delete(f"/api/saved-replies/{reply_id}", headers=admin)).status_code == 204
    assert (await desk_client.get("/api/saved-replies", headers=admin)).json() == []
    assert (await desk_client.delete(f"/api/saved-replies/{reply_id}", headers=admin)).status_code == 404
    patch_gone = await desk_client.patch(f"/api/saved-replies/{reply_id}", headers=admin, json={"text": "x"})
    assert patch_gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"name": "Has Spaces", "text": "x"}, "name"),
        ({"name": "", "text": "x"}, "name"),
        ({"name": "ok", "text": ""}, "text"),
        ({"name": "ok", "text": "x" * 4001}, "text"),
        ({"name": "ok", "text": "Hi {custmer_name}"}, "unknown placeholder {custmer_name}"),
        ({"name": "ok", "text": "x", "queue": "nowhere"}, "unknown queue"),
    ],
)
async def test_bad_saved_replies_are_refused_with_the_reason(desk_client, admin, body, why) -> None:
    response = await _add(desk_client, admin, **body)
    assert response.status_code == 422
    assert why in response.text


async def test_a_taken_name_is_409_and_agents_may_not_manage(desk_client, admin, agent) -> None:
    reply_id = (await _add(desk_client, admin, name="dup", text="one")).json()["id"]
    taken = await _add(desk_client, admin, name="dup", text="two")
    assert taken.status_code == 409 and "already have a saved reply named 'dup'" in taken.json()["detail"]
    assert (await _add(desk_client, admin, name="dup", text="two", queue="sales")).status_code == 201
    assert (await _add(desk_client, agent, name="mine", text="x")).status_code == 403
    assert (await desk_client.patch(f"/api/saved-replies/{reply_id}", headers=agent, json={"text": "x"})).status_code == 403
    assert (await desk_client.delete(f"/api/saved-replies/{reply_id}", headers=agent)).status_code == 403
    assert (await desk_client.get("/api/saved-replies", params={"queue": "nowhere"}, headers=agent)).status_code == 422
    assert (await desk_client.get("/api/saved-replies")).status_code == 401


async def test_the_placeholders_are_listed(desk_client, agent) -> None:
    listed = (await desk_client.get("/api/saved-replies/placeholders", headers=agent)).json()["placeholders"]
    assert {"customer_name", "agent_name", "ticket_id", "event_name"} <= set(listed)


def test_fill_leaves_what_it_cannot_fill() -> None:
    assert fill("Hi {customer_name}, see {event_link}", {"customer_name": "Sam"}) == (
        "Hi Sam, see {event_link}", ["event_link"]
    )


async def test_the_ticket_page_offers_them_and_the_admin_page_manages_them(
    desk_client, make_agent, make_ticket, db
) -> None:
    from tests.test_desk_pages import _sign_in

    await make_agent("root@example.com", "Rita Admin", admin=True)
    csrf = await _sign_in(desk_client, "root@example.com")
    added = await desk_client.post(
        "/saved-replies", data={"name": "thanks", "text": "Thanks {customer_name}!", "queue": "", "csrf_token": csrf}
    )
    assert added.status_code == 303
    page = await desk_client.get("/saved-replies")
    assert 'data-saved-reply="thanks"' in page.text and "Saved reply /thanks added." in page.text
    bad = await desk_client.post(
        "/saved-replies", data={"name": "x", "text": "Hi {nobody}", "queue": "", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "Unknown placeholder {nobody}" in bad.text
    ticket = await make_ticket("hello", handle="dee")
    ticket_page = await desk_client.get(f"/tickets/{ticket.id}")
    assert 'data-name="thanks" data-text="Thanks dee!"' in ticket_page.text
    await actions.resolve(db, ticket.id, agent_id=None)  # type: ignore[arg-type]
    assert 'id="saved-reply-picker"' not in (await desk_client.get(f"/tickets/{ticket.id}")).text
