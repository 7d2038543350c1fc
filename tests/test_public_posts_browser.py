"""The public post approval flow in a real browser (Debian chromium, Playwright, the desk under uvicorn).

Ann drafts breaking news and sees she cannot approve it herself; Bo, in another browser, approves it for
a time; the page shows it scheduled.  Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import pytest

from tests.fixtures.browser import ARTIFACTS
from tests.fixtures.desk import DEFAULT_PASSWORD, start_desk_server, stop_desk_server
from tests.test_desk_browser import _signed_in, browser_store  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.browser

NEWS = "Checkout is back: payments work again. Thanks for your patience!"


async def test_a_post_is_drafted_by_one_agent_and_approved_by_another(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.async_api import expect

    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    await create_agent(db, email="bo@example.com", name="Bo Agent", password=DEFAULT_PASSWORD)
    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        ann_context, ann = await _signed_in(browser, server.base_url, "ann@example.com")
        await ann.get_by_role("link", name="Posts", exact=True).click()
        await ann.get_by_label("New post").fill(NEWS)
        await ann.get_by_role("button", name="Save draft").click()
        await expect(ann.get_by_text("another agent must approve it")).to_be_visible()
        row = ann.locator("#public-posts tbody tr").first
        await expect(row).to_have_attribute("data-status", "draft")
        await expect(row.get_by_text("waiting for another agent's approval")).to_be_visible()
        await expect(row.get_by_role("button", name="Approve")).to_have_count(0)  # not for the author
        await ann.screenshot(path=str(ARTIFACTS / "desk-public-post-draft-1280x800.png"), full_page=True)

        bo_context, bo = await _signed_in(browser, server.base_url, "bo@example.com")
        await bo.goto(f"{server.base_url}/public-posts")
        row = bo.locator("#public-posts tbody tr").first
        await row.get_by_label("Post at (UTC; empty: now)").fill("2099-01-01T09:30")
        await row.get_by_role("button", name="Approve").click()
        await expect(bo.get_by_text("a post can be scheduled at most 60 days ahead")).to_be_visible()
        row = bo.locator("#public-posts tbody tr").first
        await row.get_by_role("button", name="Approve").click()  # empty time: post now
        await expect(bo.get_by_text("Approved: it is being posted now.")).to_be_visible()
        row = bo.locator("#public-posts tbody tr").first
        await expect(row).to_have_attribute("data-status", "approved")
        await expect(row.get_by_text("Bo Agent")).to_be_visible()
        await bo.screenshot(path=str(ARTIFACTS / "desk-public-post-approved-1280x800.png"), full_page=True)
        await ann_context.close()
        await bo_context.close()
    finally:
        stop_desk_server(server)
