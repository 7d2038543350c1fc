"""The Listening page in a real browser (Debian chromium, Playwright, the desk under uvicorn): the nav link,
the filters by rule and sentiment, a refused public reply shown with X's reason and the DM offered instead,
dismiss and open-ticket; screenshots in tests/artifacts/."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from storage.actions import listening as actions
from tests.fixtures.browser import ARTIFACTS, PHONE
from tests.fixtures.desk import DEFAULT_PASSWORD, start_desk_server, stop_desk_server
from tests.test_desk_browser import _signed_in, browser_store  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
_ids = itertools.count(880_000)


def _item(text: str, rule: str, sentiment: str, *, handle: str, addressed: bool = False,
          dms: bool | None = True) -> actions.NewListeningItem:
    post = str(next(_ids))
    return actions.NewListeningItem(
        platform_post_id=post, conversation_ref=post, rule=rule, author_id=str(next(_ids)), author_handle=handle,
        author_name=handle.title(), author_accepts_dms=dms, text=text, posted_at=datetime.now(UTC),
        category="support" if sentiment == "negative" else "smalltalk",
        intent="complaint" if sentiment == "negative" else "praise", confidence=0.88, sentiment=sentiment,
        addressed_brand=addressed,
    )


async def test_the_listening_page_filters_and_acts(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.async_api import expect

    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    [complaint, praise, loud] = await actions.record_items(db, [
        _item("frontdesk checkout failed twice today, so annoying", "checkout", "negative", handle="carol"),
        _item("loving the new frontdesk app, great work", "brand", "positive", handle="pia", dms=None),
        _item("@frontdesk my payment went through but no order!", "checkout", "negative", handle="dave",
              addressed=True),
    ])
    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")
        await page.get_by_role("link", name="Listening").click()
        await expect(page).to_have_url(f"{server.base_url}/listening")
        items = page.locator("#listening-items li.listening-item")
        await expect(items).to_have_count(3)
        carol = page.locator(f'li[data-item="{complaint}"]')
        await expect(carol.locator('[data-refusal="public"]')).to_contain_text("mentions it or quotes")
        await expect(carol.get_by_role("button", name="Send DM")).to_be_visible()
        await expect(page.locator(f'li[data-item="{praise}"] [data-refusal="dm"]')).to_contain_text("did not say")
        await expect(page.locator(f'li[data-item="{loud}"]').get_by_role("button", name="Reply in public")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "desk-listening-1280x800.png"), full_page=True)

        # Filters: the rule, then the sentiment (each select submits itself).
        await page.get_by_label("Rule").select_option("checkout")
        await expect(page).to_have_url(f"{server.base_url}/listening?rule=checkout&category=&sentiment=&status=")
        await expect(items).to_have_count(2)
        await page.get_by_label("Sentiment").select_option("positive")
        await expect(items).to_have_count(0)
        await page.get_by_label("Rule").select_option("")
        await expect(items).to_have_count(1)
        await expect(items.first).to_contain_text("loving the new frontdesk app")
        await page.get_by_label("Sentiment").select_option("negative")
        await expect(items).to_have_count(2)
        await page.screenshot(path=str(ARTIFACTS / "desk-listening-negative-1280x800.png"))

        # Dismiss one, open a ticket for the other: the filters stay.
        await carol.get_by_role("button", name="Dismiss").click()
        await expect(page.locator("#flash")).to_contain_text("Dismissed")
        await expect(page).to_have_url(f"{server.base_url}/listening?sentiment=negative")
        await expect(carol.locator(".badge.status")).to_have_text("dismissed")
        dave = page.locator(f'li[data-item="{loud}"]')
        await dave.get_by_role("button", name="Open ticket").click()
        await expect(page.locator("#flash")).to_contain_text("Ticket opened")
        await expect(dave.get_by_role("link", name="Ticket #")).to_be_visible()

        phone = await browser.new_context(viewport=PHONE, storage_state=await context.storage_state())
        small = await phone.new_page()
        await small.goto(f"{server.base_url}/listening")
        await expect(small.locator("#listening-items li.listening-item")).to_have_count(3)
        await small.screenshot(path=str(ARTIFACTS / "desk-listening-390x844.png"), full_page=True)
        await phone.close()
        await context.close()
    finally:
        stop_desk_server(server)
