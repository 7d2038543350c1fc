"""Ticket tags through the API and the pages, on SQLite and PostgreSQL: tag, untag, filter queues by a tag."""

from __future__ import annotations

import re

import pytest

from frontdesk.core.vocabulary import MAX_TAGS_PER_TICKET
from tests.fixtures.desk import api_login
from tests.test_desk_pages import _sign_in


@pytest.fixture
async def agent(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def _tag(client, headers, ticket_id: int, tag: str):  # type: ignore[no-untyped-def]
    return await client.post(f"/api/tickets/{ticket_id}/tags", headers=headers, json={"tag": tag})


async def test_an_agent_tags_a_ticket_and_the_ticket_json_carries_it(desk_client, agent, make_ticket) -> None:
    ticket = await make_ticket("where is my order")
    first = await _tag(desk_client, agent, ticket.id, " VIP ")
    assert first.status_code == 201, first.text
    assert first.json() == {"ticket_id": ticket.id, "tags": ["vip"], "changed": True}
    again = await _tag(desk_client, agent, ticket.id, "vip")
    assert again.status_code == 200 and again.json()["changed"] is False
    await _tag(desk_client, agent, ticket.id, "order")
    shown = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=agent)).json()
    assert shown["tags"] == ["order", "vip"]
    assert [e["detail"] for e in shown["events"] if e["action"] == "tagged"] == [{"tag": "vip"}, {"tag": "order"}]
    listed = (await desk_client.get("/api/tickets", headers=agent)).json()
    assert listed[0]["tags"] == ["order", "vip"]


async def test_removing_a_tag_and_removing_it_again(desk_client, agent, make_ticket) -> None:
    ticket = await make_ticket()
    await _tag(desk_client, agent, ticket.id, "vip")
    removed = await desk_client.delete(f"/api/tickets/{ticket.id}/tags/VIP", headers=agent)
    assert removed.status_code == 200 and removed.json() == {"ticket_id": ticket.id, "tags": [], "changed": True}
    again = await desk_client.delete(f"/api/tickets/{ticket.id}/tags/vip", headers=agent)
    assert again.status_code == 200 and again.json()["changed"] is False
    events = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=agent)).json()["events"]
    assert [e["action"] for e in events if "tag" in e["action"]] == ["tagged", "untagged"]


async def test_the_list_filters_by_tag_and_pages_and_counts_agree(desk_client, agent, make_ticket) -> None:
    tagged = []
    for n in range(5):
        ticket = await make_ticket(f"order problem {n}")
        if n % 2 == 0:
            await _tag(desk_client, agent, ticket.id, "vip")
            tagged.append(ticket.id)
    page = await desk_client.get("/api/tickets", params={"tag": "VIP", "limit": 2}, headers=agent)
    assert page.status_code == 200
    assert page.headers["X-Total-Count"] == "3"
    assert [t["id"] for t in page.json()] == tagged[:2]
    assert 'rel="next"' in page.headers["Link"] and "tag=VIP" in page.headers["Link"]
    rest = await desk_client.get("/api/tickets", params={"tag": "vip", "limit": 2, "offset": 2}, headers=agent)
    assert [t["id"] for t in rest.json()] == tagged[2:] and "Link" not in rest.headers
    none = await desk_client.get("/api/tickets", params={"tag": "nobody-has-it"}, headers=agent)
    assert none.json() == [] and none.headers["X-Total-Count"] == "0"


async def test_every_refusal_of_the_tags_api(desk_client, agent, make_ticket) -> None:
    ticket = await make_ticket()
    # No token: 401, nothing written.
    assert (await desk_client.post(f"/api/tickets/{ticket.id}/tags", json={"tag": "vip"})).status_code == 401
    assert (await desk_client.delete(f"/api/tickets/{ticket.id}/tags/vip")).status_code == 401
    # Unknown ticket: 404.
    assert (await _tag(desk_client, agent, 999_999, "vip")).status_code == 404
    assert (await desk_client.delete("/api/tickets/999999/tags/vip", headers=agent)).status_code == 404
    # A bad tag: 422 naming the field and the rule, without echoing the value.
    for bad in ["two words", "vip!", "", "x" * 33, "x" * 200]:
        refused = await _tag(desk_client, agent, ticket.id, bad)
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"] == ["body", "tag"]
        assert bad not in refused.text or bad == ""
    refused = await desk_client.delete(f"/api/tickets/{ticket.id}/tags/vip!", headers=agent)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["path", "tag"]
    assert (await desk_client.get("/api/tickets", params={"tag": "no spaces"}, headers=agent)).status_code == 422
    assert (await _tag(desk_client, agent, ticket.id, None)).status_code == 422
    # The limit: 409 naming it.
    for n in range(MAX_TAGS_PER_TICKET):
        assert (await _tag(desk_client, agent, ticket.id, f"t{n}")).status_code == 201
    full = await _tag(desk_client, agent, ticket.id, "one-more")
    assert full.status_code == 409 and f"{MAX_TAGS_PER_TICKET} tags" in full.json()["detail"]
    shown = (await desk_client.get(f"/api/tickets/{ticket.id}", headers=agent)).json()
    assert len(shown["tags"]) == MAX_TAGS_PER_TICKET and "one-more" not in shown["tags"]


