"""Event reminders end to end: the whole bot (`frontdesk.app.supervisor.started`, real Rasa, the router, the
outbox) against the emulators through the real clients: tweepy for X DMs, python-telegram-bot for Telegram.

The catalogue's webinar is moved to start an hour and a half minute from now with `reminders: [1h]`, so its
reminder moment comes half a minute after start-up.  The customer registers by DM; the process is
restarted before and after the moment; the reminder arrives exactly once.  On Telegram the event is then
moved in events.yml: the reload sends one notice.  On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from pydantic import SecretStr

from frontdesk.core.settings import SANDBOX_TELEGRAM_TOKEN, Settings
from tests.fixtures.bot import E2E_CONTENT_DIR, e2e_settings, eventually
from tests.fixtures.telegram_sandbox import TelegramControl

pytestmark = [pytest.mark.rasa]

WEBINAR = "webinar-getting-started-2026-12"
LEAD_S = 30  # from start-up to the reminder's moment: time to register first


def _content_with_webinar_soon(target: Path) -> datetime:
    """The e2e content, the webinar starting one hour and LEAD_S seconds from now, reminded 1h before."""
    shutil.copytree(E2E_CONTENT_DIR, target)
    catalogue = yaml.safe_load((target / "events.yml").read_text(encoding="utf-8"))
    starts = (datetime.now(timezone.utc) + timedelta(hours=1, seconds=LEAD_S)).replace(microsecond=0)
    for event in catalogue["events"]:
        if event["key"] == WEBINAR:
            event["starts_at"] = starts.isoformat()
            event["reminders"] = ["1h"]
    _write_events(target, catalogue)
    return starts


def _write_events(target: Path, catalogue: dict[str, Any]) -> None:
    (target / "events.yml").write_text(yaml.safe_dump(catalogue, sort_keys=False), encoding="utf-8")


@asynccontextmanager
async def _frontdesk(settings: Settings):  # type: ignore[no-untyped-def]
    from frontdesk.app.roles import ROLE_RUN
    from frontdesk.app.supervisor import started

    async with started(settings, replace(ROLE_RUN, http=False, metrics_port=False), say=lambda _m: None) as running:
        yield running


async def _until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def _once(probe: Callable[[], Awaitable[list[str]]], what: str) -> str:
    found = await eventually(probe, what=what, timeout_s=LEAD_S + 45)
    await asyncio.sleep(2.0)  # many rounds of the reminder loop (0.2 s): nothing more comes
    again = await probe()
    assert again == found, f"{what} arrived more than once: {again!r}"
    [text] = found
    return text


@pytest.fixture
def soon(tmp_path: Path) -> tuple[Path, datetime]:
    content = tmp_path / "content"
    return content, _content_with_webinar_soon(content)


async def test_a_reminder_arrives_once_by_x_dm_across_restarts(
    db, database_url: str, nlu_settings: Settings, nlu_server_url: str, soon  # type: ignore[no-untyped-def]
) -> None:
    from sandbox.server import running_sandbox

    content, starts = soon
    moment = time.monotonic() + LEAD_S
    async with running_sandbox() as sandbox, httpx.AsyncClient(timeout=10) as http:
        settings = e2e_settings(nlu_settings, database_url, nlu_server_url, sandbox.base_url, content_dir=content,
                                event_reminder_interval_s=0.2)

        async def dms(containing: str) -> list[str]:
            sent = (await http.get(f"{sandbox.base_url}/_sandbox/sent")).json()["dms"]
            return [d["text"] for d in sent if d["recipient"] == "rhea" and containing in d["text"]]

        async with _frontdesk(settings) as first:
            await http.post(f"{sandbox.base_url}/_sandbox/dms",
                            json={"sender": "rhea", "text": "please register me for the webinar"})
            first.channel.poke()
            await eventually(lambda: dms("you're registered"), what="the registration's confirmation")
            assert await dms("Reminder:") == []  # not before its moment
        # Stopped before the moment: the next worker sends it.
        async with _frontdesk(settings):
            await _until(moment)
            reminder = await _once(lambda: dms("Reminder:"), "rhea's reminder")
        # And a worker started after it was sent does not send it again.
        async with _frontdesk(settings):
            await asyncio.sleep(2.0)
            assert await dms("Reminder:") == [reminder]

    assert "Getting started with Frontdesk (webinar) starts in an hour" in reminder
    local = starts.astimezone(ZoneInfo("Europe/Berlin"))
    assert f"{local:%H:%M}" in reminder and "(Europe/Berlin)" in reminder
    assert "https://events.example.com/live/getting-started" in reminder


async def test_a_reminder_arrives_once_on_telegram_and_a_moved_event_notifies_once(
    db, database_url: str, nlu_settings: Settings, nlu_server_url: str, soon  # type: ignore[no-untyped-def]
) -> None:
    from sandbox.server import running_sandbox

    content, starts = soon
    moment = time.monotonic() + LEAD_S
    async with running_sandbox() as sandbox, httpx.AsyncClient(timeout=10) as http:
        settings = e2e_settings(
            nlu_settings, database_url, nlu_server_url, sandbox.base_url, content_dir=content,
            event_reminder_interval_s=0.2, content_reload_s=0.2,
            telegram_token=SecretStr(SANDBOX_TELEGRAM_TOKEN), telegram_api_base=sandbox.base_url,
            telegram_poll_timeout_s=1, telegram_pager_poll_s=0.2,
        )
        control = TelegramControl(sandbox.base_url, http)

        async def texts(containing: str) -> list[str]:
            return [m["text"] for m in (await control.sent())["messages"]
                    if m["chat_id"] == 7701 and not m["edited"] and containing in m["text"]]

        async with _frontdesk(settings):
            await control.message(7701, "please register me for the webinar", username="tilda")
            await eventually(lambda: texts("you're registered"), what="the registration's confirmation")
        async with _frontdesk(settings):  # restarted before the moment
            await _until(moment)
            reminder = await _once(lambda: texts("Reminder:"), "tilda's reminder")
            assert "starts in an hour" in reminder and "https://events.example.com/live/getting-started" in reminder

            # The brand moves the webinar by a day: the reload tells tilda once.
            catalogue = yaml.safe_load((content / "events.yml").read_text(encoding="utf-8"))
            moved = starts + timedelta(days=1)
            for event in catalogue["events"]:
                if event["key"] == WEBINAR:
                    event["starts_at"] = moved.isoformat()
            _write_events(content, catalogue)
            notice = await _once(lambda: texts("A change to"), "tilda's notice of the move")
        local = moved.astimezone(ZoneInfo("Europe/Berlin"))
        assert f"{local:%A} {local.day} {local:%B}" in notice
