"""An event's registrations as CSV from the desk (API and page) and the CLI, on SQLite and PostgreSQL.

Registrations are personal data: admins download them, agents get 403; an unknown event is 404; a handle
a spreadsheet would run as a formula stays text.
"""

from __future__ import annotations

import csv
import io
import os
import stat

from storage import actions
from storage.actions import registrations
from storage.db import Database
from storage.models import Conversation
from tests.fixtures.desk import api_login, inbound

EVENT = "webinar-getting-started-2026-12"  # in the shipped catalogue (the desk's content folder)


async def _register(db: Database, handle: str, sender: str, *, name: str = "") -> int:
    rec = await actions.record_inbound(db, inbound("sign me up", sender=sender, handle=handle))
    async with db.session() as s:
        contact_id = (await s.get(Conversation, rec.conversation_id)).contact_id  # type: ignore[union-attr]
    await registrations.register(db, contact_id, EVENT, conversation_id=rec.conversation_id)
    return contact_id


def _rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


async def test_an_admin_downloads_the_csv_with_formulas_defused(desk_client, make_agent, db) -> None:
    await make_agent("root@example.com", "Rita", admin=True)
    headers = await api_login(desk_client, "root@example.com")
    await _register(db, "ada", "501")
    cancelled = await _register(db, "=HYPERLINK(\"http://evil\")", "502")
    await registrations.cancel(db, cancelled, EVENT)

    response = await desk_client.get(f"/api/events/{EVENT}/registrations.csv", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'registrations-{EVENT}-' in response.headers["content-disposition"]
    rows = _rows(response.text)
    assert [(r["handle"], r["status"], r["channel"]) for r in rows] == [
        ("ada", "registered", "x"), ("'=HYPERLINK(\"http://evil\")", "cancelled", "x")]


async def test_agents_may_not_download_and_unknown_events_are_404(desk_client, make_agent) -> None:
    await make_agent("ann@example.com", "Ann")
    await make_agent("root@example.com", "Rita", admin=True)
    agent = await api_login(desk_client, "ann@example.com")
    admin = await api_login(desk_client, "root@example.com")
    refused = await desk_client.get(f"/api/events/{EVENT}/registrations.csv", headers=agent)
    assert refused.status_code == 403 and "personal data" in refused.json()["detail"]
    missing = await desk_client.get("/api/events/no-such-event/registrations.csv", headers=admin)
    assert missing.status_code == 404 and "no-such-event" in missing.json()["detail"]
    assert (await desk_client.get(f"/api/events/{EVENT}/registrations.csv")).status_code == 401


async def test_the_events_page_links_the_download_for_admins_only(desk_client, make_agent, db) -> None:
    from tests.test_desk_pages import _sign_in

    await _register(db, "ada", "501")
    await make_agent("ann@example.com", "Ann")
    await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/events")
    assert page.status_code == 200 and f'data-event="{EVENT}"' in page.text
    assert "registrations.csv" not in page.text and "Only admins can download" in page.text
    assert (await desk_client.get(f"/events/{EVENT}/registrations.csv")).status_code == 403

    await make_agent("root@example.com", "Rita", admin=True)
    desk_client.cookies.clear()
    await _sign_in(desk_client, "root@example.com")
    page = await desk_client.get("/events")
    assert f"/events/{EVENT}/registrations.csv" in page.text
    download = await desk_client.get(f"/events/{EVENT}/registrations.csv")
    assert download.status_code == 200 and [r["handle"] for r in _rows(download.text)] == ["ada"]
    assert (await desk_client.get("/events/nope/registrations.csv")).status_code == 404


async def test_the_cli_exports_to_stdout_or_a_private_file(cli, db, tmp_path) -> None:
    await _register(db, "ada", "501")
    printed = await cli("events", "export", EVENT)
    assert printed.exit_code == 0, printed.output
    assert [r["handle"] for r in _rows(printed.stdout)] == ["ada"]

    target = tmp_path / "out" / "regs.csv"
    written = await cli("events", "export", EVENT, "--out", str(target))
    assert written.exit_code == 0 and "1 registration(s)" in written.stderr
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert _rows(target.read_text())[0]["handle"] == "ada"

    unknown = await cli("events", "export", "no-such-event")
    assert unknown.exit_code == 1 and "no event 'no-such-event'" in unknown.stderr
