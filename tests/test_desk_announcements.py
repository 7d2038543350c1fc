"""Announcements through the desk's JSON API and pages, on SQLite and PostgreSQL: admins write, preview and
send; agents see progress; every refusal says why."""

from __future__ import annotations

import re

import pytest

from storage.actions import record_inbound
from storage.actions.consent import opt_in, opt_out
from storage.actions.registrations import register
from storage.db import Database
from tests.fixtures.desk import DEFAULT_PASSWORD, api_login
from tests.store_helpers import dm

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EVENT = "meetup-berlin-2027-01"  # in the shipped content/events.yml


@pytest.fixture
async def admin(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("root@example.com", "Rita Admin", admin=True)
    return await api_login(desk_client, "root@example.com")


@pytest.fixture
async def agent(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


async def _kept_posted(db: Database, n: int, *, stop: int = 0) -> list[int]:
    ids = [(await record_inbound(db, dm("hi", sender=str(800 + i), handle=f"k{i}"))).contact_id for i in range(n)]
    for contact in ids:
        await opt_in(db, contact)
    for contact in ids[:stop]:
        await opt_out(db, contact)
    return ids


async def test_an_admin_previews_writes_and_sends_and_an_agent_follows_the_progress(
    desk_client, admin, agent, db
) -> None:
    await _kept_posted(db, 4, stop=1)
    body = {"text": "Our spring sale starts Monday!", "audience": "opted_in"}
    preview = await desk_client.post("/api/announcements/preview", headers=admin, json=body)
    assert preview.status_code == 200, preview.text
    seen = preview.json()
    assert (seen["recipients"], seen["by_channel"]) == (3, {"x": 3})  # the one who said stop is left out
    assert seen["estimated_cost_usd"] == pytest.approx(3 * 0.015)  # DM Interaction: Create, x_prices.yml
    assert seen["estimated_duration"] == "at once"  # 3 DMs fit in one X window at the default pace
    assert seen["text"].endswith('Reply "stop" to get no more announcements.')

    created = await desk_client.post("/api/announcements", headers=admin, json=body)
    assert created.status_code == 201, created.text
    announcement = created.json()
    assert announcement["status"] == "draft"
    sent = await desk_client.post(f"/api/announcements/{announcement['id']}/send", headers=admin)
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "sending" and sent.json()["progress"]["pending"] == 3

    seen_by_agent = await desk_client.get(f"/api/announcements/{announcement['id']}", headers=agent)
    assert seen_by_agent.status_code == 200 and seen_by_agent.json()["progress"]["total"] == 3
    report = (await desk_client.get(f"/api/announcements/{announcement['id']}/report", headers=agent)).json()
    assert report["failures"] == [] and report["announcement"]["id"] == announcement["id"]
    listed = (await desk_client.get("/api/announcements", headers=agent)).json()
    assert [a["id"] for a in listed] == [announcement["id"]]


async def test_an_events_preview_counts_its_registrants_and_names_those_who_said_stop(desk_client, admin, db) -> None:
    contacts = await _kept_posted(db, 3)
    for contact in contacts[:2]:
        await register(db, contact, EVENT)
    await opt_out(db, contacts[0])
    seen = (await desk_client.post("/api/announcements/preview", headers=admin,
                                   json={"text": "Doors open 18:00", "audience": "event", "event": EVENT})).json()
    assert (seen["recipients"], seen["opted_out"]) == (1, 1)


async def test_a_large_audience_takes_the_windows_the_caps_allow(desk_client, admin, db) -> None:
    await _kept_posted(db, 25)
    seen = (await desk_client.post("/api/announcements/preview", headers=admin,
                                   json={"text": "News", "audience": "opted_in"})).json()
    # 10 per 15-minute window by default: 25 DMs take the first window's, then two more windows.
    assert seen["estimated_duration_s"] == 2 * 900 and seen["estimated_duration"] == "about 30 min"


# --- every refusal ------------------------------------------------------------------------------------------
async def test_an_agent_may_not_write_preview_or_send(desk_client, admin, agent) -> None:
    body = {"text": "News", "audience": "opted_in"}
    created = (await desk_client.post("/api/announcements", headers=admin, json=body)).json()
    for method, path, payload in (
        ("post", "/api/announcements", body),
        ("post", "/api/announcements/preview", body),
        ("get", f"/api/announcements/{created['id']}/preview", None),
        ("post", f"/api/announcements/{created['id']}/send", None),
    ):
        answer = await desk_client.request(method, path, headers=agent, json=payload)
        assert answer.status_code == 403, (path, answer.text)
        assert "only an admin" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ({"text": "   ", "audience": "opted_in"}, ["body", "text"], "no text"),
        ({"text": "x" * 4_080, "audience": "opted_in"}, ["body", "text"], "Telegram takes at most 4,096"),
        ({"text": "x" * 5_000, "audience": "opted_in"}, ["body", "text"], "at most 4096"),
        ({"text": "News", "audience": "event", "event": "no-such-event"}, ["body", "event"], "no event 'no-such-event'"),
        ({"text": "News", "audience": "everyone"}, ["body", "audience"], "opted_in"),
    ],
)
async def test_a_draft_that_cannot_be_sent_is_a_422_naming_the_field(desk_client, admin, body, where, says) -> None:
    for path in ("/api/announcements", "/api/announcements/preview"):
        answer = await desk_client.post(path, headers=admin, json=body)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == where and says in error["msg"]


