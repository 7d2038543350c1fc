"""Issue 8: two `frontdesk desk` processes on one PostgreSQL database.

An agent connected to desk B sees, live, a ticket claimed through desk A; each desk serves /healthz and
/metrics, and the desk that did the work counts the claim, the first response and the resolution.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from frontdesk.core.settings import PROJECT_ROOT
from storage import actions
from storage.agents import create_agent
from storage.db import Database
from storage.models import AgentRole
from tests.fixtures.bot import eventually
from tests.fixtures.desk import DEFAULT_PASSWORD, TEST_SECRET_KEY, api_login, free_port, inbound
from tests.fixtures.storage import empty_all_tables

pytestmark = pytest.mark.postgres


async def _start_desk(database_url: str, tmp_path: Path, name: str) -> tuple[asyncio.subprocess.Process, str, Path]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update({
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_SECRET_KEY": TEST_SECRET_KEY,
        "FRONTDESK_VAR_DIR": str(tmp_path / "var"),
        "FRONTDESK_HTTP_PORT": str(port),
        "FRONTDESK_DESK_LIVE_POLL_S": "0.5",
        "FRONTDESK_LOG_JSON": "true",
    })
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "frontdesk", "desk", cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log,
        )
    return process, f"http://127.0.0.1:{port}", log_path


@pytest.fixture
async def two_desks(pg_database_url: str, tmp_path: Path) -> AsyncIterator[list[str]]:
    empty = Database(pg_database_url)  # the run's shared database: start from no rows, like the `db` fixture
    await empty_all_tables(empty)
    await empty.dispose()
    started = [await _start_desk(pg_database_url, tmp_path, n) for n in ("desk-a", "desk-b")]
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for process, url, log_path in started:

                async def healthy(url: str = url, process: asyncio.subprocess.Process = process,
                                  log_path: Path = log_path) -> bool | None:
                    if process.returncode is not None:
                        raise AssertionError(f"frontdesk desk exited: {log_path.read_text()[-3000:]}")
                    try:
                        return (await http.get(f"{url}/healthz")).status_code == 200 or None
                    except httpx.HTTPError:
                        return None

                await eventually(healthy, what=f"{url}/healthz answering 200", timeout_s=60)
        yield [url for _, url, _ in started]
    finally:
        for process, _, _ in started:
            if process.returncode is None:
                process.terminate()
        for process, _, _ in started:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        wanted = line.startswith(name) and line[len(name):len(name) + 1] in ("{", " ")
        if wanted and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_an_agent_on_one_desk_sees_live_what_happened_on_the_other(
    two_desks: list[str], pg_database_url: str, fast_password_hashing: None
) -> None:
    desk_a, desk_b = two_desks
    db = Database(pg_database_url)
    try:
        await create_agent(db, email="ann@example.com", name="Ann", password=DEFAULT_PASSWORD, role=AgentRole.agent)
        await create_agent(db, email="bob@example.com", name="Bob", password=DEFAULT_PASSWORD, role=AgentRole.agent)
        recorded = await actions.record_inbound(db, inbound("my order never arrived", sender="90001", handle="cus"))
        ticket = await actions.escalate(db, recorded.conversation_id, queue="support", category="support",
                                        reason="test")
    finally:
        await db.dispose()

    async with httpx.AsyncClient(base_url=desk_a, timeout=10) as a, httpx.AsyncClient(base_url=desk_b, timeout=None) as b:
        ann = await api_login(a, "ann@example.com")
        bob = await api_login(b, "bob@example.com")
        events: list[tuple[str, dict[str, object]]] = []
        ready = asyncio.Event()

        async def listen() -> None:
            async with b.stream("GET", "/live", headers=bob) as response:
                assert response.status_code == 200
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        events.append((event, json.loads(line[6:])))
                        if event == "ready":
                            ready.set()

        listener = asyncio.create_task(listen())
        try:
            await asyncio.wait_for(ready.wait(), 30)
            assert (await a.post(f"/api/tickets/{ticket.id}/claim", headers=ann)).status_code == 200

            async def seen_on_b() -> bool | None:
                return any(e == "tickets" and ticket.id in d.get("ids", []) for e, d in events) or None  # type: ignore[operator]

            await eventually(seen_on_b, what="desk B's live feed reporting the claim made on desk A", timeout_s=20)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

        detail = (await b.get(f"/api/tickets/{ticket.id}", headers=bob)).json()
        assert detail["status"] == "assigned"
        assert (await a.post(f"/api/tickets/{ticket.id}/reply", headers=ann, json={"text": "On it!"})).status_code == 202
        assert (await a.post(f"/api/tickets/{ticket.id}/resolve", headers=ann)).status_code == 200

        metrics_a = (await a.get("/metrics")).text
        metrics_b = (await b.get("/metrics")).text
    assert _metric(metrics_a, "frontdesk_tickets_claimed_total", queue="support") == 1
    assert _metric(metrics_a, "frontdesk_tickets_resolved_total", queue="support", outcome="resolved") == 1
    assert _metric(metrics_a, "frontdesk_first_response_seconds_count", queue="support") == 1
    assert _metric(metrics_b, "frontdesk_tickets_claimed_total", queue="support") == 0
    assert "frontdesk_build_info" in metrics_b


async def test_the_desk_role_records_webhook_events_and_runs_no_router_or_poller(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    """`frontdesk desk` with X webhooks on: X's pushes are recorded for the workers; it never polls or routes."""
    from sqlalchemy import select

    from frontdesk.app.roles import ROLE_DESK
    from frontdesk.app.supervisor import started
    from frontdesk.core.settings import Settings
    from sandbox.server import running_sandbox
    from sandbox.x.control_client import XSandboxControl
    from storage.models import Message
    from tests.fixtures.bot import CONTENT_DIR

    async with running_sandbox() as sandbox, XSandboxControl(sandbox.base_url) as control:
        settings = Settings(
            database_url=sqlite_database_url, x_api_base=sandbox.base_url, x_webhook_enabled=True, http_port=0,
            content_dir=CONTENT_DIR, var_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
            nlu_url="",
        )
        async with started(settings, ROLE_DESK, say=lambda _m: None) as running:
            assert running.worker is None and running.outbox is None and running.leaders == []
            assert running.channel is not None and running.channel.pollers == []
            await control.webhook(f"{running.http_url}/webhooks/x")  # X's CRC check against the desk
            dm = await control.dm("wendy", "is the webinar recorded?")
            await sandbox.drain_webhooks()
            async with running.db.session() as session:
                texts = (await session.execute(
                    select(Message.text, Message.handled_at).where(Message.platform_message_id == str(dm["id"]))
                )).all()
            async with httpx.AsyncClient(timeout=5) as http:
                health = await http.get(f"{running.http_url}/healthz")
                metrics_text = (await http.get(f"{running.http_url}/metrics")).text
    assert [(t, h) for t, h in texts] == [("is the webinar recorded?", None)]  # recorded, left for a worker
    assert health.status_code == 200
    assert "frontdesk_build_info" in metrics_text
