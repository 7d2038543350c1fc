"""Figures over time in a real browser (Debian chromium through Playwright), the desk under uvicorn.

An agent resolves a ticket (the customer is asked "How did we do?"), the customer's score arrives, and the
agent opens Figures, picks a period and a queue, sees the charts, and downloads the CSV.  The screenshot is
tests/artifacts/desk-figures-1280x800.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storage import actions
from storage.models import CsatResponse, Message, OutboxItem, Ticket, utcnow
from tests.fixtures.browser import ARTIFACTS
from tests.fixtures.desk import inbound, start_desk_server, stop_desk_server
from tests.test_desk_browser import _signed_in, browser_store  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser


async def test_an_agent_picks_a_period_and_sees_the_charts(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.async_api import expect

    from storage.agents import create_agent
    from tests.fixtures.desk import DEFAULT_PASSWORD

    db, url = browser_store
    ann = await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    today = utcnow().replace(hour=9, minute=0, second=0, microsecond=0)
    for n in range(6):  # a ticket a day for the last six days, answered and resolved
        recorded = await actions.record_inbound(db, inbound(f"parcel {n} is late", sender=f"66{n}", handle=f"c{n}"))
        ticket = await actions.escalate(db, recorded.conversation_id, queue="support", reason="test")
        await actions.claim(db, ticket.id, ann.id)  # type: ignore[arg-type]
        await actions.agent_reply(db, ticket.id, ann.id, "On it")  # type: ignore[arg-type]
        await actions.resolve(db, ticket.id, ann.id)  # type: ignore[arg-type]
        opened = today - timedelta(days=6 - n)
        async with db.transaction() as session:
            await session.execute(update(Message).where(Message.conversation_id == recorded.conversation_id)
                                  .values(created_at=opened))
            await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(
                created_at=opened, first_response_at=opened + timedelta(minutes=5 + 10 * n),
                resolved_at=opened + timedelta(hours=1 + n)))
            session.add(CsatResponse(ticket_id=ticket.id, contact_id=ticket.contact_id, asked_at=opened,
                                     score=1 + n % 5, answered_at=opened + timedelta(hours=2 + n)))
    recorded = await actions.record_inbound(db, inbound("my order is broken", sender="6699", handle="maya_k"))
    last = await actions.escalate(db, recorded.conversation_id, queue="support", reason="test")

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")
        # Resolving in the desk asks the customer (their score then shows in the figures).
        await page.goto(f"{server.base_url}/tickets/{last.id}")
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("claimed")
        await page.locator("#reply-text").fill("A new one is on its way.")
        await page.locator("#reply-text").press("Control+Enter")
        await expect(page.locator("#conversation")).to_contain_text("A new one is on its way.")
        await page.get_by_role("button", name="Resolve").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("resolved")
        await expect(page.locator("#conversation")).to_contain_text("How did we do?")  # on the ticket, as sent
        async with db.session() as session:
            asked = (await session.execute(select(OutboxItem.text).where(
                OutboxItem.conversation_id == recorded.conversation_id).order_by(OutboxItem.id))).scalars().all()
        assert asked[-1].startswith("How did we do? Reply 1–5")

        await page.get_by_role("link", name="Figures").click()
        await expect(page.locator("#csat")).to_contain_text("CSAT")
        start, end = (today - timedelta(days=6)).date(), (today - timedelta(days=1)).date()
        await page.get_by_label("From", exact=True).fill(start.isoformat())
        await page.get_by_label("To", exact=True).fill(end.isoformat())
        await page.locator("#period-queue").select_option("support")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(f"{server.base_url}/stats?from={start}&to={end}&queue=support")
        await expect(page.locator("#period-shown")).to_contain_text(f"{start} to {end}")
        charts = page.locator("svg.chart")
        await expect(charts).to_have_count(6)
        # Six days, one dot per day on the resolution median line, one bar per day of volume.
        await expect(page.locator("figure", has_text="Resolution").locator("circle.s0")).to_have_count(6)
        await expect(page.locator("figure", has_text="Volume in").locator("rect.s1")).to_have_count(6)
        await page.locator("#over-time").scroll_into_view_if_needed()
        await page.screenshot(path=str(ARTIFACTS / "desk-figures-1280x800.png"), full_page=True)

        async with page.expect_download() as info:
            await page.get_by_role("link", name="Download CSV").click()
        download = await info.value
        assert download.suggested_filename == f"figures-{start}-{end}-support.csv"
        lines = (await download.path()).read_text(encoding="utf-8").splitlines()  # type: ignore[union-attr]
        assert lines[0].startswith("date,queue,messages_in") and len(lines) == 1 + 6
        await context.close()
    finally:
        stop_desk_server(server)
