"""Tags in a real browser (Debian chromium through Playwright, the desk under uvicorn, a SQLite store):
an agent tags a ticket, clicks the tag's chip and sees the queue filtered to it, then takes the tag off.
Screenshots: tests/artifacts/desk-ticket-tags-1280x800.png (the ticket with its tags) and
desk-tags-1280x800.png (the queue filtered by one)."""

from __future__ import annotations

import pytest

from storage import actions
from tests.fixtures.browser import ARTIFACTS
from tests.fixtures.desk import DEFAULT_PASSWORD, inbound, start_desk_server, stop_desk_server
from tests.test_desk_browser import _signed_in, browser_store  # noqa: F401 - browser_store is a fixture

pytestmark = pytest.mark.browser


async def test_an_agent_tags_a_ticket_and_follows_the_chip_to_the_filtered_queue(  # type: ignore[no-untyped-def]
    browser, browser_store, tmp_path  # noqa: F811
) -> None:
    from playwright.async_api import expect

    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    tickets = []
    for n, (text, subject) in enumerate([
        ("my order QX-55120 never came", "Order QX-55120 missing"),
        ("the app crashes on login", "App crashes on login"),
        ("wrong size delivered", "Wrong size delivered"),
    ]):
        recorded = await actions.record_inbound(db, inbound(text, sender=f"870{n}", handle=f"cust_{n}"))
        tickets.append(await actions.escalate(db, recorded.conversation_id, queue="support", subject=subject))

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")
        await page.goto(f"{server.base_url}/tickets/{tickets[0].id}")
        tags = page.locator("#ticket-tags")
        await expect(tags).to_contain_text("No tags yet.")

        box = page.get_by_label("Add a tag")
        await box.fill("VIP")
        await box.press("Enter")
        await expect(tags.get_by_role("link", name="#vip")).to_be_visible()
        await expect(box).to_have_value("")  # the box is ready for the next tag
        await box.fill("late")
        await page.get_by_role("button", name="Add tag").click()
        await expect(tags.get_by_role("link", name="#late")).to_be_visible()
        await expect(page.locator("#audit")).to_contain_text("tagged")
        await page.screenshot(path=str(ARTIFACTS / "desk-ticket-tags-1280x800.png"))

        await tags.get_by_role("link", name="#vip").click()
        await page.wait_for_url(f"{server.base_url}/queues/all?tag=vip")
        rows = page.locator("#queue-rows tr[data-ticket-id]")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Order QX-55120 missing")
        await expect(rows.first).to_contain_text("#vip")
        await expect(page.get_by_test_id("active-tag")).to_contain_text("tagged #vip")
        await expect(page.locator("#queue-pager")).to_contain_text("1–1 of 1")
        await expect(page.locator("#queue-tabs a", has_text="Support").locator(".count")).to_have_text("1")
        await page.screenshot(path=str(ARTIFACTS / "desk-tags-1280x800.png"), full_page=True)

        # Back on the ticket, the tag comes off; the filtered queue is then empty.
        await rows.first.get_by_role("link", name="Order QX-55120 missing").click()
        await page.get_by_role("button", name="Remove tag vip").click()
        await expect(tags.get_by_role("link", name="#vip")).to_have_count(0)
        await expect(tags.get_by_role("link", name="#late")).to_be_visible()
        await page.goto(f"{server.base_url}/queues/all?tag=vip")
        await expect(page.locator("#queue-rows tr[data-ticket-id]")).to_have_count(0)
        # Clearing the filter shows every open ticket again.
        await page.get_by_label("Show every tag").click()
        await expect(page.locator("#queue-rows tr[data-ticket-id]")).to_have_count(3)
        await context.close()
    finally:
        stop_desk_server(server)
