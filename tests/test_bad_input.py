"""Bad input gets a clear 4xx, never a 500, and costs no other message (issue 17, "Bad input").

Each test sends what an attacker or a broken client sent by hand: ids past the INTEGER range, lone
surrogates and NULs in JSON, forms and query strings, JSON nested past the parser's depth, and sender names
the store cannot hold.  All against the real store (SQLite and PostgreSQL), through HTTP on the real apps.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from telegram import Bot

from bot.channels.telegram.customers import CustomerInbox
from bot.channels.telegram.updates import UpdateDispatcher
from bot.channels.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH, telegram_webhook_router
from bot.channels.x import DmPoller
from bot.channels.x.webhook import SIGNATURE_HEADER, make_x_webhook_router, sign
from desk.inputs import MAX_ROW_ID
from frontdesk.core import metrics
from frontdesk.core.settings import SANDBOX_X_CONSUMER_SECRET
from sandbox.server import RunningSandbox
from sandbox.x.webhook import payload_for
from storage.db import Database
from storage.models import Contact, Message, OutboxItem
from tests.fixtures.desk import DEFAULT_PASSWORD, api_login
from tests.fixtures.telegram_channel import TelegramHarness
from tests.fixtures.x_channel import x_settings

PAST_THE_RANGE = [MAX_ROW_ID + 1, 2**63 - 1, 2**63, 2**64, 10**30]
ID_ROUTES = [  # (method, path with {id}, JSON body)
    ("GET", "/api/tickets/{id}", None),
    ("POST", "/api/tickets/{id}/claim", None),
    ("POST", "/api/tickets/{id}/reply", {"text": "hi"}),
    ("POST", "/api/tickets/{id}/notes", {"text": "hi"}),
    ("POST", "/api/tickets/{id}/handback", None),
    ("POST", "/api/tickets/{id}/resolve", None),
    ("POST", "/api/tickets/{id}/assign", {"agent_id": 1}),
    ("POST", "/api/messages/{id}/intent", {"intent": "greet"}),
]


async def _count(db: Database, table: type) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def _openapi_validation_error(client: httpx.AsyncClient) -> dict[str, Any]:
    schema = (await client.get("/openapi.json")).json()
    return schema["components"]["schemas"]["ValidationError"]


def _assert_documented_422(response: httpx.Response, error_schema: dict[str, Any], *loc: str | int) -> None:
    """A 422 in exactly the documented shape, echoing nothing; `loc` (if given): the first error's."""
    assert response.status_code == 422, (response.status_code, response.text)
    response.content.decode("utf-8")  # strict: an answer holding a lone surrogate could not be sent at all
    body = response.json()
    assert set(body) == {"detail"} and body["detail"], body
    for error in body["detail"]:
        jsonschema.validate(error, error_schema)
        assert set(error) == {"loc", "msg", "type"}, error  # no `input`, no `ctx`
    if loc:
        assert body["detail"][0]["loc"] == list(loc), body


# --- ids ---------------------------------------------------------------------------------------------


async def test_ids_past_what_the_store_holds_are_422_in_the_api(desk_client, make_agent, make_ticket) -> None:
    admin = await make_agent(admin=True)
    headers = await api_login(desk_client, admin.email)
    ticket = await make_ticket()
    error_schema = await _openapi_validation_error(desk_client)
    for method, path, body in ID_ROUTES:
        for bad in [*PAST_THE_RANGE, 0, -1]:
            response = await desk_client.request(method, path.format(id=bad), headers=headers, json=body)
            _assert_documented_422(response, error_schema)
            assert response.json()["detail"][0]["loc"][0] == "path", (method, path, bad)
        # The largest id the store can hold is a plain "no such row", on PostgreSQL too.
        largest = await desk_client.request(method, path.format(id=MAX_ROW_ID), headers=headers, json=body)
        assert largest.status_code == 404, (method, path, largest.text)
    for bad in PAST_THE_RANGE:
        assigned = await desk_client.post(
            f"/api/tickets/{ticket.id}/assign", headers=headers, json={"agent_id": bad}
        )
        _assert_documented_422(assigned, error_schema, "body", "agent_id")
    listed = await desk_client.get("/api/tickets", headers=headers)
    assert listed.status_code == 200 and listed.json()[0]["status"] == "queued"  # nothing happened to it


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def _sign_in(client: httpx.AsyncClient, email: str) -> str:
    """Sign in through the form; the session's CSRF token."""
    form = await client.get("/login")
    signed_in = await client.post(
        "/login",
        data={"email": email, "password": DEFAULT_PASSWORD, "csrf_token": _csrf(form.text), "next": ""},
    )
    assert signed_in.status_code == 303, signed_in.text
    return _csrf((await client.get(signed_in.headers["location"], follow_redirects=True)).text)


