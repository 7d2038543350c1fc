"""`frontdesk run` as a user meets it: one process, sandbox mode, /healthz, a reply to a test DM, a clean
SIGTERM; and the start-up errors that must name their fix."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from frontdesk.app.roles import ROLE_RUN, ROLE_WORKER, Role
from frontdesk.app.supervisor import RunError, started
from frontdesk.core.settings import PROJECT_ROOT, Settings
from nlu.serving import free_port
from tests.fixtures.bot import CONTENT_DIR, bot_harness, e2e_settings, eventually
from tests.fixtures.storage import PG_ADMIN_URL, _pg_admin_connect

# The store, the content and the router only: no server, no channel, no emulator.
_STORE_ONLY: Role = replace(ROLE_RUN, http=False, pollers=False, outbox=False, webhooks=False, sandbox=False,
                            metrics_port=False)


@pytest.mark.rasa
async def test_frontdesk_run_in_sandbox_mode_answers_a_dm_and_stops_cleanly(
    tmp_path: Path, nlu_settings: Settings, nlu_server_url: str
) -> None:
    http_port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        "FRONTDESK_VAR_DIR": str(tmp_path / "var"),
        "FRONTDESK_DATABASE_URL": "",
        "FRONTDESK_NLU_URL": nlu_server_url,
        "FRONTDESK_NLU_PROJECT_DIR": str(nlu_settings.nlu_project_dir),
        "FRONTDESK_TAXONOMY_PATH": str(nlu_settings.effective_taxonomy_path),
        "FRONTDESK_HTTP_PORT": str(http_port),
        "FRONTDESK_SANDBOX_PORT": str(sandbox_port),
        "FRONTDESK_X_DMS_POLL_S": "0.3",
        "FRONTDESK_X_MENTIONS_POLL_S": "0.3",
        "FRONTDESK_X_POLL_FLOOR_S": "0.1",
    }
    for name in ("FRONTDESK_X_CONSUMER_KEY", "FRONTDESK_X_ACCESS_TOKEN", "FRONTDESK_X_API_BASE"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "frontdesk", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output = b""
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(f"http://127.0.0.1:{http_port}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(healthy, what="/healthz to answer 200")
            sandbox = f"http://127.0.0.1:{sandbox_port}"
            await http.post(f"{sandbox}/_sandbox/dms", json={"sender": "kim", "text": "where is my package, it is late"})

            async def answered() -> list[str] | None:
                dms = (await http.get(f"{sandbox}/_sandbox/sent")).json()["dms"]
                return [d["text"] for d in dms if d["recipient"] == "kim"] or None

            [answer] = await eventually(answered, what="the bot's answer to kim")
            assert "https://shop.example.com/orders" in answer
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode()
    assert process.returncode == 0, text
    assert "SANDBOX MODE" in text and f"{sandbox}/_sandbox/dms" in text and "frontdesk agents add" in text
    assert "frontdesk: stopped" in text


async def test_healthz_is_503_naming_the_nlu_while_it_is_unreachable(
    sqlite_database_url: str, nlu_settings: Settings
) -> None:
    dead_nlu = f"http://127.0.0.1:{free_port()}"
    settings_for = lambda sb: e2e_settings(nlu_settings, sqlite_database_url, dead_nlu, sb)  # noqa: E731
    async with bot_harness(settings_for, with_http=True) as bot:
        response = await bot.http.get(f"{bot.running.http_url}/healthz")
    assert response.status_code == 503
    body = response.json()
    assert set(body["not_ready"]) == {"nlu"}
    assert body["checks"]["store"] == "ok" and body["checks"]["channels"] == "ok"


@pytest.mark.postgres
async def test_out_of_date_postgresql_is_refused_naming_the_upgrade_command() -> None:
    try:
        admin = await _pg_admin_connect()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"frontdesk_empty_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        settings = Settings(database_url=url, content_dir=CONTENT_DIR, nlu_url="http://127.0.0.1:9")
        with pytest.raises(RunError, match="frontdesk db upgrade"):
            async with started(settings, _STORE_ONLY, say=lambda _m: None):
                pass
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def test_broken_content_stops_start_up_with_file_and_line(tmp_path: Path, sqlite_database_url: str) -> None:
    (tmp_path / "faq.yml").write_text((CONTENT_DIR / "faq.yml").read_text())
    (tmp_path / "events.yml").write_text("events:\n  - key: x-1\n    name: X\n")
    settings = Settings(database_url=sqlite_database_url, content_dir=tmp_path, nlu_url="http://127.0.0.1:9")
    from bot.content import ContentError

    with pytest.raises(ContentError, match=r"events\.yml:2: `timezone` is missing"):
        async with started(settings, _STORE_ONLY, say=lambda _m: None):
            pass


async def test_a_misspelt_faq_intent_stops_start_up_with_file_and_line(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    for name in ("events.yml", "replies.yml", "words.yml", "taxonomy.yml"):
        (tmp_path / name).write_text((CONTENT_DIR / name).read_text())
    (tmp_path / "faq.yml").write_text(
        "faq:\n  - key: prices\n    intents: [pricing, oppening_hours]\n    keywords: [price]\n    answer: See the site.\n"
    )
    settings = Settings(database_url=sqlite_database_url, content_dir=tmp_path, nlu_url="http://127.0.0.1:9")
    from bot.content import ContentError

    with pytest.raises(ContentError, match=r"faq\.yml:2: FAQ entry 'prices': intent 'oppening_hours' is not in "
                                           r"the taxonomy"):
        async with started(settings, _STORE_ONLY, say=lambda _m: None):
            pass


def test_project_root_has_the_content_files() -> None:
    assert (PROJECT_ROOT / "content" / "faq.yml").is_file() and (PROJECT_ROOT / "content" / "events.yml").is_file()


@pytest.mark.rasa
async def test_x_webhook_is_served_beside_the_desk_when_enabled(
    sqlite_database_url: str, nlu_settings: Settings, nlu_server_url: str
) -> None:
    settings_for = lambda sb: e2e_settings(  # noqa: E731
        nlu_settings, sqlite_database_url, nlu_server_url, sb, x_webhook_enabled=True
    )
    async with bot_harness(settings_for, with_http=True) as bot:
        crc = await bot.http.get(f"{bot.running.http_url}/webhooks/x", params={"crc_token": "abc"})
        health = await bot.http.get(f"{bot.running.http_url}/healthz")
    assert crc.status_code == 200 and crc.json()["response_token"].startswith("sha256=")
    assert health.status_code == 200


@pytest.mark.rasa
async def test_worker_mode_answers_what_another_process_recorded(
    sqlite_database_url: str, nlu_settings: Settings, nlu_server_url: str
) -> None:
    """`frontdesk worker`: no HTTP, no pollers; it handles the shared inbox and delivers through the outbox."""
    from sandbox.server import running_sandbox
    from storage.actions import InboundMessage, record_inbound
    from storage.db import Database
    from storage.models import Channel, ConversationKind

    async with running_sandbox() as sandbox:
        customer = sandbox.x.user_by_username("mona")  # the emulator creates customers on first mention
        assert customer is not None
        customer_id = customer.id
        settings = e2e_settings(nlu_settings, sqlite_database_url, nlu_server_url, sandbox.base_url)
        worker_without_pollers = replace(ROLE_WORKER, pollers=False, metrics_port=False)
        async with started(settings, worker_without_pollers, say=lambda _m: None) as running:
            assert running.http_url == "" and running.channel is not None and not running.channel.pollers
            db = Database(sqlite_database_url)
            try:
                await record_inbound(db, InboundMessage(
                    channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=customer_id,
                    sender_id=customer_id, sender_handle="mona", text="where is my package, it is late",
                    platform_message_id=f"worker-mode-{uuid.uuid4().hex}",
                ))
            finally:
                await db.dispose()
            running.worker.wake()

            async def answered() -> list[str] | None:
                return [d["text"] for d in sandbox.x.sent()["dms"] if d["recipient"] == "mona"] or None

            [answer] = await eventually(answered, what="the worker's answer to mona")
    assert "https://shop.example.com/orders" in answer
