"""Search and paginated queues, as an agent uses them, on SQLite (FTS5) and PostgreSQL (GIN full text)."""

from __future__ import annotations

import pytest

from desk import search
from storage import actions
from storage.actions.privacy import erase_contacts
from storage.search import query_words
from tests.fixtures.desk import api_login, inbound


@pytest.fixture
async def headers(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def test_an_order_number_finds_the_message_and_its_ticket(desk_client, headers, make_ticket) -> None:
    await make_ticket("where is my parcel", handle="bea")
    wanted = await make_ticket("order A-10293 arrived broken, the box was crushed", handle="cal", subject="Broken")
    response = await desk_client.get("/api/search", params={"q": "A-10293"}, headers=headers)
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [m["ticket_id"] for m in messages] == [wanted.id]
    assert "A-10293" in messages[0]["snippet"]


async def test_every_word_must_match_as_a_word_or_its_start(desk_client, headers, make_ticket) -> None:
    refund = await make_ticket("I want a refund for the blue jacket", handle="dan")
    await make_ticket("the blue jacket is lovely", handle="eve")
    found = (await desk_client.get("/api/search", params={"q": "REFUN jack"}, headers=headers)).json()
    assert [m["ticket_id"] for m in found["messages"]] == [refund.id]
    # "lue" is inside "blue", not the start of a word: nothing.
    assert (await desk_client.get("/api/search", params={"q": "lue"}, headers=headers)).json()["messages"] == []


async def test_results_are_newest_first_on_both_stores(desk_client, headers, make_ticket) -> None:
    ids = [(await make_ticket(f"voucher code problem number {n}", handle=f"v{n}")).id for n in range(3)]
    found = (await desk_client.get("/api/search", params={"q": "voucher"}, headers=headers)).json()
    assert [m["ticket_id"] for m in found["messages"]] == list(reversed(ids))


async def test_ticket_number_and_handle(desk_client, headers, make_ticket) -> None:
    ticket = await make_ticket("my order never arrived", handle="northwind_sam")
    by_number = (await desk_client.get("/api/search", params={"q": f"#{ticket.id}"}, headers=headers)).json()
    assert by_number["tickets"][0]["id"] == ticket.id
    by_handle = (await desk_client.get("/api/search", params={"q": "@Northwind"}, headers=headers)).json()
    assert [c["handle"] for c in by_handle["customers"]] == ["northwind_sam"]
    assert by_handle["customers"][0]["latest_ticket_id"] == ticket.id


async def test_filters_narrow_the_messages(desk_client, headers, make_ticket, db) -> None:
    support = await make_ticket("invoice INV-77 is wrong", handle="fay", queue="support")
    sales = await make_ticket("invoice for the enterprise plan please", handle="gus", queue="sales", category="sales")
    telegram = await make_ticket("invoice missing", handle="hal", channel="telegram")
    await actions.resolve(db, support.id, agent_id=None)  # type: ignore[arg-type]

    async def _ticket_ids(**params: str) -> list[int]:
        body = (await desk_client.get("/api/search", params={"q": "invoice", **params}, headers=headers)).json()
        return sorted(m["ticket_id"] for m in body["messages"])

    assert await _ticket_ids() == sorted([support.id, sales.id, telegram.id])
    assert await _ticket_ids(queue="sales") == [sales.id]
    assert await _ticket_ids(status="open") == sorted([sales.id, telegram.id])
    assert await _ticket_ids(channel="telegram") == [telegram.id]
    assert await _ticket_ids(**{"from": "2000-01-01", "to": "2000-01-02"}) == []


@pytest.mark.parametrize("q", ['"', "NEAR(a b)", "a & b | !c", "x:*", "'; DROP TABLE messages; --", "((", "*"])
async def test_query_syntax_typed_by_an_agent_never_breaks_the_search(desk_client, headers, make_ticket, q) -> None:
    await make_ticket("a b c x messages", handle="ivy")
    response = await desk_client.get("/api/search", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "refund", "queue": "nowhere"},
        {"q": "refund", "status": "sleeping"},
        {"q": "refund", "channel": "fax"},
        {"q": "refund", "from": "yesterday"},
        {"q": "refund", "from": "2026-02-01", "to": "2026-01-01"},
        {"q": "refund", "limit": "0"},
        {"q": "refund", "limit": "101"},
        {"q": "   "},
    ],
)
async def test_bad_search_requests_are_422_with_the_reason(desk_client, headers, params) -> None:
    response = await desk_client.get("/api/search", params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_search_needs_a_token(desk_client) -> None:
    assert (await desk_client.get("/api/search", params={"q": "refund"})).status_code == 401


async def test_erased_text_is_not_found(desk_client, headers, make_ticket, db) -> None:
    ticket = await make_ticket("my address is 12 Elm Street", handle="jo")
    assert (await desk_client.get("/api/search", params={"q": "Elm"}, headers=headers)).json()["messages"]
    await erase_contacts(db, [ticket.contact_id])
    assert (await desk_client.get("/api/search", params={"q": "Elm"}, headers=headers)).json()["messages"] == []


async def test_messages_written_later_are_found(db) -> None:
    """The index follows every insert (trigger on SQLite, expression index on PostgreSQL)."""
    recorded = await actions.record_inbound(db, inbound("late parcel 55", sender="77", handle="kim"))
    found = await search.search(db, "parcel 55")
    assert [m.id for m in found.messages] == [recorded.message_id]


def test_query_words_keep_what_was_typed_and_drop_punctuation_only_words() -> None:
    assert query_words("  order   #A-10293 ** ") == ["order", "#A-10293"]
    assert query_words(" ".join(f"w{n}" for n in range(20))) == [f"w{n}" for n in range(8)]


# --- paginated queues ------------------------------------------------------------------------------


async def test_queue_api_pages_agree_with_the_total(desk_client, headers, make_ticket) -> None:
    ids = [(await make_ticket(f"problem {n}", handle=f"p{n}")).id for n in range(7)]
    first = await desk_client.get("/api/tickets", params={"limit": 3}, headers=headers)
    assert first.headers["X-Total-Count"] == "7"
    assert [t["id"] for t in first.json()] == ids[:3]
    seen = [t["id"] for t in first.json()]
    link = first.headers["Link"]
    while link:
        url = link.split(";")[0].strip("<>")
        page = await desk_client.get(url, headers=headers)
        seen += [t["id"] for t in page.json()]
        link = page.headers.get("Link", "")
    assert seen == ids


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "501"}, {"offset": "-1"}, {"offset": "2147483648"}])
async def test_queue_api_refuses_bad_pages(desk_client, headers, params) -> None:
    assert (await desk_client.get("/api/tickets", params=params, headers=headers)).status_code == 422


async def test_erasing_leaves_no_erased_word_in_the_sqlite_index(sqlite_database_url: str) -> None:
    """FTS5 records a deletion as a marker beside the old entry; erasure merges them so the word is gone."""
    from sqlalchemy import text

    from storage.db import Database
    from tests.fixtures.storage import empty_all_tables

    db = Database(sqlite_database_url)
    try:
        await empty_all_tables(db)
        recorded = await actions.record_inbound(db, inbound("I live at Zanzibarweg 9", sender="88", handle="lou"))
        async with db.session() as session:
            contact_id = (
                await session.execute(text("SELECT contact_id FROM messages WHERE id = :i"), {"i": recorded.message_id})
            ).scalar_one()
        await erase_contacts(db, [contact_id])
        async with db.session() as session:
            blocks = (await session.execute(text("SELECT block FROM messages_fts_data"))).scalars().all()
        assert not any(b"zanzibarweg" in bytes(block) for block in blocks if block)
    finally:
        await db.dispose()
