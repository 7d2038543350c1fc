"""The desk in a real browser: Debian chromium driven by Playwright, the desk under uvicorn, a SQLite store.

An agent signs in, finds the ticket in the queue, claims it, replies, sees the customer's next message
arrive without reloading, hands the ticket back, then resolves a second one.  Screenshots of the queue
and ticket pages at desktop and phone sizes land in tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import actions
from storage.db import Database
from storage.migrate import upgrade
from storage.models import OutboxItem, Ticket
from tests.fixtures.browser import ARTIFACTS, DESKTOP, PHONE
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
    """A desktop-sized page signed in as `email` (the password every test agent has)."""
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto(f"{base_url}/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(f"{base_url}/queues/all")
    return context, page


async def _ticket(db: Database, ticket_id: int) -> Ticket:
    async with db.session() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


async def test_an_agent_works_two_tickets_in_the_browser(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)

    async def make_ticket(text: str, sender: str, handle: str, **kwargs: object) -> Ticket:
        recorded = await actions.record_inbound(db, inbound(text, sender=sender, handle=handle))
        await actions.record_nlu_result(
            db, recorded.message_id, intent=str(kwargs.pop("intent")), confidence=0.81,
            category=str(kwargs.get("category", "support")),
        )
        return await actions.escalate(db, recorded.conversation_id, reason="test", **kwargs)  # type: ignore[arg-type]

    first = await make_ticket(
        "My parcel never arrived and it's been two weeks", "9001", "alice_w", intent="order_problem",
        queue="support", priority="high", category="support", subject="Parcel never arrived",
        data={"order_number": "A-10023"},
    )
    second = await make_ticket(
        "Do you offer team pricing for 40 seats?", "9002", "bob_b", intent="pricing", queue="sales",
        priority="normal", category="sales", subject="Team pricing for 40 seats",
        data={"lead_company": "Acme GmbH", "lead_seats": 40},
    )
    await make_ticket("Can I still register for the Berlin meetup?", "9003", "carla", intent="event_register",
                      queue="events", priority="low", category="event", subject="Berlin meetup registration")

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        page.set_default_timeout(15_000)

        # Sign in, with the keyboard.
        await page.goto(f"{server.base_url}/")
        await expect(page).to_have_url(f"{server.base_url}/login?next=%2F")
        await page.screenshot(path=str(ARTIFACTS / "desk-login-1280x800.png"))
        await page.get_by_label("E-mail").fill("ann@example.com")
        await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await expect(page).to_have_url(f"{server.base_url}/queues/all")

        # The queue, most urgent first.
        rows = page.locator("#queue-rows tr")
        await expect(rows).to_have_count(3)
        await expect(rows.first).to_contain_text("Parcel never arrived")
        await expect(rows.first).to_contain_text("@alice_w")
        await expect(page.locator("body")).to_have_attribute("data-live", "on")
        await page.screenshot(path=str(ARTIFACTS / "desk-queue-1280x800.png"))

        # A new ticket appears in the queue without a reload.
        await page.evaluate("window.__deskNoReload = true")
        await make_ticket("Hello, is anyone there?", "9004", "dora", intent="ask_human", queue="general",
                          priority="normal", category="human", subject="Wants a human")
        await expect(rows).to_have_count(4)
        await expect(page.locator("#queue-rows")).to_contain_text("Wants a human")
        await expect(page.get_by_role("link", name="All open")).to_contain_text("4")
        assert await page.evaluate("window.__deskNoReload === true")

        # Open the ticket and claim it.
        await page.get_by_role("link", name="Parcel never arrived").click()
        await expect(page).to_have_url(f"{server.base_url}/tickets/{first.id}")
        await expect(page.locator("#conversation")).to_contain_text("My parcel never arrived")
        await expect(page.locator("#conversation")).to_contain_text("order_problem · 81%")
        await expect(page.locator(".ticket-side")).to_contain_text("A-10023")
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("claimed")
        await expect(page.get_by_role("link", name="Mine")).to_contain_text("1")
        assert (await _ticket(db, first.id)).status == "assigned"

        # Reply: it shows on the page, and the outbox holds it for the channel.
        await page.get_by_label("Reply to @alice_w or write an internal note").fill(
            "Sorry about that, Alice! I've asked the courier and will update you today."
        )
        await page.locator("#reply-text").press("Control+Enter")  # the keyboard shortcut for "Send reply"
        await expect(page.locator("#conversation")).to_contain_text("I've asked the courier")
        await expect(page.locator("#reply-text")).to_have_value("")
        async with db.session() as session:
            outbox = (await session.execute(select(OutboxItem))).scalars().all()
        assert [row.text for row in outbox] == ["Sorry about that, Alice! I've asked the courier and will update you today."]

        # An internal note: shown to agents, never queued for the customer.
        await page.locator("#reply-text").fill("Courier ticket CR-55 opened")
        await page.get_by_role("button", name="Add note").click()
        await expect(page.locator("#conversation .msg.note")).to_contain_text("Courier ticket CR-55 opened")
        async with db.session() as session:
            assert len((await session.execute(select(OutboxItem))).scalars().all()) == 1

        # The customer writes again: the message appears without a reload.
        await expect(page.locator("body")).to_have_attribute("data-live", "on")
        await page.evaluate("window.__deskNoReload = true")
        await actions.record_inbound(db, inbound("Thanks! The tracking number is ZX-991.", sender="9001", handle="alice_w"))
        await expect(page.locator("#conversation")).to_contain_text("tracking number is ZX-991")
        assert await page.evaluate("window.__deskNoReload === true")
        await page.screenshot(path=str(ARTIFACTS / "desk-ticket-1280x800.png"), full_page=True)

        # Phone-sized screens: the same session, the same pages.
        phone = await browser.new_context(viewport=PHONE, storage_state=await context.storage_state(),
                                          is_mobile=True, has_touch=True)
        phone_page = await phone.new_page()
        await phone_page.goto(f"{server.base_url}/queues/all")
        await expect(phone_page.locator("#queue-rows tr")).to_have_count(4)
        await phone_page.screenshot(path=str(ARTIFACTS / "desk-queue-390x844.png"), full_page=True)
        assert await phone_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        await phone_page.goto(f"{server.base_url}/tickets/{first.id}")
        await expect(phone_page.locator("#conversation")).to_contain_text("ZX-991")
        await phone_page.screenshot(path=str(ARTIFACTS / "desk-ticket-390x844.png"), full_page=True)
        assert await phone_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        await phone.close()

        # Hand the first ticket back to the bot.
        await page.get_by_role("button", name="Hand back to bot").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("handed back")
        assert (await _ticket(db, first.id)).status == "handed_back"

        # Resolve the second one.
        await page.goto(f"{server.base_url}/queues/sales")
        await page.get_by_role("link", name="Team pricing for 40 seats").click()
        await expect(page.locator(".ticket-side")).to_contain_text("Acme GmbH")
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("claimed")
        await page.get_by_role("button", name="Resolve").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("resolved")
        await expect(page.locator("#composer")).to_contain_text("This ticket is closed")
        assert (await _ticket(db, second.id)).status == "resolved"
        await context.close()
    finally:
        stop_desk_server(server)


async def test_an_agent_finds_a_ticket_by_order_number_and_pages_a_long_queue(  # type: ignore[no-untyped-def]
    browser, browser_store, tmp_path
) -> None:
    from playwright.async_api import expect

    from desk.queries import PAGE_SIZE
    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    for n in range(PAGE_SIZE + 5):  # one page and a bit: the old list stopped without saying so
        recorded = await actions.record_inbound(db, inbound(f"question number {n}", sender=f"70{n}", handle=f"c{n}"))
        await actions.escalate(db, recorded.conversation_id, queue="general", priority="normal",
                               category="other", subject=f"Question {n}", reason="test")
    recorded = await actions.record_inbound(
        db, inbound("Order QX-55120 came with a cracked screen", sender="7999", handle="maya_k")
    )
    wanted = await actions.escalate(db, recorded.conversation_id, queue="support", priority="high",
                                    category="support", subject="Cracked screen", reason="test")

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")

        # The long queue says how much there is and pages through it.
        await page.goto(f"{server.base_url}/queues/general")
        await expect(page.locator("#queue-rows tr")).to_have_count(PAGE_SIZE)
        await expect(page.locator("#queue-pager")).to_contain_text(f"1–{PAGE_SIZE} of {PAGE_SIZE + 5}")
        await page.get_by_role("link", name="Next").click()
        await expect(page.locator("#queue-rows tr")).to_have_count(5)
        await expect(page.locator("#queue-pager")).to_contain_text(f"{PAGE_SIZE + 1}–{PAGE_SIZE + 5} of")

        # Search from the top bar, open the result, land on the message.
        search_box = page.get_by_role("searchbox", name="Search tickets, customers and messages")
        await search_box.fill("QX-55120")
        await search_box.press("Enter")
        await expect(page).to_have_url(f"{server.base_url}/search?q=QX-55120")
        hits = page.locator(".message-hit")
        await expect(hits).to_have_count(1)
        await expect(hits.first).to_contain_text("cracked screen")
        await page.screenshot(path=str(ARTIFACTS / "desk-search-1280x800.png"), full_page=True)
        await hits.first.get_by_role("link").click()
        await expect(page).to_have_url(f"{server.base_url}/tickets/{wanted.id}#m{recorded.message_id}")
        await expect(page.locator("#conversation")).to_contain_text("QX-55120")

        # Nothing found says so; a bad date says what to type.
        await page.goto(f"{server.base_url}/search?q=nothing-like-this")
        await expect(page.locator("#search-empty")).to_contain_text("Nothing matches")
        response = await page.goto(f"{server.base_url}/search?q=screen&from=yesterday")
        assert response is not None and response.status == 422
        await expect(page.get_by_role("alert")).to_contain_text("use YYYY-MM-DD")
        await context.close()
    finally:
        stop_desk_server(server)


async def test_an_agent_types_slash_picks_a_saved_reply_and_sends_it(  # type: ignore[no-untyped-def]
    browser, browser_store, tmp_path
) -> None:
    from playwright.async_api import expect

    from storage.agents import create_agent
    from storage.saved_replies import create_saved_reply

    db, url = browser_store
    ann = await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    await create_saved_reply(db, name="thanks-waiting", text="Thanks for waiting, {customer_name}! {agent_name} here.",
                             agent_id=None)
    await create_saved_reply(db, name="refund-policy", queue="support", text="Refunds take 5 days.", agent_id=None)
    recorded = await actions.record_inbound(db, inbound("still nothing??", sender="8101", handle="nina_p"))
    ticket = await actions.escalate(db, recorded.conversation_id, queue="support", reason="test")
    await actions.claim(db, ticket.id, ann.id)  # type: ignore[arg-type]

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")
        await page.goto(f"{server.base_url}/tickets/{ticket.id}")

        box = page.locator("#reply-text")
        await box.click()
        await box.type("/")
        suggestions = page.locator("#saved-reply-suggestions li")
        await expect(suggestions).to_have_count(2)
        await box.type("th")
        await expect(suggestions).to_have_count(1)
        await expect(suggestions.first).to_contain_text("/thanks-waiting")
        await page.screenshot(path=str(ARTIFACTS / "desk-saved-reply-1280x800.png"))
        await box.press("Enter")
        await expect(box).to_have_value("Thanks for waiting, nina_p! Ann Agent here.")
        await box.press("Control+Enter")
        await expect(box).to_have_value("")
        async with db.session() as session:
            texts = (await session.execute(select(OutboxItem.text))).scalars().all()
        assert "Thanks for waiting, nina_p! Ann Agent here." in texts

        # The picker does the same without the keyboard.
        await page.get_by_label("Saved reply").select_option(label="/refund-policy (support)")
        await expect(box).to_have_value("Refunds take 5 days.")
        await context.close()
    finally:
        stop_desk_server(server)


async def test_an_agent_sees_the_sla_clock_turn_amber_then_red(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Tiny targets (content/sla.yml with a 30-second first response): the ticket is shown ok, turns amber at
    80% when the sweeper records the warning (row, clock and banner, without a reload), then red."""
    import asyncio
    import contextlib

    from playwright.async_api import expect

    from bot.content import load_sla
    from bot.sla_sweeper import SlaSweeper
    from frontdesk.core.sla import SlaPolicy
    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="ann@example.com", name="Ann Agent", password=DEFAULT_PASSWORD)
    content = tmp_path / "content"
    content.mkdir()
    (content / "sla.yml").write_text("default:\n  first_response: 30s\n  resolution: 1d\n")
    policy = SlaPolicy(targets=load_sla(content / "sla.yml"))
    server = await start_desk_server(url, tmp_path, env={"FRONTDESK_CONTENT_DIR": str(content)})
    sweeper = asyncio.ensure_future(SlaSweeper(db, lambda: policy, interval_s=0.5).run())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "ann@example.com")
        await expect(page.locator("body")).to_have_attribute("data-live", "on")
        recorded = await actions.record_inbound(db, inbound("where is my refund?", sender="8201", handle="omar_k"))
        ticket = await actions.escalate(db, recorded.conversation_id, queue="support", subject="Refund missing",
                                        reason="test")
        row = page.locator(f"#queue-rows tr[data-ticket-id='{ticket.id}']")
        await expect(row).to_have_attribute("data-sla", "ok")
        await expect(row.locator(".sla-clock")).to_contain_text("s left")
        await page.screenshot(path=str(ARTIFACTS / "desk-sla-ok-1280x800.png"))

        # Sorted by time left, the page keeps the order the agent asked for.
        await page.get_by_label("Sort").select_option("sla")
        await expect(page).to_have_url(re.compile(r"/queues/all\?.*sort=sla"))
        row = page.locator(f"#queue-rows tr[data-ticket-id='{ticket.id}']")

        # 24 seconds in (80% of 30), the sweeper records the warning: the row turns amber by itself.
        await expect(row).to_have_attribute("data-sla", "warning", timeout=30_000)
        await expect(row).to_have_class(re.compile(r"\bsla-warning\b"))
        color = await row.locator(".sla-clock").evaluate("e => getComputedStyle(e).color")
        assert color == "rgb(181, 71, 8)"  # amber
        banner = page.locator("#sla-alerts .sla-banner").first
        await expect(banner).to_contain_text("SLA warning (80% used): first response")
        await expect(banner).to_contain_text(f"#{ticket.id} Refund missing")
        await page.screenshot(path=str(ARTIFACTS / "desk-sla-amber-1280x800.png"))

        # On the ticket page the clock is amber too, and goes red when the target is used up.
        await banner.get_by_role("link").click()
        clock = page.get_by_test_id("sla-clock")
        await expect(clock).to_contain_text("SLA first response:")
        await expect(clock).to_have_attribute("data-sla", re.compile("warning|breached"))
        await expect(clock).to_have_attribute("data-sla", "breached", timeout=30_000)
        await expect(clock).to_contain_text(re.compile("overdue|due now"))
        await page.screenshot(path=str(ARTIFACTS / "desk-sla-breached-ticket-1280x800.png"))
        await context.close()
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        stop_desk_server(server)