async def test_pages_for_ids_past_what_the_store_holds_are_the_not_found_page(
    desk_client, make_agent, make_ticket
) -> None:
    agent = await make_agent()
    ticket = await make_ticket()
    token = await _sign_in(desk_client, agent.email)
    for bad in [*PAST_THE_RANGE, "abc"]:
        for path in (f"/tickets/{bad}", f"/tickets/{bad}/parts"):
            page = await desk_client.get(path)
            assert page.status_code == 404, (path, page.status_code, page.text[:200])
            assert "does not exist" in page.text and page.headers["content-type"].startswith("text/html")
        claim = await desk_client.post(f"/tickets/{bad}/claim", data={"csrf_token": token})
        assert claim.status_code == 404, (bad, claim.text[:200])
        intent = await desk_client.post(
            f"/tickets/{ticket.id}/messages/{bad}/intent", data={"csrf_token": token, "intent": "greet"}
        )
        assert intent.status_code == 404, (bad, intent.text[:200])
    assert (await desk_client.get(f"/tickets/{ticket.id}")).status_code == 200


# --- text the store cannot hold ----------------------------------------------------------------------


async def test_lone_surrogates_and_nuls_anywhere_in_json_are_422_and_store_nothing(
    desk_client, make_agent, make_ticket, db
) -> None:
    agent = await make_agent()
    headers = {**await api_login(desk_client, agent.email), "content-type": "application/json"}
    ticket = await make_ticket()
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    error_schema = await _openapi_validation_error(desk_client)
    messages_before = await _count(db, Message)

    # Raw bodies: `\ud800` is how JSON spells a lone surrogate (json.dumps would spell it the same way).
    token = await desk_client.post(
        "/api/token", content=b'{"email": "ann\\ud800@example.com", "password": "p\\udfffw"}',
        headers={"content-type": "application/json"},
    )
    _assert_documented_422(token, error_schema, "body", "email")
    assert len(token.json()["detail"]) == 2  # the password too; neither is repeated back
    cases = [
        ("reply", b'{"text": "where is it \\ud83d"}', ("body", "text")),
        ("reply", b'{"text": "nul \\u0000 here"}', ("body", "text")),
        ("notes", b'{"text": "\\udc00 at the start"}', ("body", "text")),
        ("notes", b'{"text": "fine", "extra": [1, {"deep": "\\u0000"}]}', ("body", "extra", 1, "deep")),
        ("reply", b'{"text": "fine", "\\ud800": 1}', ("body",)),  # a key: the object that holds it
    ]
    for action, body, loc in cases:
        response = await desk_client.post(f"/api/tickets/{ticket.id}/{action}", content=body, headers=headers)
        _assert_documented_422(response, error_schema, *loc)
        assert "cannot be stored" in response.json()["detail"][0]["msg"]
    assert await _count(db, Message) == messages_before and await _count(db, OutboxItem) == 0

    # A surrogate *pair* is an ordinary character (an emoji): accepted.
    ok = await desk_client.post(f"/api/tickets/{ticket.id}/notes", content=b'{"text": "\\ud83d\\udce6"}',
                                headers=headers)
    assert ok.status_code == 201, ok.text


async def test_nul_in_a_query_string_or_a_form_is_422(desk_client, make_agent, make_ticket) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    await make_ticket()
    error_schema = await _openapi_validation_error(desk_client)
    for query in ("category=%00", "queue=sup%00port", "cat%00egory=x"):
        response = await desk_client.get(f"/api/tickets?{query}", headers=headers)
        _assert_documented_422(response, error_schema)
        assert response.json()["detail"][0]["loc"][0] == "query"
    # The sign-in form: on PostgreSQL the e-mail went into a query PostgreSQL refused (a 500).
    form = await desk_client.get("/login")
    signed = await desk_client.post("/login", data={"email": "ann\x00@example.com", "password": "x",
                                                    "csrf_token": "whatever"})
    assert form.status_code == 200 and signed.status_code == 422, signed.text[:300]
    assert signed.json()["detail"][0]["loc"] == ["body", "email"]


