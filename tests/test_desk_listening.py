"""The Listening API and page, on SQLite and PostgreSQL: the stream filtered and paged, every action, every
refusal (4xx) with its reason, and the page's forms."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from storage.actions import listening as actions
from tests.fixtures.desk import api_login

_ids = itertools.count(700_000)


def _item(text: str = "frontdesk checkout is broken", *, rule: str = "brand", sentiment: str = "negative",
          category: str = "support", addressed: bool = False, dms: bool | None = None) -> actions.NewListeningItem:
    post = str(next(_ids))
    return actions.NewListeningItem(
        platform_post_id=post, conversation_ref=post, rule=rule, author_id="5151", author_handle="carol",
        author_name="Carol", author_accepts_dms=dms, text=text, posted_at=datetime.now(UTC), category=category,
        intent="complaint" if category == "support" else None, confidence=0.9, sentiment=sentiment,
        addressed_brand=addressed,
    )


@pytest.fixture
async def agent(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def test_the_stream_is_filtered_by_rule_category_and_sentiment_and_paged(db, desk_client, agent) -> None:  # type: ignore[no-untyped-def]
    await actions.record_items(db, [_item(rule="brand") for _ in range(3)])
    await actions.record_items(db, [_item(rule="checkout", sentiment="positive", category="smalltalk")])
    everything = (await desk_client.get("/api/listening", headers=agent)).json()
    assert len(everything["items"]) == 4 and everything["next_before"] is None
    by_rule = (await desk_client.get("/api/listening?rule=checkout", headers=agent)).json()["items"]
    assert [i["rule"] for i in by_rule] == ["checkout"] and by_rule[0]["sentiment"] == "positive"
    assert len((await desk_client.get("/api/listening?category=support", headers=agent)).json()["items"]) == 3
    assert len((await desk_client.get("/api/listening?sentiment=negative&rule=brand", headers=agent)).json()["items"]) == 3
    first = (await desk_client.get("/api/listening?limit=3", headers=agent)).json()
    assert len(first["items"]) == 3 and first["next_before"] == first["items"][-1]["id"]
    rest = (await desk_client.get(f"/api/listening?limit=3&before={first['next_before']}", headers=agent)).json()
    assert len(rest["items"]) == 1 and rest["next_before"] is None
    item = everything["items"][0]
    assert item["public_reply_allowed"] is False and "mentions it or quotes" in item["public_reply_refusal"]
    assert item["url"] == f"https://x.com/carol/status/{item['post_id']}"


@pytest.mark.parametrize(
    "query",
    ["rule=Not%20A%20Rule", "category=complaints", "sentiment=angry", "status=open", "before=0", "limit=101",
     "limit=0", "before=99999999999"],
)
async def test_a_bad_filter_is_a_422(desk_client, agent, query: str) -> None:  # type: ignore[no-untyped-def]
    response = await desk_client.get(f"/api/listening?{query}", headers=agent)
    assert response.status_code == 422, response.text


async def test_without_a_token_every_route_is_401(desk_client) -> None:  # type: ignore[no-untyped-def]
    assert (await desk_client.get("/api/listening")).status_code == 401
    for action in ("ticket", "note", "dismiss", "reply"):
        assert (await desk_client.post(f"/api/listening/1/{action}", json={})).status_code == 401


@pytest.mark.parametrize(("action", "body"), [("ticket", None), ("note", {"note": "x"}), ("dismiss", None),
                                              ("reply", {"text": "hi"})])
async def test_an_unknown_item_is_a_404(desk_client, agent, action: str, body) -> None:  # type: ignore[no-untyped-def]
    response = await desk_client.post(f"/api/listening/424242/{action}", headers=agent, json=body)
    assert response.status_code == 404 and "does not exist" in response.json()["detail"]


@pytest.mark.parametrize("bad_id", ["0", "abc", str(2**31)])
async def test_a_bad_id_is_a_422(desk_client, agent, bad_id: str) -> None:  # type: ignore[no-untyped-def]
    assert (await desk_client.post(f"/api/listening/{bad_id}/dismiss", headers=agent)).status_code == 422


async def test_ticket_note_dismiss(db, desk_app, desk_client, agent) -> None:  # type: ignore[no-untyped-def]
    from bot.taxonomy import load_taxonomy

    desk_app.state.desk.taxonomy = load_taxonomy()  # the shipped one: complaint -> support
    [a, b] = await actions.record_items(db, [_item(), _item()])
    noted = await desk_client.post(f"/api/listening/{a}/note", headers=agent, json={"note": "watch this"})
    assert noted.status_code == 200 and noted.json()["status"] == "noted" and noted.json()["note"] == "watch this"
    for bad in ({"note": ""}, {"note": "x" * 2001}, {}):
        assert (await desk_client.post(f"/api/listening/{a}/note", headers=agent, json=bad)).status_code == 422
    ticketed = await desk_client.post(f"/api/listening/{a}/ticket", headers=agent)
    assert ticketed.status_code == 201, ticketed.text
    body = ticketed.json()
    assert body["item"]["status"] == "ticketed" and body["item"]["ticket_id"] == body["ticket_id"]
    ticket = (await desk_client.get(f"/api/tickets/{body['ticket_id']}", headers=agent)).json()
    assert ticket["queue"] == "support"
    refused = await desk_client.post(f"/api/listening/{a}/dismiss", headers=agent)
    assert refused.status_code == 409 and refused.json()["status"] == "ticketed"
    dismissed = await desk_client.post(f"/api/listening/{b}/dismiss", headers=agent)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"


async def test_a_public_reply_where_x_allows_it_and_refusals_that_say_why(db, desk_client, agent) -> None:  # type: ignore[no-untyped-def]
    [addressed, dm_ok, closed] = await actions.record_items(
        db, [_item("@frontdesk checkout ate my card", addressed=True), _item(dms=True), _item(dms=False)]
    )
    sent = await desk_client.post(f"/api/listening/{addressed}/reply", headers=agent,
                                  json={"text": "Sorry! Looking into it now."})
    assert sent.status_code == 201, sent.text
    assert sent.json()["via"] == "public"
    too_long = await desk_client.post(f"/api/listening/{addressed}/reply", headers=agent, json={"text": "x" * 281})
    assert too_long.status_code == 422 and "280" in too_long.text

    refused = await desk_client.post(f"/api/listening/{dm_ok}/reply", headers=agent, json={"text": "hello"})
    assert refused.status_code == 409
    assert refused.json()["dm_offered"] is True and "mentions it or quotes" in refused.json()["detail"]
    by_dm = await desk_client.post(f"/api/listening/{dm_ok}/reply", headers=agent, json={"text": "hello", "via": "dm"})
    assert by_dm.status_code == 201 and by_dm.json()["via"] == "dm"

    nowhere = await desk_client.post(f"/api/listening/{closed}/reply", headers=agent, json={"text": "hello"})
    assert nowhere.status_code == 409 and nowhere.json()["dm_offered"] is False
    no_dm = await desk_client.post(f"/api/listening/{closed}/reply", headers=agent, json={"text": "hi", "via": "dm"})
    assert no_dm.status_code == 409 and "does not accept DMs" in no_dm.json()["detail"]
    for bad in ({"text": ""}, {"text": "hi", "via": "fax"}, {}):
        assert (await desk_client.post(f"/api/listening/{closed}/reply", headers=agent, json=bad)).status_code == 422


async def test_a_reply_on_a_ticket_another_agent_holds_is_403(db, desk_client, agent, make_agent) -> None:  # type: ignore[no-untyped-def]
    await make_agent("bob@example.com", "Bob")
    bob = await api_login(desk_client, "bob@example.com")
    [item] = await actions.record_items(db, [_item("@frontdesk help", addressed=True)])
    assert (await desk_client.post(f"/api/listening/{item}/reply", headers=bob, json={"text": "on it"})).status_code == 201
    taken = await desk_client.post(f"/api/listening/{item}/reply", headers=agent, json={"text": "me too"})
    assert taken.status_code == 403 and "Bob" in taken.json()["detail"]


async def test_the_routes_are_documented(desk_client) -> None:  # type: ignore[no-untyped-def]
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    assert paths["/api/listening"]["get"]["summary"]
    for action in ("ticket", "note", "dismiss", "reply"):
        assert paths[f"/api/listening/{{item_id}}/{action}"]["post"]["summary"]


async def test_the_page_lists_filters_and_acts(db, desk_client, make_agent) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.desk import DEFAULT_PASSWORD

    await make_agent("ann@example.com", "Ann")
    login = await desk_client.get("/login")
    csrf = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    await desk_client.post("/login", data={"email": "ann@example.com", "password": DEFAULT_PASSWORD, "csrf_token": csrf})
    [quiet, loud] = await actions.record_items(db, [_item("meh, frontdesk is fine", sentiment="neutral", dms=True),
                                                    _item("frontdesk lost my order!!!")])
    page = await desk_client.get("/listening")
    assert page.status_code == 200 and 'data-item="%d"' % quiet in page.text and "No public reply" in page.text
    assert "Send DM" in page.text and "No DM either" in page.text
    only = await desk_client.get("/listening?sentiment=neutral")
    assert 'data-item="%d"' % quiet in only.text and 'data-item="%d"' % loud not in only.text
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = await desk_client.post(f"/listening/{loud}/dismiss", data={"csrf_token": csrf, "filters": "sentiment=negative"})
    assert done.status_code == 303 and done.headers["location"] == "/listening?sentiment=negative"
    refused = await desk_client.post(f"/listening/{loud}/reply", data={"csrf_token": csrf, "text": "hi"})
    assert refused.status_code == 303
    assert "Not sent:" in (await desk_client.get("/listening")).text
    forged = await desk_client.post(f"/listening/{quiet}/dismiss", data={"csrf_token": "nope"})
    assert forged.status_code == 403
    gone = await desk_client.post("/listening/424242/ticket", data={"csrf_token": csrf})
    assert gone.status_code == 303 and "does not exist" in (await desk_client.get("/listening")).text
    assert (await desk_client.get("/listening?rule=nope&sentiment=angry&before=x")).status_code == 200