async def test_an_admin_writes_previews_and_sends_an_announcement(browser, browser_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    from storage.actions.consent import opt_in, opt_out
    from storage.agents import create_agent

    db, url = browser_store
    await create_agent(db, email="root@example.com", name="Rita Admin", password=DEFAULT_PASSWORD, role="admin")
    for i in range(5):  # five asked to be kept posted; the last one said stop since
        contact = (await actions.record_inbound(db, inbound("keep me posted", sender=f"95{i}", handle=f"fan{i}"))).contact_id
        await opt_in(db, contact)
        if i == 4:
            await opt_out(db, contact)

    server = await start_desk_server(url, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        context, page = await _signed_in(browser, server.base_url, "root@example.com")
        await page.get_by_role("link", name="Announcements").click()
        await expect(page.get_by_role("heading", name="Announcements")).to_be_visible()
        await page.get_by_label("Audience").select_option("opted_in")
        await page.get_by_label("Text").fill("Our spring launch is on 18 February: join the livestream!")
        await page.get_by_role("button", name="Preview").click()

        # The preview: who it reaches (the one who said stop is left out), what X charges, how long it takes.
        await expect(page.locator("#preview-recipients")).to_have_text("4")
        await expect(page.locator("#preview-cost")).to_have_text("$0.06")  # 4 DMs at $0.015
        await expect(page.locator("#preview-duration")).to_have_text("at once")
        await expect(page.locator("#announcement-preview")).to_contain_text('Reply "stop" to get no more announcements.')
        await page.screenshot(path=str(ARTIFACTS / "desk-announcement-preview-1280x800.png"), full_page=True)

        await page.get_by_role("button", name="Send to 4 recipients").click()
        await expect(page.locator(".flash, [role=status]").first).to_contain_text("Sending to 4 recipients")
        await expect(page.locator("#progress-pending")).to_have_text("4")  # no worker runs here: all waiting
        await page.screenshot(path=str(ARTIFACTS / "desk-announcement-progress-1280x800.png"), full_page=True)
        await page.get_by_role("link", name="all announcements").click()
        await expect(page.locator("#announcements tbody tr")).to_have_count(1)
        await expect(page.locator("#announcements")).to_contain_text("sending")
        await context.close()
    finally:
        stop_desk_server(server)