async def test_422_bodies_echo_no_input_and_match_the_documented_schema(
    desk_client, make_agent, make_ticket
) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await make_ticket()
    await desk_client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    error_schema = await _openapi_validation_error(desk_client)
    # What /openapi.json documents is exactly what comes back.
    assert set(error_schema["properties"]) == {"loc", "msg", "type"}
    assert error_schema["additionalProperties"] is False

    secret_text = "do-not-echo-" * 10_000  # over the 100,000-character limit
    too_long = await desk_client.post(
        f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": secret_text}
    )
    _assert_documented_422(too_long, error_schema, "body", "text")
    assert "do-not-echo" not in too_long.text and len(too_long.content) < 1000
    password = await desk_client.post("/api/token", json={"email": "x", "password": "hunter2-secret"})
    _assert_documented_422(password, error_schema, "body", "email")
    assert "hunter2" not in password.text
    # 422s a route decides itself have the same shape (they used to be {"detail": "..."}).
    bogus = await desk_client.get("/api/tickets?status=bogus", headers=headers)
    _assert_documented_422(bogus, error_schema, "query")
    blank = await desk_client.post(f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": "   "})
    _assert_documented_422(blank, error_schema, "body", "text")
    assert "empty" in blank.json()["detail"][0]["msg"]


# --- webhooks ------------------------------------------------------------------------------------------


DEEP_BODIES = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]


def _x_app(db: Database, sb: RunningSandbox) -> tuple[FastAPI, Any]:
    router = make_x_webhook_router(db, x_settings(sb), sb.x.brand.id)
    app = FastAPI()
    app.include_router(router)
    return app, router.x_webhook_handler  # type: ignore[attr-defined]


def _signed(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", SIGNATURE_HEADER: sign(SANDBOX_X_CONSUMER_SECRET, body)}


async def test_deeply_nested_json_is_400_on_the_x_webhook(db: Database, x_sandbox: RunningSandbox) -> None:
    app, _ = _x_app(db, x_sandbox)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http:
        for body in DEEP_BODIES:
            response = await http.post("/webhooks/x", content=body, headers=_signed(body))
            assert response.status_code == 400 and "nested" in response.json()["error"]
    assert await _count(db, Message) == 0


async def test_the_x_webhook_answers_other_methods_and_bodies_with_4xx(db: Database, x_sandbox: RunningSandbox) -> None:
    """What an attacker can send besides X's two requests: each a 4xx naming the problem, nothing stored."""
    app, handler = _x_app(db, x_sandbox)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http:
        for method in ("PUT", "DELETE", "PATCH"):
            assert (await http.request(method, "/webhooks/x")).status_code == 405
        missing = await http.get("/webhooks/x")
        assert missing.status_code == 400 and "crc_token" in missing.json()["error"]
        unsigned = await http.post("/webhooks/x", content=b"{}", headers={"content-type": "application/json"})
        assert unsigned.status_code == 403
        for body, why in ((b"not json", "not JSON"), (b"[1, 2]", "JSON object")):
            response = await http.post("/webhooks/x", content=body, headers=_signed(body))
            assert response.status_code == 400 and why in response.json()["error"]
    assert handler.rejected == 1
    assert await _count(db, Message) == 0


def _update(update_id: Any, user_id: int, text: str, first_name: str = "Ann") -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": 7, "date": 1764000000,
        "chat": {"id": user_id, "type": "private", "first_name": first_name},
        "from": {"id": user_id, "is_bot": False, "first_name": first_name}, "text": text}}


