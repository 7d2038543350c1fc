"""Automatic assignment in a real browser (Debian chromium, Playwright; the desk under uvicorn, SQLite).

An admin switches Support to round robin on the Assignment page and goes away from the top bar; an agent
with the desk open is online, gets the next escalated Support ticket from the assigner (the loop every
worker runs), sees the notice without reloading, and opens the ticket, which is theirs.  Screenshots land
in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.assigner import Assigner
from storage import actions
from storage.agents import create_agent
from storage.db import Database
from storage.migrate import upgrade
from storage.models import AgentRole, Ticket
from tests.fixtures.browser import ARTIFACTS, DESKTOP
from tests.fixtures.desk import DEFAULT_PASSWORD, inbound, start_desk_server, stop_desk_server

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


async def _signed_in(browser, base_url: str, email: str):  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto(f"{base_url}/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(f"{base_url}/queues/all")
    return context, page


async def test_an_online_agent_gets_the_next_escalated_ticket_and_sees_it(  # type: ignore[no-untyped-def]
    browser, browser_store, tmp_path
) -> None:
    from playwright.async_api import expect

    db, url = browser_store
    await create_agent(db, email="rita@example.com", name="Rita Admin", password=DEFAULT_PASSWORD,
                       role=AgentRole.admin)
    ann = await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    server = await start_desk_server(url, tmp_path)
    assigner = Assigner(db, online_window_s=120, sweep_s=0.5)
    sweeping = asyncio.create_task(assigner.run())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        ann_context, ann_page = await _signed_in(browser, server.base_url, "ann@example.com")
        await expect(ann_page.locator("body")).to_have_attribute("data-live", "on")
        await expect(ann_page.locator("#away-toggle")).to_have_text("Available")
        await ann_page.evaluate("window.__deskNoReload = true")

        # The admin: Assignment tab, Support to round robin with a capacity of 2, then away.
        rita_context, rita = await _signed_in(browser, server.base_url, "rita@example.com")
        await rita.get_by_role("link", name="Assignment").click()
        support = rita.locator('tr[data-queue="support"]')
        await support.get_by_label("Round robin").check()
        await support.get_by_label("Capacity").fill("2")
        await support.get_by_role("button", name="Save").click()
        await expect(rita.locator("#flash")).to_contain_text(
            "Support: new tickets go to online agents by round robin, at most 2 open each.")
        await expect(rita.locator('tr[data-agent="%d"]' % ann.id)).to_contain_text("Online")
        await rita.screenshot(path=str(ARTIFACTS / "desk-assignment-1280x800.png"))
        await rita.locator("#away-toggle").click()
        await expect(rita.locator("#away-toggle")).to_have_text("Away")
        await expect(rita.locator("#flash")).to_contain_text("You are away")

        # A customer is escalated into Support; the router wakes the assigner, as the worker does.
        recorded = await actions.record_inbound(db, inbound("My parcel never arrived", sender="9101", handle="maya"))
        ticket = await actions.escalate(db, recorded.conversation_id, queue="support", priority="high",
                                        subject="Parcel never arrived", reason="test")
        assigner.wake()

        notice = ann_page.locator(f'.assigned-notice[data-ticket="{ticket.id}"]')
        await expect(notice).to_contain_text(f"Ticket #{ticket.id} (support) was assigned to you.")
        await expect(ann_page.locator("#queue-rows")).to_contain_text("Parcel never arrived")
        await expect(ann_page.get_by_role("link", name="Mine")).to_contain_text("1")
        assert await ann_page.evaluate("window.__deskNoReload === true")  # no reload: the live feed said so
        await ann_page.screenshot(path=str(ARTIFACTS / "desk-assigned-notice-1280x800.png"))
        await notice.get_by_role("link", name=f"Open ticket #{ticket.id}").click()
        await ann_page.wait_for_url(f"{server.base_url}/tickets/{ticket.id}")
        await expect(ann_page.locator("body")).to_contain_text("held by you")
        await ann_page.screenshot(path=str(ARTIFACTS / "desk-assigned-ticket-1280x800.png"))

        async with db.session() as session:
            row = await session.get(Ticket, ticket.id)
            assert row is not None and row.assignee_id == ann.id  # not the admin: she is away
        await ann_context.close()
        await rita_context.close()
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
        stop_desk_server(server)