async def test_sending_twice_is_a_409_and_sends_nothing_more(desk_client, admin, db) -> None:
    await _kept_posted(db, 2)
    created = (await desk_client.post("/api/announcements", headers=admin,
                                      json={"text": "News", "audience": "opted_in"})).json()
    assert (await desk_client.post(f"/api/announcements/{created['id']}/send", headers=admin)).status_code == 202
    again = await desk_client.post(f"/api/announcements/{created['id']}/send", headers=admin)
    assert again.status_code == 409 and "sent once" in again.json()["detail"]
    assert (await desk_client.get(f"/api/announcements/{created['id']}", headers=admin)).json()["progress"]["total"] == 2


async def test_an_unknown_announcement_is_a_404(desk_client, admin) -> None:
    for method, path in (("get", "/api/announcements/999"), ("get", "/api/announcements/999/report"),
                         ("get", "/api/announcements/999/preview"), ("post", "/api/announcements/999/send")):
        assert (await desk_client.request(method, path, headers=admin)).status_code == 404, path


async def test_without_a_token_nothing_is_shown(desk_client) -> None:
    assert (await desk_client.get("/api/announcements")).status_code == 401


async def test_the_routes_are_documented(desk_client) -> None:
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    for path in ("/api/announcements", "/api/announcements/preview", "/api/announcements/{announcement_id}",
                 "/api/announcements/{announcement_id}/send", "/api/announcements/{announcement_id}/report"):
        assert path in paths and all(op.get("summary") for op in paths[path].values())


# --- the pages ----------------------------------------------------------------------------------------------
async def _sign_in(client, email: str) -> str:  # type: ignore[no-untyped-def]
    form = await client.get("/login")
    csrf = CSRF.search(form.text)
    assert csrf
    response = await client.post("/login", data={"email": email, "password": DEFAULT_PASSWORD,
                                                 "csrf_token": csrf.group(1), "next": ""})
    assert response.status_code == 303
    page = await client.get("/announcements")
    token = CSRF.search(page.text)
    assert token
    return token.group(1)


async def test_an_agent_sees_the_page_but_no_form_and_cannot_post(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    csrf = await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/announcements")
    assert page.status_code == 200 and "Write an announcement" not in page.text
    refused = await desk_client.post("/announcements", data={"csrf_token": csrf, "text": "hi", "audience": "opted_in"})
    assert refused.status_code == 303
    assert "Only an admin" in (await desk_client.get("/announcements")).text
    assert "No announcements yet" in (await desk_client.get("/announcements")).text


async def test_a_page_post_without_the_csrf_token_is_refused(desk_client, make_agent) -> None:
    await make_agent("root@example.com", "Rita", admin=True)
    await _sign_in(desk_client, "root@example.com")
    refused = await desk_client.post("/announcements", data={"text": "hi", "audience": "opted_in"})
    assert refused.status_code == 403


async def test_the_pages_write_preview_and_refuse_a_second_send(desk_client, make_agent, db) -> None:
    await make_agent("root@example.com", "Rita", admin=True)
    await _kept_posted(db, 3, stop=1)
    csrf = await _sign_in(desk_client, "root@example.com")
    written = await desk_client.post("/announcements", data={"csrf_token": csrf, "text": "Big news", "audience": "opted_in"})
    assert written.status_code == 303
    page = await desk_client.get(written.headers["location"])
    assert 'id="preview-recipients">2<' in page.text and "$0.03" in page.text and "Send to 2 recipients" in page.text
    send_path = written.headers["location"] + "/send"
    assert (await desk_client.post(send_path, data={"csrf_token": csrf})).status_code == 303
    assert "Sending to 2 recipients" in (await desk_client.get(written.headers["location"])).text
    await desk_client.post(send_path, data={"csrf_token": csrf})
    assert "sent already" in (await desk_client.get(written.headers["location"])).text
    bad = await desk_client.post("/announcements", data={"csrf_token": csrf, "text": "x", "audience": "event:nope"})
    assert bad.status_code == 303 and "in content/events.yml" in (await desk_client.get("/announcements")).text
    assert (await desk_client.get("/announcements/999")).status_code == 404


async def test_a_tag_audience_is_those_kept_posted_among_the_tagged(desk_client, admin, db, make_agent) -> None:
    from storage.actions import escalate
    from storage.actions.tags import add_tag

    tagger = await make_agent("tag@example.com", "Tess")
    kept, not_asked = await _kept_posted(db, 2)
    stranger = (await record_inbound(db, dm("hi", sender="899", handle="quiet"))).contact_id
    from sqlalchemy import select

    from storage.models import Conversation

    async with db.session() as s:
        conversations = {c.contact_id: c.id for c in (await s.execute(select(Conversation))).scalars()}
    await opt_out(db, not_asked)
    for contact in (kept, not_asked, stranger):  # the last never asked to be kept posted
        ticket = await escalate(db, conversations[contact], queue="support")
        await add_tag(db, ticket.id, "vip", agent_id=tagger.id)
    seen = (await desk_client.post("/api/announcements/preview", headers=admin,
                                   json={"text": "VIP early access", "audience": "tag", "tag": "VIP"})).json()
    assert seen["recipients"] == 1
    await _sign_in(desk_client, "root@example.com")
    assert "a ticket tagged vip" in (await desk_client.get("/announcements")).text  # offered on the page
    bad = await desk_client.post("/api/announcements", headers=admin,
                                 json={"text": "x", "audience": "tag", "tag": "not a tag!"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "tag"]
