"""The whole loop in a real browser: a customer's sandbox DM becomes a ticket, an agent takes it over in the
desk, and the reply reaches the customer through the X emulator.

`frontdesk run`'s supervisor runs in-process (real Rasa, the X emulator, a SQLite store, the desk on its
HTTP port); Debian chromium, driven by Playwright, is the agent.  Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from frontdesk.core.settings import Settings
from storage.agents import create_agent
from storage.models import Ticket
from tests.fixtures.bot import BotHarness, bot_harness, e2e_settings, eventually
from tests.fixtures.browser import ARTIFACTS, DESKTOP

pytestmark = [pytest.mark.browser, pytest.mark.rasa]

PASSWORD = "a long desk password"


async def _open_ticket(bot: BotHarness, *, other_than: int | None = None) -> Ticket:
    async def probe() -> Ticket | None:
        async with bot.db.session() as session:
            query = select(Ticket).where(Ticket.open_conversation_id.is_not(None))  # type: ignore[union-attr]
            if other_than is not None:
                query = query.where(Ticket.id != other_than)
            return (await session.execute(query)).scalars().first()

    return await eventually(probe, what="an open ticket")


async def test_an_agent_takes_over_a_sandbox_dm_in_the_browser(  # type: ignore[no-untyped-def]
    browser, tmp_path: Path, nlu_settings: Settings, nlu_server_url: str
) -> None:
    from playwright.async_api import expect

    url = f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
    settings_for = lambda sb: e2e_settings(nlu_settings, url, nlu_server_url, sb)  # noqa: E731
    async with bot_harness(settings_for, with_http=True) as bot:
        await create_agent(bot.db, email="ann@example.com", name="Ann Agent", password=PASSWORD)
        base = bot.running.http_url

        # The customer asks for a person by DM; the bot escalates it.
        await bot.dm("nora", "I want to talk to a human please")
        ticket = await _open_ticket(bot)

        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        await page.goto(f"{base}/login")
        await page.get_by_label("E-mail").fill("ann@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await expect(page).to_have_url(f"{base}/queues/all")
        row = page.locator("#queue-rows tr", has_text="@nora")
        await expect(row).to_have_count(1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "e2e-queue-1280x800.png"))

        # Take it over and reply: the emulator records the DM, and the page shows it delivered.
        await page.goto(f"{base}/tickets/{ticket.id}")
        await expect(page.locator("#conversation")).to_contain_text("I want to talk to a human please")
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("claimed")
        reply = "Hi Nora, Ann here from the support team. How can I help?"
        await page.locator("#reply-text").fill(reply)
        await page.get_by_role("button", name="Send reply").click()

        async def delivered() -> list[str] | None:
            texts = await bot.dms_to("nora")
            return texts if reply in texts else None

        sent = await eventually(delivered, what="the agent's reply in the emulator's sent DMs")
        assert sent.count(reply) == 1
        await expect(page.locator("#conversation")).to_contain_text("Delivered")

        # While the agent holds it, the customer's next DM reaches the page live, and the bot stays silent.
        bot_dms_before = len(await bot.dms_to("nora"))
        await expect(page.locator("body")).to_have_attribute("data-live", "on")
        await page.evaluate("window.__deskNoReload = true")
        await bot.dm("nora", "My invoice number is on the PDF, can you check it?")
        await expect(page.locator("#conversation")).to_contain_text("can you check it?")
        assert await page.evaluate("window.__deskNoReload === true")
        await page.screenshot(path=str(ARTIFACTS / "e2e-ticket-1280x800.png"), full_page=True)
        assert len(await bot.dms_to("nora")) == bot_dms_before

        # Hand back: the bot answers again.
        await page.get_by_role("button", name="Hand back to bot").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("handed back")
        await bot.dm("nora", "thanks a lot!")
        await bot.wait_dms_to("nora", bot_dms_before + 1)

        # A new escalation, claimed and resolved from the desk.
        await bot.dm("nora", "actually I need to speak to a real person again")

        again = await _open_ticket(bot, other_than=ticket.id)
        await page.goto(f"{base}/tickets/{again.id}")
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("claimed")
        await page.get_by_role("button", name="Resolve").click()
        await expect(page.get_by_test_id("ticket-status")).to_have_text("resolved")
        await context.close()