async def test_deeply_nested_or_misshapen_json_is_400_on_the_telegram_webhook(db: Database) -> None:
    secret = "webhook-secret_for-the-test"
    bot = Bot("123456:test-token-never-used-on-the-network")
    dispatcher = UpdateDispatcher(db, 123456, CustomerInbox(db))
    app = FastAPI()
    app.include_router(telegram_webhook_router(bot, dispatcher.dispatch, secret))
    headers = {SECRET_HEADER: secret, "content-type": "application/json"}
    misshapen = [
        json.dumps(_update("not-a-number", 4242, "hi")).encode(),  # used to reach the dispatcher: a 500
        json.dumps({"update_id": 1, "message": "a string"}).encode(),
        json.dumps({"update_id": 2, "message": {"message_id": 1, "date": 1, "chat": []}}).encode(),
        b"[1, 2, 3]",
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http:
        for body in [*DEEP_BODIES, *misshapen]:
            response = await http.post(WEBHOOK_PATH, content=body, headers=headers)
            assert response.status_code == 400, (body[:60], response.status_code)
        good = await http.post(WEBHOOK_PATH, json=_update(10, 4242, "where is my order?"), headers=headers)
        assert good.status_code == 200
    async with db.session() as session:
        assert (await session.execute(select(Message.text))).scalars().all() == ["where is my order?"]


def _metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_x_webhook_payload_with_unstorable_text_keeps_every_message(
    db: Database, x_sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    state = x_sandbox.x
    eve = state.add_dm("eve", "my parcel\x00 never came")
    carol = state.add_dm("carol", "can I pay by invoice?")
    payload = payload_for(state, "dm", eve)
    payload["direct_message_events"] += payload_for(state, "dm", carol)["direct_message_events"]
    payload["users"].update(payload_for(state, "dm", carol)["users"])
    payload["users"][eve.sender_id]["name"] = "Eve \ud800 \x00Smith"  # a lone surrogate and a NUL
    no_id = {"type": "message_create", "message_create": {"sender_id": "42", "message_data": {"text": "hi"}}}
    payload["direct_message_events"] += ["not an event", no_id]
    body = json.dumps(payload).encode()  # ensure_ascii: the surrogate travels as \ud800, as X would send it
    fields = ("text", "sender_name")
    repaired = {f: _metric("frontdesk_inbound_repaired_total", channel="x", field=f) for f in fields}
    skipped = _metric("frontdesk_inbound_skipped_total", channel="x", reason="malformed_dm")

    app, handler = _x_app(db, x_sandbox)
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http:
        response = await http.post("/webhooks/x", content=body, headers=_signed(body))
    assert response.status_code == 200 and response.json()["recorded"] == 2, response.text

    async with db.session() as session:
        stored = dict((await session.execute(select(Message.platform_message_id, Message.text))).all())
        names = dict((await session.execute(select(Contact.handle, Contact.display_name))).all())
    assert stored == {eve.id: "my parcel never came", carol.id: "can I pay by invoice?"}
    assert names["eve"] == "Eve \ufffd Smith" and names["carol"] == "carol"
    for field in ("text", "sender_name"):
        assert _metric("frontdesk_inbound_repaired_total", channel="x", field=field) == repaired[field] + 1
    assert _metric("frontdesk_inbound_skipped_total", channel="x", reason="malformed_dm") == skipped + 2
    assert handler.skipped == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(eve.id in w and "sender_name" in w and "repaired" in w for w in warnings), warnings
    assert not any("Smith" in w or "parcel" in w for w in warnings), "the log must not carry the content"


async def test_an_x_poller_page_with_a_nul_is_stored_and_the_page_moves_on(
    db: Database, x_sandbox: RunningSandbox, x_client: Any
) -> None:
    state = x_sandbox.x
    eve = state.add_dm("eve", "hello\x00 anyone?")
    state.user_by_username("eve").name = "Eve\x00"  # type: ignore[union-attr]
    carol = state.add_dm("carol", "is the shop open on Sunday?")
    poller = DmPoller(db, x_client, state.brand.id)
    assert await poller.poll_once() == 2  # used to raise on every poll: the page never moved on
    assert await poller.poll_once() == 0
    async with db.session() as session:
        stored = dict((await session.execute(select(Message.platform_message_id, Message.text))).all())
        names = dict((await session.execute(select(Contact.handle, Contact.display_name))).all())
    assert stored == {eve.id: "hello anyone?", carol.id: "is the shop open on Sunday?"}
    assert names["eve"] == "Eve"


async def test_a_telegram_message_with_unstorable_text_is_stored_repaired(tg: TelegramHarness) -> None:
    # Through the emulator and the real poller: Telegram passes such names and texts on.  (In-process:
    # the control API's HTTP client cannot even encode a lone surrogate.)
    bad = tg.sandbox.emulator.user_message(
        chat_id=4343, sender={"id": 4343, "username": "zed", "first_name": "Z\ud800ed"}, text="order\x00 late"
    )
    good = await tg.control.message(4444, "thanks")
    stored = await tg.customer_message(f"4343:{bad['message_id']}")
    assert stored.text == "order late"
    await tg.customer_message(f"4444:{good['message_id']}")
    async with tg.db.session() as session:
        query = select(Contact.display_name).where(Contact.handle == "zed")
        name = (await session.execute(query)).scalar_one()
    assert name == "Z\ufffded"
