"""Issue 17: sign-ins that end, tokens that can be revoked, throttled logins, hashing off the event loop.

Every test runs against SQLite and PostgreSQL (the `db` fixture), through real HTTP on the ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import itsdangerous
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from desk import create_desk_app
from desk.app import SESSION_COOKIE
from desk.auth import TokenSigner
from frontdesk.core.settings import Settings
from storage.agents import create_agent, set_active
from storage.db import Database
from storage.models import Agent, AgentRole, AgentSession, LoginFailure, utcnow
from tests.fixtures.desk import DEFAULT_PASSWORD, TEST_SECRET_KEY, DeskServer, api_login

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
WRONG = "not the password"


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _client(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://desk.test")


@pytest.fixture
async def other_client(desk_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser on the same desk (its own cookie jar)."""
    async with _client(desk_app) as client:
        yield client


async def _form_login(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": _csrf(form.text), "next": ""}
    )


async def _sign_in(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> str:
    """Sign in through the form; returns the session cookie's value (what a thief would copy)."""
    response = await _form_login(client, email, password)
    assert response.status_code == 303, response.text
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    return cookie


async def _opens_desk(app: FastAPI, cookie: str) -> bool:
    """Does this saved cookie, replayed from another machine, open the queue page?"""
    async with _client(app) as thief:
        thief.cookies.set(SESSION_COOKIE, cookie)
        page = await thief.get("/queues/all")
        if page.status_code == 200:
            return True
        assert page.status_code == 303 and "/login" in page.headers["location"]
        assert (await thief.get("/live")).status_code == 401  # the live feed refuses it too
        return False


def _bearer(token_headers: dict[str, str]) -> str:
    return token_headers["Authorization"].removeprefix("Bearer ")


async def _api_works(client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    response = await client.get("/api/tickets", headers=headers)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


# --- sessions end server-side ------------------------------------------------------------------------


async def test_a_cookie_saved_before_logout_does_not_open_the_desk_afterwards(
    desk_app, desk_client, make_agent
) -> None:
    await make_agent("ann@example.com", "Ann")
    saved = await _sign_in(desk_client, "ann@example.com")
    assert await _opens_desk(desk_app, saved)
    csrf = _csrf((await desk_client.get("/queues/all")).text)
    assert (await desk_client.post("/logout", data={"csrf_token": csrf})).status_code == 303
    assert not await _opens_desk(desk_app, saved)


async def test_logout_ends_only_that_browsers_session(desk_app, desk_client, other_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    laptop = await _sign_in(desk_client, "ann@example.com")
    phone = await _sign_in(other_client, "ann@example.com")
    assert laptop != phone
    csrf = _csrf((await desk_client.get("/queues/all")).text)
    await desk_client.post("/logout", data={"csrf_token": csrf})
    assert not await _opens_desk(desk_app, laptop)
    assert await _opens_desk(desk_app, phone)


async def test_a_cookie_naming_an_agent_id_is_not_a_sign_in(desk_app, make_agent) -> None:
    """The cookie carries a session id the store must know; an agent id alone (the old format) opens nothing."""
    agent = await make_agent("ann@example.com", "Ann")
    payload = b64encode(json.dumps({"agent_id": agent.id, "csrf": "x"}).encode())
    minted = itsdangerous.TimestampSigner(TEST_SECRET_KEY).sign(payload).decode()
    assert not await _opens_desk(desk_app, minted)


async def test_the_cookies_session_id_is_not_an_api_token(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    cookie = await _sign_in(desk_client, "ann@example.com")
    session = json.loads(b64decode(cookie.rsplit(".", 2)[0]))
    assert set(session) <= {"sid", "csrf", "flash"}  # nothing that names the agent
    for value in session.values():
        response = await desk_client.get("/api/tickets", headers={"Authorization": f"Bearer {value}"})
        assert response.status_code == 401


async def test_a_session_past_its_server_side_expiry_is_refused(desk_app, desk_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    cookie = await _sign_in(desk_client, "ann@example.com")
    token = await api_login(desk_client, "ann@example.com")
    async with db.transaction() as session:
        await session.execute(update(AgentSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not await _opens_desk(desk_app, cookie)
    assert not await _api_works(desk_client, token)


async def test_a_session_in_use_is_renewed_server_side_and_in_the_cookie(desk_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    await _sign_in(desk_client, "ann@example.com")
    soon = utcnow() + timedelta(minutes=5)  # less than half of the 12 h left
    async with db.transaction() as session:
        await session.execute(update(AgentSession).values(expires_at=soon))
    page = await desk_client.get("/queues/all")
    assert page.status_code == 200 and SESSION_COOKIE in page.headers.get("set-cookie", "")
    async with db.session() as session:
        renewed = (await session.execute(AgentSession.__table__.select())).one().expires_at  # type: ignore[attr-defined]
    assert renewed.replace(tzinfo=None) > (utcnow() + timedelta(hours=11)).replace(tzinfo=None)
    again = await desk_client.get("/queues/all")
    assert SESSION_COOKIE not in again.headers.get("set-cookie", "")  # renewed once, not on every request


# --- tokens can be revoked ---------------------------------------------------------------------------


async def test_delete_token_revokes_the_presented_token_only(desk_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    script = await api_login(desk_client, "ann@example.com")
    laptop = await api_login(desk_client, "ann@example.com")
    assert _bearer(script) != _bearer(laptop)
    revoked = await desk_client.delete("/api/token", headers=script)
    assert revoked.status_code == 204
    assert not await _api_works(desk_client, script)
    assert await _api_works(desk_client, laptop)
    again = await desk_client.delete("/api/token", headers=script)
    assert again.status_code == 401  # revoked means gone: it cannot even revoke itself twice
    secret = TokenSigner(TEST_SECRET_KEY, 3600).secret(_bearer(script))
    assert secret
    async with db.session() as session:
        rows = (await session.execute(AgentSession.__table__.select())).all()  # type: ignore[attr-defined]
    assert rows and all(secret not in str(row) for row in rows)  # the store keeps only a hash of it


async def test_revoke_all_ends_every_token_and_session_of_that_agent_only(
    desk_app, desk_client, other_client, make_agent
) -> None:
    await make_agent("ann@example.com", "Ann")
    await make_agent("bob@example.com", "Bob")
    first = await api_login(desk_client, "ann@example.com")
    second = await api_login(desk_client, "ann@example.com")
    browser = await _sign_in(other_client, "ann@example.com")
    bob = await api_login(desk_client, "bob@example.com")
    answer = await desk_client.post("/api/tokens/revoke-all", headers=first)
    assert answer.status_code == 200 and answer.json() == {"revoked": 3}
    assert not await _api_works(desk_client, first)
    assert not await _api_works(desk_client, second)
    assert not await _opens_desk(desk_app, browser)
    assert await _api_works(desk_client, bob)
    assert await _api_works(desk_client, await api_login(desk_client, "ann@example.com"))  # signing in again works


async def test_the_revocation_routes_are_documented(desk_client) -> None:
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    assert "delete" in paths["/api/token"] and "204" in paths["/api/token"]["delete"]["responses"]
    assert "post" in paths["/api/tokens/revoke-all"]
    assert "429" in paths["/api/token"]["post"]["responses"]


# --- disabling an agent or changing a password ends everything they hold -----------------------------


async def test_disabling_ends_sessions_and_tokens_for_good(desk_app, desk_client, other_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    token = await api_login(desk_client, "ann@example.com")
    cookie = await _sign_in(other_client, "ann@example.com")
    await set_active(db, "ann@example.com", False)
    await set_active(db, "ann@example.com", True)
    # Re-enabled, Ann signs in afresh; what she (or a thief) held before the disable stays dead.
    assert not await _api_works(desk_client, token)
    assert not await _opens_desk(desk_app, cookie)
    assert await _api_works(desk_client, await api_login(desk_client, "ann@example.com"))


async def test_disable_from_the_cli_ends_every_session(cli, desk_app, desk_client, other_client, db) -> None:
    await cli("agents", "add", "--email", "dan@example.com", "--name", "Dan", "--password-stdin",
              input="dans-password\n")
    token = await api_login(desk_client, "dan@example.com", "dans-password")
    cookie = await _sign_in(other_client, "dan@example.com", "dans-password")
    result = await cli("agents", "disable", "dan@example.com")
    assert result.exit_code == 0, result.output
    assert "ended 2 sessions" in result.output
    assert not await _api_works(desk_client, token)
    assert not await _opens_desk(desk_app, cookie)


async def test_set_password_ends_every_session_and_only_the_new_password_works(
    cli, desk_app, desk_client, other_client
) -> None:
    await cli("agents", "add", "--email", "eve@example.com", "--name", "Eve", "--password-stdin",
              input="old-password-1\n")
    token = await api_login(desk_client, "eve@example.com", "old-password-1")
    cookie = await _sign_in(other_client, "eve@example.com", "old-password-1")
    result = await cli("agents", "set-password", "eve@example.com", "--password-stdin", input="new-password-2\n")
    assert result.exit_code == 0, result.output
    assert "new-password-2" not in result.output and "ended 2 sessions" in result.output
    assert not await _api_works(desk_client, token)
    assert not await _opens_desk(desk_app, cookie)
    old = await desk_client.post("/api/token", json={"email": "eve@example.com", "password": "old-password-1"})
    assert old.status_code == 401
    assert await _api_works(desk_client, await api_login(desk_client, "eve@example.com", "new-password-2"))


async def test_set_password_refuses_a_short_password_and_an_unknown_agent(cli) -> None:
    await cli("agents", "add", "--email", "eve@example.com", "--name", "Eve", "--password-stdin",
              input="old-password-1\n")
    short = await cli("agents", "set-password", "eve@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    unknown = await cli("agents", "set-password", "nobody@example.com", "--password-stdin", input="long-enough-1\n")
    assert unknown.exit_code == 1 and "frontdesk agents list" in unknown.output


async def test_end_sessions_signs_an_agent_out_everywhere_without_disabling(cli, desk_client) -> None:
    await cli("agents", "add", "--email", "fay@example.com", "--name", "Fay", "--password-stdin",
              input="fays-password\n")
    token = await api_login(desk_client, "fay@example.com", "fays-password")
    result = await cli("agents", "end-sessions", "fay@example.com")
    assert result.exit_code == 0 and "ended 1 session" in result.output
    assert not await _api_works(desk_client, token)
    assert await _api_works(desk_client, await api_login(desk_client, "fay@example.com", "fays-password"))


# --- login throttling --------------------------------------------------------------------------------


def _retry_after(response: httpx.Response, window_s: int = 900) -> int:
    assert response.status_code == 429, response.text
    seconds = int(response.headers["retry-after"])
    assert 0 < seconds <= window_s
    return seconds


async def _age_failures(db: Database, by: timedelta) -> None:
    """Let time pass for the throttle (its state is rows in the store, shared by every desk process)."""
    async with db.transaction() as session:
        await session.execute(update(LoginFailure).values(failed_at=LoginFailure.failed_at - by))


async def test_thirty_wrong_passwords_then_the_right_one_is_refused_while_locked(desk_client, make_agent, db) -> None:
    await make_agent("ann@example.com", "Ann")
    answers = [
        await desk_client.post("/api/token", json={"email": "ann@example.com", "password": WRONG}) for _ in range(30)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 25
    _retry_after(answers[-1])
    right = await desk_client.post("/api/token", json={"email": "ann@example.com", "password": DEFAULT_PASSWORD})
    _retry_after(right)
    assert "access_token" not in right.json()
    assert "try again in" in right.json()["detail"]

    await _age_failures(db, timedelta(minutes=15, seconds=1))  # the window has passed
    assert (await desk_client.post("/api/token", json={"email": "ann@example.com", "password": DEFAULT_PASSWORD})
            ).status_code == 200


async def test_a_burst_of_concurrent_guesses_gets_no_more_tries_than_the_limit(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    answers = await asyncio.gather(*(
        desk_client.post("/api/token", json={"email": "ann@example.com", "password": WRONG}) for _ in range(30)
    ))
    assert sorted(a.status_code for a in answers) == [401] * 5 + [429] * 25


async def test_the_sign_in_page_is_throttled_too(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    codes = [(await _form_login(desk_client, "ann@example.com", WRONG)).status_code for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2
    locked = await _form_login(desk_client, "ann@example.com")
    _retry_after(locked)
    assert "Too many failed sign-ins" in locked.text and "<form" in locked.text
    assert (await desk_client.get("/queues/all")).status_code == 303  # not signed in


async def test_the_page_and_the_api_share_one_account_counter(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    for _ in range(3):
        assert (await _form_login(desk_client, "ann@example.com", WRONG)).status_code == 401
    for _ in range(2):
        assert (await desk_client.post("/api/token", json={"email": "ann@example.com", "password": WRONG})
                ).status_code == 401
    _retry_after(await _form_login(desk_client, "ann@example.com"))


async def test_a_success_resets_the_account_counter(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    for _ in range(3):
        for _ in range(4):
            assert (await desk_client.post("/api/token", json={"email": "ann@example.com", "password": WRONG})
                    ).status_code == 401
        await api_login(desk_client, "ann@example.com")


async def test_unknown_accounts_lock_like_real_ones(desk_client) -> None:
    """Otherwise the lock would tell an attacker which e-mails are agents."""
    codes = [
        (await desk_client.post("/api/token", json={"email": "nobody@example.com", "password": WRONG})).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]


async def test_one_address_guessing_many_accounts_is_throttled_but_others_are_not(
    desk_app, desk_client, make_agent
) -> None:
    await make_agent("ann@example.com", "Ann")
    for n in range(20):  # 20 accounts, one guess each: no account reaches its limit
        response = await desk_client.post("/api/token", json={"email": f"guess{n}@example.com", "password": WRONG})
        assert response.status_code == 401
    _retry_after(await desk_client.post("/api/token", json={"email": "ann@example.com", "password": DEFAULT_PASSWORD}))
    _retry_after(await _form_login(desk_client, "ann@example.com"))
    async with _client(desk_app, address="10.1.2.3") as elsewhere:
        assert (await elsewhere.post("/api/token", json={"email": "ann@example.com", "password": DEFAULT_PASSWORD})
                ).status_code == 200


async def test_two_desk_processes_share_the_throttle(db: Database, desk_settings: Settings, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    async with _client(create_desk_app(db, desk_settings)) as desk_a, \
            _client(create_desk_app(db, desk_settings), address="10.9.9.9") as desk_b:
        for _ in range(5):
            assert (await desk_a.post("/api/token", json={"email": "ann@example.com", "password": WRONG})
                    ).status_code == 401
        _retry_after(await desk_b.post("/api/token", json={"email": "ann@example.com", "password": DEFAULT_PASSWORD}))


async def test_the_limits_are_settings(db: Database, desk_settings: Settings, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    strict = desk_settings.model_copy(update={"desk_login_max_failures_per_account": 2, "desk_login_window_s": 60})
    async with _client(create_desk_app(db, strict)) as client:
        for _ in range(2):
            assert (await client.post("/api/token", json={"email": "ann@example.com", "password": WRONG})
                    ).status_code == 401
        _retry_after(await client.post("/api/token", json={"email": "ann@example.com", "password": WRONG}), 60)


# --- argon2 off the event loop -----------------------------------------------------------------------


async def test_sixteen_logins_at_production_cost_leave_the_desk_responsive(desk_server: DeskServer, db: Database) -> None:
    """The desk under uvicorn in its own process, pinged like /healthz every 20 ms while 16 agents sign in."""
    # Real argon2 parameters (~0.1 s and 64 MiB per check), not the cheap ones the other tests use.
    first = await create_agent(db, email="agent0@example.com", name="Agent 0", password=DEFAULT_PASSWORD)
    async with db.transaction() as session:
        for n in range(1, 16):
            session.add(Agent(email=f"agent{n}@example.com", name=f"Agent {n}", password_hash=first.password_hash,
                              role=AgentRole.agent, created_at=utcnow()))

    pings: list[float] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=desk_server.base_url, limits=limits, timeout=60) as client:

        async def ping() -> None:
            while not done.is_set():
                started = time.perf_counter()
                assert (await client.get("/login")).status_code == 200
                pings.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        await client.get("/login")  # the first page compiles its templates: not what is measured here
        pinger = asyncio.create_task(ping())
        try:
            answers = await asyncio.gather(*(
                client.post("/api/token", json={"email": f"agent{n}@example.com", "password": DEFAULT_PASSWORD})
                for n in range(16)
            ))
        finally:
            done.set()
            await pinger
    assert [a.status_code for a in answers] == [200] * 16
    # Hashing on the event loop made nearly every ping wait for a check in progress (median 0.13 s here, the
    # time of one argon2 check); off the loop a ping takes about 10 ms. The median leaves room for the
    # scheduler of a machine shared with other test runs, and the worst case is bounded loosely.
    ordered = sorted(pings)
    median = ordered[len(ordered) // 2]
    assert len(ordered) >= 10 and median < 0.05, f"pings took {median:.3f} s (median) while 16 agents signed in"
    assert ordered[-1] < 1.0, f"a ping took {ordered[-1]:.3f} s while 16 agents signed in"
