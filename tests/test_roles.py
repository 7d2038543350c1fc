"""The roles as a user deploys them: where Prometheus finds /metrics with real accounts and in sandbox mode.

`frontdesk desk` in-process (frontdesk/app/supervisor.py `started` with `ROLE_DESK`), real HTTP through httpx.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from frontdesk.app.roles import ROLE_DESK, ROLE_RUN, ROLE_WORKER, ROLES
from frontdesk.app.supervisor import started
from frontdesk.core.settings import Settings
from tests.fixtures.bot import CONTENT_DIR
from tests.fixtures.desk import TEST_SECRET_KEY, free_port

# Credentials that are not the sandbox's: real-account mode.  The desk role without X webhooks never calls X.
_REAL_X = {
    "x_consumer_key": "real-consumer-key", "x_consumer_secret": "real-consumer-secret",
    "x_access_token": "real-access-token", "x_access_token_secret": "real-access-token-secret",
}


def _quiet(_message: str) -> None:
    return None


def _desk_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=database_url, content_dir=CONTENT_DIR, var_dir=tmp_path / "var", http_host="127.0.0.1",
        http_port=0, metrics_port=free_port(), secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
        nlu_url="", telegram_token=None, x_webhook_enabled=False, **overrides,  # type: ignore[arg-type]
    )


async def test_with_real_accounts_the_desk_serves_metrics_on_the_metrics_port_not_the_public_one(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    settings = _desk_settings(sqlite_database_url, tmp_path, **_REAL_X)
    assert not settings.sandbox_mode and not settings.effective_public_metrics
    async with started(settings, ROLE_DESK, say=_quiet) as running, httpx.AsyncClient(timeout=5) as http:
        public = await http.get(f"{running.http_url}/metrics")
        scraped = await http.get(f"{running.metrics_url}/metrics")
        health = await http.get(f"{running.metrics_url}/healthz")
    assert public.status_code == 404
    assert scraped.status_code == 200 and "frontdesk_" in scraped.text
    assert running.metrics_url.endswith(f":{settings.metrics_port}") and health.status_code == 200


async def test_in_sandbox_mode_the_desk_serves_metrics_on_its_http_port_and_opens_no_other(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    settings = _desk_settings(sqlite_database_url, tmp_path)
    assert settings.sandbox_mode
    async with started(settings, ROLE_DESK, say=_quiet) as running, httpx.AsyncClient(timeout=5) as http:
        public = await http.get(f"{running.http_url}/metrics")
        with_metrics_port = running.metrics_url
    assert public.status_code == 200 and "frontdesk_" in public.text
    assert with_metrics_port == ""


def test_the_roles_differ_only_where_the_docs_say() -> None:
    assert ROLES == {"run": ROLE_RUN, "worker": ROLE_WORKER, "desk": ROLE_DESK}
    # Only `frontdesk run` starts emulators; processes with a router do the housekeeping; a desk never polls.
    assert [r.name for r in ROLES.values() if r.sandbox] == ["run"]
    assert [r.name for r in ROLES.values() if r.retention] == ["run", "worker"]
    assert not ROLE_DESK.pollers and not ROLE_DESK.outbox and not ROLE_DESK.router and ROLE_DESK.webhooks
    assert not ROLE_WORKER.http and ROLE_WORKER.pollers and ROLE_WORKER.outbox and ROLE_WORKER.router


async def test_the_worker_sweeps_waiting_tickets_to_online_agents_and_the_desk_does_not(
    db, database_url: str, tmp_path: Path, make_agent, make_ticket  # type: ignore[no-untyped-def]
) -> None:
    """A ticket that queued while nobody was online goes to the agent who comes online (the assigner runs
    with the router, frontdesk/app/supervisor.py); a desk process leaves it to the workers."""
    import asyncio
    from dataclasses import replace

    from storage import actions
    from storage.assignment import forget_seen_memo, seen
    from storage.models import Ticket

    forget_seen_memo()
    root = await make_agent(admin=True)
    await actions.set_queue_assignment(db, "support", auto_assign=True, capacity=1, by_agent_id=root.id)
    ticket = await make_ticket("my parcel is lost")
    ada = await make_agent(name="Ada")
    await seen(db, ada.id)
    settings = _desk_settings(database_url, tmp_path, assign_sweep_s=0.2).model_copy(
        update={"nlu_url": "http://127.0.0.1:9"})  # a worker needs an NLU URL; nothing is parsed here

    desk_role = replace(ROLE_DESK, http=False, webhooks=False, metrics_port=False)
    async with started(settings, desk_role, say=_quiet) as running:
        assert "assigner" not in running.tasks
    worker_role = replace(ROLE_WORKER, pollers=False, outbox=False, metrics_port=False)
    async with started(settings, worker_role, say=_quiet) as running:
        assert "assigner" in running.tasks
        for _ in range(100):
            async with db.session() as session:
                held = (await session.get(Ticket, ticket.id)).assignee_id  # type: ignore[union-attr]
            if held is not None:
                break
            await asyncio.sleep(0.1)
    assert held == ada.id
