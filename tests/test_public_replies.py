"""Public replies are never refused as duplicates, and a changed reply is used without a restart.

X refuses a post whose text the account already posted within 24 h (the emulator too: sandbox/x/state.py);
every public reply names the customer in one of the brand's wordings (content/replies.yml), and a reply X
still calls a duplicate goes out in the next wording.  Through the real tweepy client and the X emulator.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import replies
from bot.channels.x import MentionsPoller, XSender
from bot.content import Content
from bot.outbox import OutboxLoop
from sandbox.server import RunningSandbox
from storage.actions import bot_reply
from storage.db import Database
from storage.models import Channel, Message, OutboxItem, OutboxStatus
from storage.outbox import lease_due
from tests.fixtures.bot import E2E_CONTENT_DIR, BotHarness, bot_harness, e2e_settings, eventually
from tests.fixtures.x_channel import outbox_rows


async def _conversation_of(db: Database, platform_message_id: str) -> int:
    async with db.session() as session:
        return (await session.execute(
            select(Message.conversation_id).where(Message.platform_message_id == platform_message_id)
        )).scalar_one()


async def test_a_reply_x_calls_a_duplicate_goes_out_in_the_next_wording(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    """One customer, two threads, the same wording picked for both: the second goes out reworded."""
    brand = x_sandbox.x.brand.id
    first = (await x_control.mention("mia_k", "my order is late"))["id"]
    second = (await x_control.mention("mia_k", "and the other one too"))["id"]
    await MentionsPoller(db, x_client, brand).poll_once()
    voice = replies.Voice(public=True, handle="mia_k", seed=3, brand_user_id=brand)
    text = replies.public_invite_dm(voice, complaint=False)
    for tweet in (first, second):
        await bot_reply(db, await _conversation_of(db, tweet), text)

    sender = XSender(x_client, brand, db=db)
    sender.alternatives = Content().texts.alternatives  # what the app wires (frontdesk/app/supervisor.py)
    loop = OutboxLoop(db, {Channel.x: sender}, owner="test-sender", idle_s=0.05)
    while await loop.run_once():
        pass

    rows = await outbox_rows(db)
    assert [r.status for r in rows] == [OutboxStatus.sent, OutboxStatus.sent] and loop.failed == 0
    posted = {t["in_reply_to_tweet_id"]: t["text"] for t in (await x_control.sent())["tweets"]}
    assert posted[first] == text
    assert posted[second] != text and "mia_k" in posted[second]
    assert posted[second] == Content().texts.alternatives(text)[0]  # the next of the brand's wordings
    assert sender.reworded == 1


async def test_a_reworded_reply_whose_sender_died_is_not_posted_twice(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    """The sender posted the next wording and died before the row was marked: sent again, it finds that post."""
    brand = x_sandbox.x.brand.id
    elsewhere = (await x_control.mention("ola_k", "hello"))["id"]
    thread = (await x_control.mention("ola_k", "my parcel is late"))["id"]
    await MentionsPoller(db, x_client, brand).poll_once()
    text = replies.public_invite_dm(replies.Voice(public=True, handle="ola_k", seed=0, brand_user_id=brand),
                                    complaint=False)
    await x_client.create_tweet(text=text, in_reply_to_tweet_id=elsewhere, user_auth=True)  # X: now a duplicate
    await bot_reply(db, await _conversation_of(db, thread), text)
    [delivery] = await lease_due(db, "test-sender")
    sender = XSender(x_client, brand, db=db)
    sender.alternatives = Content().texts.alternatives
    first = await sender.deliver(delivery)  # reworded; then the process dies before mark_sent
    again = await sender.deliver(delivery)  # the row comes back: same post, not a second one
    assert again == first
    posted = [t for t in (await x_control.sent())["tweets"] if t["in_reply_to_tweet_id"] == thread]
    assert len(posted) == 1 and posted[0]["text"] == Content().texts.alternatives(text)[0]


async def test_without_the_wordings_the_same_duplicate_fails_for_good(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    """The behaviour before: X's 403 "duplicate content" was a permanent failure of the reply."""
    brand = x_sandbox.x.brand.id
    first = (await x_control.mention("noa_k", "my order is late"))["id"]
    second = (await x_control.mention("noa_k", "and the other one"))["id"]
    await MentionsPoller(db, x_client, brand).poll_once()
    for tweet in (first, second):
        await bot_reply(db, await _conversation_of(db, tweet), "Please send us a DM so we can look into it.")
    loop = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="test-sender", idle_s=0.05)
    while await loop.run_once():
        pass
    assert [r.status for r in await outbox_rows(db)] == [OutboxStatus.sent, OutboxStatus.failed]


# --- the whole bot, with the session's Rasa ---------------------------------------------------------------


async def _public_replies(bot: BotHarness) -> list[dict[str, Any]]:
    return [t for t in (await bot.sent())["tweets"] if t.get("in_reply_to_tweet_id")]


@pytest.mark.rasa
async def test_100_complaints_from_100_customers_get_100_public_replies(bot: BotHarness) -> None:
    complaints = [
        "my order never arrived, this is unacceptable",
        "your app keeps crashing and nobody helps, ridiculous",
        "I was charged twice and want a refund now",
        "the parcel came broken, really disappointed",
    ]
    customers = [f"cust_{n:03d}" for n in range(100)]
    for n, customer in enumerate(customers):
        await bot.mention(customer, complaints[n % len(complaints)])

    async def all_replied() -> list[dict[str, Any]] | None:
        sent = await _public_replies(bot)
        return sent if len(sent) >= 100 else None

    sent = await eventually(all_replied, what="100 public replies", timeout_s=180)
    assert len(sent) == 100
    texts = [t["text"] for t in sent]
    assert len(set(texts)) == 100  # no two the same: X would refuse the repeat
    assert all(len(t) <= 280 for t in texts)
    async with bot.db.session() as session:
        failed = (await session.execute(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.status == OutboxStatus.failed)
        )).scalar_one()
    assert failed == 0


@pytest.mark.rasa
async def test_a_changed_reply_is_used_by_the_running_bot_without_a_restart(
    tmp_path: Path, db: Database, database_url: str, nlu_settings: Any, nlu_server_url: str
) -> None:
    folder = tmp_path / "content"
    shutil.copytree(E2E_CONTENT_DIR, folder)
    settings = lambda sb: e2e_settings(  # noqa: E731
        nlu_settings, database_url, nlu_server_url, sb, content_dir=folder, content_reload_s=0.2
    )
    async with bot_harness(settings) as bot:
        await bot.dm("olga", "get me a human please")
        [first] = await bot.wait_dms_to("olga", 1)
        assert first.startswith("Of course: I've asked a person to take over.")

        path = folder / "replies.yml"
        path.write_text(path.read_text().replace(
            "Of course: I've asked a person to take over.", "Right away: a colleague of mine takes over."))

        async def reloaded() -> bool | None:
            return bot.running.content_store.reloads >= 1 or None

        await eventually(reloaded, what="the content reloaded")
        await bot.dm("pia", "I want to talk to a human")
        [second] = await bot.wait_dms_to("pia", 1)
        assert second.startswith("Right away: a colleague of mine takes over."), second
