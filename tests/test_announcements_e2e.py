"""An announcement to 50 contacts who asked to be kept posted, through the X emulator (its strict profile:
X's 15 DM sends per window, the window cut to 2 s) and the real tweepy client: it goes out at the pace,
never earns a 429, lets a reply through meanwhile, and skips whoever said stop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.announcements import AnnouncementPacer
from bot.channels.x import XSender
from bot.content import Content, load_content
from bot.outbox import OutboxLoop
from bot.router import RouterConfig
from bot.worker import BotWorker
from nlu.client import ParseResult
from sandbox.server import RunningSandbox
from storage.actions import bot_reply
from storage.actions.announcements import create_announcement, start_sending
from storage.actions.consent import opt_out
from storage.agents import create_agent
from storage.announcements import Pace, Window, progress
from storage.db import Database
from storage.models import Announcement, AnnouncementStatus, Channel, Contact
from tests.fixtures.bot import CONTENT_DIR
from tests.fixtures.x_channel import SeenRequest, conversation_of, eventually, ingest

WINDOW_S = 2.0
# X states a window's reset in whole seconds, and the sender waits for that reset: the pace's window is X's
# plus that second (at X's 900 s the same second is what the default pace's margin of 5 sends covers).
PACE_WINDOW_S = WINDOW_S + 1.0
X_CAP = 15  # what X (and the strict emulator) allows per window
# What announcements may use of it, leaving the rest for replies: under half of X's, so that even a batch
# the outbox sends late (a loaded machine) and the next one, landing in one of X's windows, stay within it.
PACE = 6
TEXT = "Our spring launch is on 18 February: join the livestream!"


class NoNLU:
    async def parse(self, text: str) -> ParseResult:
        raise AssertionError("a consent word reached the NLU")


async def _contacts_by_handle(db: Database) -> dict[str, int]:
    from sqlalchemy import select

    async with db.session() as session:
        return {h: i for h, i in (await session.execute(select(Contact.handle, Contact.id))).all()}


async def test_fifty_opted_in_contacts_get_it_at_the_pace_the_caps_allow_and_the_one_who_said_stop_does_not(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, x_requests: list[SeenRequest],
    fast_password_hashing: None,
) -> None:
    brand = x_sandbox.x.brand.id
    content: Content = load_content(CONTENT_DIR)
    worker = BotWorker(db, NoNLU(), content, RouterConfig(), owner="w")
    confirming = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="first", idle_s=0.05)
    for i in range(50):  # each asks to be kept posted, on X (the emulator's generous limits for now)
        await x_control.dm(f"fan{i:02d}", "Keep me posted!")
    await ingest(db, x_client, brand)
    await worker.drain()
    while await confirming.run_once():
        pass
    contacts = await _contacts_by_handle(db)
    confirmations = len((await x_control.sent())["dms"])
    assert confirmations == 50

    await x_control.config(rate_limit_profile="x", rate_limit_window_s=WINDOW_S)
    # fan07 says stop on X: the worker opts them out (no NLU) and confirms once.
    await x_control.dm("fan07", "stop")
    await ingest(db, x_client, brand)
    await worker.drain()

    admin = await create_agent(db, email="root@example.com", name="Rita", password="correct horse", role="admin")
    footer = content.texts.dm("announcement_footer")
    announcement = await create_announcement(db, text=TEXT, audience="opted_in", audience_key="", footer=footer,
                                             agent_id=admin.id)
    assert await start_sending(db, announcement.id, admin.id) == 49
    await start_sending_twice_is_refused(db, announcement.id, admin.id)

    sender = XSender(x_client, brand, db=db)
    outbox = OutboxLoop(db, {Channel.x: sender}, owner="outbox", idle_s=0.05)
    pace = Pace({Channel.x: (Window(PACE, PACE_WINDOW_S), Window(960, 86_400.0))})
    pacer = AnnouncementPacer(db, lambda: content, pace, tick_s=0.1, on_released=outbox.wake)
    started = time.time()
    tasks = [asyncio.create_task(outbox.run()), asyncio.create_task(pacer.run())]
    try:
        await opt_out(db, contacts["fan40"])  # says stop after the send began: their turn never comes
        # A customer writes meanwhile; the bot's answer goes out within a window, not after the announcement.
        question = (await x_control.dm("late_larry", "where is my parcel?"))["id"]
        await ingest(db, x_client, brand)
        await bot_reply(db, await conversation_of(db, question), "Let me look: it left our warehouse today.")
        outbox.wake()

        async def answered() -> bool:
            return any(d["recipient"] == "late_larry" for d in (await x_control.sent())["dms"])

        await eventually(answered, within_s=20)
        answered_at = time.time()

        async def done() -> bool:
            async with db.session() as session:
                row = await session.get(Announcement, announcement.id)
                return row is not None and row.status == AnnouncementStatus.done

        await eventually(done, within_s=60)
        finished = time.time()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    dms = (await x_control.sent())["dms"]
    announced = [d["recipient"] for d in dms if d["text"].startswith(TEXT)]
    assert len(announced) == len(set(announced)) == 48  # each once; not fan07, not fan40
    assert "fan07" not in announced and "fan40" not in announced
    assert all(d["text"] == f"{TEXT}\n\n{footer}" for d in dms if d["text"].startswith(TEXT))
    fan07 = [d["text"][:6] for d in dms if d["recipient"] == "fan07"]
    assert fan07 == ["Thanks", "Done: "]  # the two confirmations, no announcement

    # The caps: X never refused a send (no 429, nothing held back), and no window held more than X allows.
    assert outbox.retries == 0 and sender.held == 0
    sends = sorted(r.at for r in x_requests
                   if r.method == "POST" and "/dm_conversations/" in r.path and r.at >= started)
    assert max(sum(1 for t in sends if s <= t < s + WINDOW_S) for s in sends) <= X_CAP
    # 48 at 6 per window is eight windows: seven waits at least.
    assert finished - started >= 7 * PACE_WINDOW_S
    assert answered_at < finished  # the reply did not wait for the announcement
    report = await progress(db, announcement.id)
    assert (report.sent, report.opted_out, report.failed, report.pending) == (48, 1, 0, 0)


async def start_sending_twice_is_refused(db: Database, announcement_id: int, agent_id: int) -> None:
    import pytest

    from storage.actions.announcements import AlreadySent

    with pytest.raises(AlreadySent):
        await start_sending(db, announcement_id, agent_id)


def test_the_default_pace_leaves_a_third_of_x_s_caps_for_replies() -> None:
    pace = Pace()
    x = {w.seconds: w.sends for w in pace.windows[Channel.x]}
    assert x == {900.0: 10, 86_400.0: 960}  # of X's 15 per 15 min and 1,440 per 24 h
    assert pace.duration_s(Channel.x, 10) == 0.0  # one window's worth goes at once
    assert pace.duration_s(Channel.x, 1_000) == 99 * 900.0  # 100 windows of 10: a little over a day




async def test_a_stop_after_the_row_was_queued_is_honoured_by_the_outbox_at_send_time(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, fast_password_hashing: None,
) -> None:
    brand = x_sandbox.x.brand.id
    content: Content = load_content(CONTENT_DIR)
    worker = BotWorker(db, NoNLU(), content, RouterConfig(), owner="w")
    sender = XSender(x_client, brand, db=db)
    outbox = OutboxLoop(db, {Channel.x: sender}, owner="outbox", idle_s=0.05)
    for name in ("una", "val"):
        await x_control.dm(name, "keep me posted")
    await ingest(db, x_client, brand)
    await worker.drain()
    while await outbox.run_once():
        pass
    admin = await create_agent(db, email="root@example.com", name="Rita", password="correct horse", role="admin")
    footer = content.texts.dm("announcement_footer")
    announcement = await create_announcement(db, text=TEXT, audience="opted_in", audience_key="", footer=footer,
                                             agent_id=admin.id)
    await start_sending(db, announcement.id, admin.id)
    await AnnouncementPacer(db, lambda: content, Pace()).step()  # both rows are in the outbox now
    await x_control.dm("val", "unsubscribe")  # ... and val says stop before the outbox sends them
    await ingest(db, x_client, brand)
    await worker.drain()

    while await outbox.run_once():
        pass
    announced = [d["recipient"] for d in (await x_control.sent())["dms"] if d["text"].startswith(TEXT)]
    assert announced == ["una"] and outbox.dropped == 1
    report = await progress(db, announcement.id)
    assert (report.sent, report.opted_out, report.pending) == (1, 1, 0)
