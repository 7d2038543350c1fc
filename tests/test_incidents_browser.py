"""An agent opens an incident from the spike banner in a real browser (Debian chromium via Playwright, the
desk under uvicorn, a SQLite store), links the suggested ticket and sends an update.  Screenshots of the
banner and the incident page land in tests/artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import actions
from storage.actions import incidents as incident_actions
from storage.db import Database
from storage.migrate import upgrade
from storage.models import OutboxItem, utcnow
from tests.fixtures.browser import ARTIFACTS
from tests.fixtures.desk import DEFAULT_PASSWORD, inbound, start_desk_server, stop_desk_server
from tests.test_desk_browser import _signed_in

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser_store(tmp_path: Path) -> AsyncIterator[tuple[Database, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}"
    db = Database(url)
    await upgrade(db)
    try:
        yield db, url
    finally:
        await db.dispose()


async def test_an_agent_opens_an_incident_from_the_spike_banner(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    recorded = await actions.record_inbound(db, inbound("payment failed at checkout, twice", sender="9101", handle="dana"))
    await actions.record_nlu_result(db, recorded.message_id, intent="payment_failed", confidence=0.9, category="support")
    ticket = await actions.escalate(db, recorded.conversation_id, queue="support", subject="Payment failed at checkout")
    await incident_actions.raise_alert(db, key="intent:payment_failed", window_start=utcnow().replace(second=0),
                                       count=14, baseline=1.5, parent_key="category:support", quiet_s=7200)

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")
        banner = page.get_by_role("alert")
        await expect(banner).to_contain_text("Spike: intent payment_failed has 14 messages")
        await page.screenshot(path=str(ARTIFACTS / "desk-spike-banner-1280x800.png"))

        await banner.get_by_role("link", name="Open an incident").click()
        await expect(page.get_by_label("Title")).to_have_value("Spike: intent payment_failed")
        await page.get_by_label("Title").fill("Checkout fails with card payments")
        await page.get_by_role("button", name="Open the incident").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Checkout fails with card payments")
        await expect(page.get_by_role("alert")).to_have_count(0)  # the alert is taken up: no banner

        suggested = page.locator(f'[data-suggested="{ticket.id}"]')
        await expect(suggested).to_contain_text("@dana")
        await page.get_by_role("button", name="Link the ticked tickets").click()
        await expect(page.locator(f'[data-linked="{ticket.id}"]')).to_contain_text("@dana")

        await page.get_by_label("Status update text").fill("We know checkout fails and are fixing it.")
        await page.get_by_role("button", name="Send to 1 linked customer(s)").click()
        await expect(page.locator("#flash")).to_contain_text("Update sent to 1 customer(s).")
        await page.screenshot(path=str(ARTIFACTS / "desk-incident-1280x800.png"), full_page=True)
        await context.close()
    finally:
        stop_desk_server(server)
    async with db.session() as session:
        texts = [r.text for r in (await session.execute(select(OutboxItem))).scalars()]
    assert texts == ["We know checkout fails and are fixing it."]