async def test_the_routes_are_documented(desk_client) -> None:
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    assert paths["/api/tickets/{ticket_id}/tags"]["post"]["summary"]
    assert paths["/api/tickets/{ticket_id}/tags/{tag}"]["delete"]["summary"]
    assert any(p["name"] == "tag" for p in paths["/api/tickets"]["get"]["parameters"])


# --- the pages -----------------------------------------------------------------------------------------


async def test_the_ticket_page_tags_and_untags_and_the_queue_filters_by_the_tag(
    desk_client, make_agent, make_ticket
) -> None:
    await make_agent("ann@example.com", "Ann")
    vip = await make_ticket("my order is late", subject="late order")
    other = await make_ticket("hello", subject="just saying hi")
    csrf = await _sign_in(desk_client, "ann@example.com")
    added = await desk_client.post(f"/tickets/{vip.id}/tags", data={"csrf_token": csrf, "tag": "VIP"})
    assert added.status_code == 303
    page = (await desk_client.get(f"/tickets/{vip.id}")).text
    assert 'href="/queues/all?tag=vip"' in page and "Remove tag vip" in page

    queue = (await desk_client.get("/queues/all", params={"tag": "vip"})).text
    assert "late order" in queue and "just saying hi" not in queue
    assert "tagged #vip" in queue and "1–1 of 1" in queue
    # The tabs count the tagged tickets and keep the filter.
    assert re.search(r'href="/queues/support\?tag=vip"[^>]*>\s*Support <span class="count" aria-label="1 open tagged vip">1<', queue)
    unfiltered = (await desk_client.get("/queues/all")).text
    assert "just saying hi" in unfiltered and "#vip" in unfiltered  # queue rows show the tags

    removed = await desk_client.post(f"/tickets/{vip.id}/tags/vip/delete", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert "late order" not in (await desk_client.get("/queues/all", params={"tag": "vip"})).text
    assert other.id


async def test_tag_forms_refuse_without_the_csrf_token_and_explain_a_bad_tag(
    desk_client, make_agent, make_ticket
) -> None:
    await make_agent("ann@example.com", "Ann")
    ticket = await make_ticket()
    csrf = await _sign_in(desk_client, "ann@example.com")
    for data in ({"tag": "vip"}, {"tag": "vip", "csrf_token": "forged"}):
        assert (await desk_client.post(f"/tickets/{ticket.id}/tags", data=data)).status_code == 403
    await desk_client.post(f"/tickets/{ticket.id}/tags", data={"csrf_token": csrf, "tag": "keep"})
    assert (await desk_client.post(f"/tickets/{ticket.id}/tags/keep/delete", data={})).status_code == 403
    assert "#keep" in (await desk_client.get(f"/tickets/{ticket.id}")).text

    bad = await desk_client.post(
        f"/tickets/{ticket.id}/tags", data={"csrf_token": csrf, "tag": "two words"}, headers={"HX-Request": "true"}
    )
    assert bad.status_code == 200 and "1-32 letters" in bad.text and bad.headers["HX-Retarget"] == "#flash"
    missing = await desk_client.post("/tickets/999999/tags", data={"csrf_token": csrf, "tag": "vip"})
    assert missing.status_code == 404


async def test_tag_pages_need_a_sign_in(desk_client, make_ticket) -> None:
    ticket = await make_ticket()
    response = await desk_client.post(f"/tickets/{ticket.id}/tags", data={"tag": "vip"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
