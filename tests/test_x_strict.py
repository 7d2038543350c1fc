"""Frontdesk against an X emulator as strict as the real X (issue 21): what X returns, not what we sent.

Each test goes through the real tweepy AsyncClient and would fail against the code before the fix:
reconciling replies whose text X prefixed with "@user ", DMs X lists late, pages shorter than asked
for, the 15-minute and 24-hour send limits, and an app without the Direct Messages permission.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.channels.x import DmPoller, MentionsPoller, XSender
from bot.outbox import OutboxLoop
from sandbox.server import RunningSandbox
from storage.actions import bot_reply
from storage.db import Database
from storage.models import Channel, Message, OutboxStatus
from storage.outbox import lease_due
from tests.fixtures.x_channel import outbox_rows


async def _ingest(db: Database, client: Any, brand: str) -> None:
    await MentionsPoller(db, client, brand).poll_once()
    await DmPoller(db, client, brand).poll_once()


async def _conversation_of(db: Database, platform_message_id: str) -> int:
    async with db.session() as session:
        return (
            await session.execute(
                select(Message.conversation_id).where(Message.platform_message_id == platform_message_id)
            )
        ).scalar_one()


def _outbox(db: Database, client: Any, brand: str) -> OutboxLoop:
    """A fresh outbox loop and sender: what a restarted process has (nothing remembered in memory)."""
    return OutboxLoop(db, {Channel.x: XSender(client, brand, db=db)}, owner="restarted", idle_s=0.05)


# --- 1. reconciling by what X returns -------------------------------------------------------------------
async def test_a_reply_x_posted_despite_its_5xx_is_found_after_a_restart_and_sent_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    tweet = (await x_control.mention("alice", "my parcel never came"))["id"]
    await _ingest(db, x_client, brand)
    await bot_reply(db, await _conversation_of(db, tweet), "So sorry! Please DM us your order number.")
    # X creates the reply, then answers 503: the sender cannot tell it from a failure.
    await x_control.fault(status=503, count=1, path_prefix="/2/tweets", method="POST", after_commit=True)

    first = _outbox(db, x_client, brand)
    assert await first.run_once() == 1
    assert first.retries == 1 and first.sent == 0
    (row,) = await outbox_rows(db)
    assert row.status != OutboxStatus.sent

    # The process restarts (a new loop, a new sender); once the retry is due, the row is looked for first.
    await asyncio.sleep(1.2)
    restarted = _outbox(db, x_client, brand)
    assert await restarted.run_once() == 1
    assert restarted.reconciled == 1 and restarted.sent == 0

    sent = await x_control.sent()
    assert len(sent["tweets"]) == 1  # exactly one reply on X ...
    assert sent["tweets"][0]["full_text"].startswith("@alice ")  # ... which X shows with the mention first
    (row,) = await outbox_rows(db)
    assert row.status == OutboxStatus.sent and row.platform_message_id == sent["tweets"][0]["id"]
    assert await restarted.run_once() == 0


async def test_a_lapsed_lease_reconciles_a_reply_x_prefixed_with_the_thread_mentions(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    root = (await x_control.mention("bea", "hey @carl look, @frontdesk lost my order"))["id"]
    await _ingest(db, x_client, brand)
    await bot_reply(db, await _conversation_of(db, root), "We're on it, Bea.")
    # A worker posts the reply and dies before marking it sent; its lease lapses.
    (leased,) = await lease_due(db, "dead-worker", lease_s=0.2)
    posted = await XSender(x_client, brand).deliver(leased)
    await asyncio.sleep(0.4)

    restarted = _outbox(db, x_client, brand)
    assert await restarted.run_once() == 1
    assert restarted.reconciled == 1
    sent = await x_control.sent()
    assert [t["full_text"] for t in sent["tweets"]] == ["@bea @carl We're on it, Bea."]
    (row,) = await outbox_rows(db)
    assert row.status == OutboxStatus.sent and row.platform_message_id == posted
