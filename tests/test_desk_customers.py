"""The customer panel: one person's history across channels, and linking their contacts (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from storage import actions
from storage.actions.privacy import erase_contacts
from storage.actions.registrations import register
from storage.customers import link_contacts, person_of
from tests.fixtures.desk import api_login


@pytest.fixture
async def headers(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def test_a_persons_tickets_on_x_and_telegram_oldest_first(desk_client, headers, make_ticket, db) -> None:
    on_x = await make_ticket("pricing for 40 seats?", handle="sam_x", queue="sales", category="sales",
                             data={"lead": {"company": "Northwind", "seats": 40}})
    on_tg = await make_ticket("my invoice is wrong", handle="sam_tg", channel="telegram")
    await register(db, on_tg.contact_id, "meetup-berlin-2027-01")
    before = (await desk_client.get(f"/api/customers/{on_x.contact_id}", headers=headers)).json()
    assert [t["id"] for t in before["tickets"]] == [on_x.id] and before["linked"] == []

    linked = await desk_client.post(
        f"/api/customers/{on_x.contact_id}/links", headers=headers, json={"contact_id": on_tg.contact_id}
    )
    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert [c["handle"] for c in body["linked"]] == ["sam_tg"]
    assert [(t["id"], t["channel"]) for t in body["tickets"]] == [(on_x.id, "x"), (on_tg.id, "telegram")]
    assert body["tickets"][0]["lead"] == {"company": "Northwind", "seats": 40}
    assert [r["event"] for r in body["registrations"]] == ["meetup-berlin-2027-01"]
    # Seen from the other contact, the same person.
    other = (await desk_client.get(f"/api/customers/{on_tg.contact_id}", headers=headers)).json()
    assert [t["id"] for t in other["tickets"]] == [on_x.id, on_tg.id]

    assert (await desk_client.delete(f"/api/customers/{on_tg.contact_id}/links", headers=headers)).status_code == 204
    after = (await desk_client.get(f"/api/customers/{on_x.contact_id}", headers=headers)).json()
    assert after["linked"] == [] and [t["id"] for t in after["tickets"]] == [on_x.id]


async def test_linking_joins_whole_groups_and_unlinking_keeps_the_rest(db, make_ticket) -> None:
    a, b, c = [(await make_ticket("hi", handle=f"h{n}")).contact_id for n in range(3)]
    await link_contacts(db, a, b)
    await link_contacts(db, c, b)
    async with db.session() as session:
        assert await person_of(session, a) == sorted([a, b, c])
    from storage.customers import unlink_contact

    await unlink_contact(db, a)
    async with db.session() as session:
        assert await person_of(session, a) == [a]
        assert await person_of(session, c) == sorted([b, c])


async def test_concurrent_links_end_in_one_group(db, make_ticket) -> None:
    ids = [(await make_ticket("hi", handle=f"g{n}")).contact_id for n in range(4)]
    await asyncio.gather(link_contacts(db, ids[0], ids[1]), link_contacts(db, ids[2], ids[3]),
                         link_contacts(db, ids[1], ids[2]))
    async with db.session() as session:
        groups = {tuple(await person_of(session, i)) for i in ids}
    assert groups == {tuple(sorted(ids))}


async def test_erasing_a_contact_unlinks_it(db, make_ticket) -> None:
    a, b = [(await make_ticket("hi", handle=f"e{n}")).contact_id for n in range(2)]
    await link_contacts(db, a, b)
    await erase_contacts(db, [a])
    async with db.session() as session:
        assert await person_of(session, b) == [b]
        assert await person_of(session, a) == [a]


async def test_refusals(desk_client, headers, make_ticket) -> None:
    ticket = await make_ticket("hi", handle="solo")
    url = f"/api/customers/{ticket.contact_id}/links"
    assert (await desk_client.post(url, headers=headers, json={"contact_id": ticket.contact_id})).status_code == 422
    assert (await desk_client.post(url, headers=headers, json={"contact_id": 999_999})).status_code == 404
    assert (await desk_client.post(url, headers=headers, json={"contact_id": 0})).status_code == 422
    assert (await desk_client.post(url, headers=headers, json={})).status_code == 422
    assert (await desk_client.get("/api/customers/999999", headers=headers)).status_code == 404
    assert (await desk_client.delete("/api/customers/999999/links", headers=headers)).status_code == 404
    assert (await desk_client.get(f"/api/customers/{ticket.contact_id}")).status_code == 401


async def test_the_panel_page_links_by_handle(desk_client, make_agent, make_ticket) -> None:
    from tests.test_desk_pages import _sign_in

    await make_agent("ann@example.com", "Ann")
    csrf = await _sign_in(desk_client, "ann@example.com")
    on_x = await make_ticket("where is my parcel", handle="kim_x", subject="Parcel")
    on_tg = await make_ticket("still no parcel", handle="kim_tg", channel="telegram", subject="Parcel again")
    ticket_page = await desk_client.get(f"/tickets/{on_x.id}")
    assert f'href="/customers/{on_x.contact_id}"' in ticket_page.text
    linked = await desk_client.post(
        f"/customers/{on_x.contact_id}/link", data={"other": "@kim_tg", "csrf_token": csrf}, follow_redirects=True
    )
    assert "2 contacts are now one customer" in linked.text
    assert linked.text.index("Parcel</a>") < linked.text.index("Parcel again</a>")
    nobody = await desk_client.post(
        f"/customers/{on_x.contact_id}/link", data={"other": "@nobody", "csrf_token": csrf}, follow_redirects=True
    )
    assert "No contact matches that." in nobody.text
    assert (await desk_client.get("/customers/999999")).status_code == 404
    assert on_tg.id is not None
