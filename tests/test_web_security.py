"""Issue 17, hardening of every HTTP app we serve (desk/web_security.py, desk/docs.py).

Bounded bodies (413 before the body is read: a 200 MB upload no longer grows the server), security headers
and a CSP without inline script (the desk still works in chromium under it), path-only redirects whatever
Host a client sends, trusted Host names, `Secure` cookies and no public /docs or /metrics outside sandbox
mode, Swagger UI and ReDoc served from this process, and a /healthz that tells no exception text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import SecretStr

from desk import create_desk_app
from frontdesk.app.http import Readiness, add_routes, create_http_app
from frontdesk.core import metrics
from frontdesk.core.settings import PROJECT_ROOT, Settings
from storage.agents import create_agent
from storage.db import Database
from tests.fixtures.desk import DEFAULT_PASSWORD, TEST_SECRET_KEY, start_desk_server, stop_desk_server

MiB = 1024 * 1024
REAL_X = {
    "x_consumer_key": SecretStr("real-consumer-key"),
    "x_consumer_secret": SecretStr("real-consumer-secret"),
    "x_access_token": SecretStr("real-access-token"),
    "x_access_token_secret": SecretStr("real-access-token-secret"),
}


def _settings(tmp_path: Path, *, real: bool = False, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "secret_key": SecretStr(TEST_SECRET_KEY), "var_dir": tmp_path / "var",
        "taxonomy_path": tmp_path / "no-taxonomy.yml",
    }
    return Settings(_env_file=None, **base, **(REAL_X if real else {}), **values)  # type: ignore[call-arg]


@pytest.fixture
async def store(sqlite_database_url: str) -> AsyncIterator[Database]:
    db = Database(sqlite_database_url)
    try:
        yield db
    finally:
        await db.dispose()


def _client(app: Any, host: str = "desk.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


# --- request bodies -------------------------------------------------------------------------------------


def _peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


async def test_a_200_mb_streamed_body_is_refused_with_413_and_the_server_does_not_grow(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    server = await start_desk_server(sqlite_database_url, tmp_path)

    async def two_hundred_mb() -> AsyncIterator[bytes]:
        chunk = b'{"email": "' + b"a" * (256 * 1024)
        for _ in range(200 * 4):
            yield chunk

    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            # Warm up the code paths a body takes (JSON parsing, validation, the 422), so the peak below is
            # what the big body adds.
            assert (await client.post("/api/token", json={"email": "a@b.c"})).status_code == 422
            before = _peak_rss_bytes(server.process.pid)
            response = await client.post("/api/token", content=two_hundred_mb(),
                                         headers={"content-type": "application/json"})  # chunked: no length
            assert response.status_code == 413
            assert "FRONTDESK_HTTP_MAX_BODY_BYTES" in response.json()["detail"]
            assert (await _declare_200_gb(server.base_url)).startswith(b"HTTP/1.1 413 ")
            # The server is still fine, and its peak memory did not take the body in (before: +1.3 GB).
            assert (await client.get("/login")).status_code == 200
        grown = _peak_rss_bytes(server.process.pid) - before
        assert grown < 30 * MiB, f"the desk's peak RSS grew by {grown / MiB:.0f} MiB"
    finally:
        stop_desk_server(server)


async def _declare_200_gb(base_url: str) -> bytes:
    """The status line of a POST that declares 200 GB and sends 2 bytes (a client h11 would not let lie)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"POST /api/token HTTP/1.1\r\nHost: desk\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n{}" % (200 * 1024 * 1024 * 1024))
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def _raw_post(
    app: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """POST `chunks` to `app` as a server would hand them over, whatever Content-Length says."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"desk.test"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("desk.test", 80), "state": {}}
    last = len(chunks) - 1
    queue = [{"type": "http.request", "body": c, "more_body": i < last} for i, c in enumerate(chunks)]
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], dict(message["headers"])
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer


def _counting_app(settings: Settings) -> tuple[FastAPI, list[int]]:
    """A process app with a webhook and an API route that record how many body bytes reached them."""
    seen: list[int] = []
    router = APIRouter()

    async def _count(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            seen.append(size)
        return {"size": size}

    router.add_api_route("/webhooks/count", _count, methods=["POST"])
    router.add_api_route("/api/count", _count, methods=["POST"])
    return create_http_app(Readiness(), routers=[router], settings=settings), seen


async def test_a_content_length_lie_stops_at_the_limit_and_the_app_never_holds_more(tmp_path: Path) -> None:
    app, seen = _counting_app(_settings(tmp_path))
    chunks = [b"x" * (64 * 1024)] * 48  # 3 MiB behind a Content-Length that says 10 bytes
    answer = await _raw_post(app, "/api/count", chunks, [(b"content-length", b"10")])
    assert answer["status"] == 413
    assert max(seen) <= MiB  # the route read up to the limit, then reading stopped

    seen.clear()
    huge = await _raw_post(app, "/api/count", [b"x"], [(b"content-length", str(2 * MiB).encode())])
    assert huge["status"] == 413 and seen == []  # refused on the declaration, before the route ran

    for bad in (b"ten", b"-1"):
        assert (await _raw_post(app, "/api/count", [b"x"], [(b"content-length", bad)]))["status"] == 400


async def test_webhooks_get_their_own_larger_limit(tmp_path: Path) -> None:
    app, _ = _counting_app(_settings(tmp_path, webhook_max_body_bytes=3 * MiB))
    async with _client(app) as client:
        two_mib = b"x" * (2 * MiB)
        assert (await client.post("/webhooks/count", content=two_mib)).json() == {"size": 2 * MiB}
        assert (await client.post("/api/count", content=two_mib)).status_code == 413
        assert (await client.post("/webhooks/count", content=b"x" * (4 * MiB))).status_code == 413


# --- headers, CSP and redirects --------------------------------------------------------------------------


def _assert_hardened(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp, response.url
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, response.url
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


async def test_every_page_api_answer_and_health_check_carries_the_security_headers(
    store: Database, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    desk = create_desk_app(store, settings)
    app = create_http_app(Readiness(), desk_app=desk, settings=settings)
    async with _client(app) as client:
        for response in (
            await client.get("/login"),                       # a page
            await client.get("/queues/all"),                  # a redirect to sign in
            await client.get("/api/tickets"),                 # 401 JSON
            await client.get("/api/tickets/abc"),             # 401/422 JSON
            await client.get("/static/desk.js"),              # a static file
            await client.get("/no-such-page"),                # 404
            await client.get("/healthz"),                     # the process app's own route
            await client.get("/docs"),
        ):
            _assert_hardened(response)


def test_no_template_has_inline_script_or_event_handler_attributes() -> None:
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|\shx-on[:-]", re.IGNORECASE)
    found = {
        path.name: inline.findall(path.read_text())
        for path in (PROJECT_ROOT / "desk" / "templates").glob("*.html")
        if inline.search(path.read_text())
    }
    assert found == {}, "move these into desk/static/desk.js (the CSP blocks inline script)"


async def test_redirects_and_links_never_carry_the_host_a_client_sent(
    store: Database, tmp_path: Path
) -> None:
    app = create_desk_app(store, _settings(tmp_path))
    async with _client(app, host="evil.example") as client:
        bounce = await client.get("/queues/all")
        htmx = await client.get("/queues/all/rows", headers={"HX-Request": "true"})
        slash = await client.get("/queues/all/")  # Starlette's trailing-slash redirect
        login = await client.get("/login")
    assert bounce.headers["location"] == "/login?next=%2Fqueues%2Fall"
    assert htmx.headers["hx-redirect"].startswith("/login?next=")
    assert slash.status_code in (307, 308) and slash.headers["location"] == "/queues/all"
    assert "evil.example" not in login.text


# --- trusted hosts ----------------------------------------------------------------------------------------


async def test_trusted_hosts_refuse_other_names_but_let_probes_by_ip_through(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trusted_hosts="desk.example.com, *.brand.example")
    app = create_http_app(Readiness(), settings=settings)
    for host, status in [("desk.example.com", 200), ("DESK.example.com:8443", 200), ("eu.brand.example", 200),
                         ("10.1.2.3:8000", 200), ("[fd00::7]:8000", 200),
                         ("evil.example", 400), ("brand.example.evil", 400), ("desk.example.com.evil", 400)]:
        async with _client(app, host=host) as client:
            assert (await client.get("/healthz")).status_code == status, host
    open_app = create_http_app(Readiness(), settings=_settings(tmp_path))
    async with _client(open_app, host="anything.example") as client:
        assert (await client.get("/healthz")).status_code == 200  # not set: any host (sandbox default)


# --- production defaults: Secure cookie, /docs and /metrics ----------------------------------------------


async def _session_cookie(app: FastAPI) -> str:
    async with _client(app) as client:
        return (await client.get("/login")).headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("real", "override", "secure"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
    ids=["sandbox", "real-accounts", "real-but-overridden", "sandbox-but-asked"],
)
async def test_the_session_cookie_is_secure_by_default_with_real_accounts(
    store: Database, tmp_path: Path, real: bool, override: bool | None, secure: bool
) -> None:
    settings = _settings(tmp_path, real=real, desk_cookie_secure=override)
    cookie = await _session_cookie(create_desk_app(store, settings))
    assert ("; secure" in cookie) is secure and "httponly" in cookie


async def test_docs_and_metrics_are_not_public_with_real_accounts_unless_asked(
    store: Database, tmp_path: Path
) -> None:
    def process_app(settings: Settings) -> FastAPI:
        app = create_http_app(Readiness(), desk_app=create_desk_app(store, settings), settings=settings)
        add_routes(app, metrics.metrics_router())  # as `frontdesk run` does
        return app

    paths = ("/docs", "/redoc", "/openapi.json", "/metrics")
    async with _client(process_app(_settings(tmp_path, real=True))) as client:
        assert {p: (await client.get(p)).status_code for p in paths} == dict.fromkeys(paths, 404)
    asked = _settings(tmp_path, real=True, public_docs=True, public_metrics=True)
    async with _client(process_app(asked)) as client:
        assert {p: (await client.get(p)).status_code for p in paths} == dict.fromkeys(paths, 200)
    async with _client(process_app(_settings(tmp_path))) as client:  # sandbox mode: all public
        assert {p: (await client.get(p)).status_code for p in paths} == dict.fromkeys(paths, 200)


async def test_swagger_ui_and_redoc_come_from_this_server(store: Database, tmp_path: Path) -> None:
    async with _client(create_desk_app(store, _settings(tmp_path))) as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assert not re.search(r"(src|href)=\"(https?:)?//", html), f"{page} loads something from elsewhere"
            for asset in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", html):
                assert (await client.get(asset)).status_code == 200, asset
        redoc = await client.get("/redoc")
    # ReDoc injects its styles and runs a blob: worker: only its page allows that, never inline script.
    assert "style-src 'self' 'unsafe-inline'" in redoc.headers["content-security-policy"]
    assert "script-src 'self';" in redoc.headers["content-security-policy"]


# --- /healthz ---------------------------------------------------------------------------------------------


async def test_healthz_tells_no_exception_text_but_the_log_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def store_down() -> str | None:
        raise OSError("connect to db.internal:5432 as frontdesk failed: password authentication failed")

    readiness = Readiness()
    readiness.add("store", store_down)
    async with _client(create_http_app(readiness, settings=_settings(tmp_path))) as client:
        with caplog.at_level(logging.WARNING, logger="frontdesk.app.http"):
            response = await client.get("/healthz")
    assert response.status_code == 503
    assert "db.internal" not in response.text and "OSError" not in response.text
    assert response.json()["not_ready"] == {"store": "unreachable (the reason is in the server's log)"}
    assert "db.internal:5432" in caplog.text


# --- the desk in a real browser under the CSP -------------------------------------------------------------


@pytest.mark.browser
async def test_the_desk_and_the_api_docs_work_in_chromium_under_the_csp(  # type: ignore[no-untyped-def]
    browser, sqlite_database_url: str, tmp_path: Path, fast_password_hashing: None
) -> None:
    db = Database(sqlite_database_url)
    try:
        await create_agent(db, email="csp@example.com", name="Csp", password=DEFAULT_PASSWORD)
    finally:
        await db.dispose()
    server = await start_desk_server(sqlite_database_url, tmp_path)
    problems: list[str] = []
    try:
        page = await browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith((server.base_url, "blob:", "data:"))
                else problems.append(f"left the server: {r.url}"))

        await page.goto(f"{server.base_url}/login")
        await page.fill("#email", "csp@example.com")
        await page.fill("#password", DEFAULT_PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/queues/all")
        await page.wait_for_selector("body[data-live=on]")  # desk.js ran and the live feed connected
        await page.select_option("select[name=status]", "closed")  # filters submit on change (desk.js)
        await page.wait_for_url("**/queues/all?status=closed*")

        await page.goto(f"{server.base_url}/docs")
        await page.wait_for_selector(".opblock")  # Swagger UI started from static/swagger-init.js
        await page.goto(f"{server.base_url}/redoc")
        await page.wait_for_selector("h2:has-text(\"Exchange an agent\")")
        await asyncio.sleep(0.5)
    finally:
        stop_desk_server(server)
    # ReDoc's "powered by" logo points at its CDN; the CSP blocks it, which is the point.
    problems = [p for p in problems if "cdn.redoc.ly" not in p]
    assert problems == []
