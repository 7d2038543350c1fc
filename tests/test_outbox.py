"""The outbox loop with the X sender: every reply and DM reaches X once — through 429s, 503s and crashes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.channels.base import SendError
from bot.channels.x import XSender
from bot.channels.x.client import close_x_client, make_x_client
from bot.outbox import OutboxLoop
from sandbox.server import RunningSandbox
from storage.actions import bot_reply
from storage.db import Database
from storage.models import Channel, OutboxStatus
from storage.outbox import lease_due
from tests.fixtures.x_channel import conversation_of, eventually, ingest, outbox_rows, x_settings


def _loop(db: Database, client: Any, brand: str, **kwargs: Any) -> tuple[OutboxLoop, XSender]:
    sender = XSender(client, brand, db=db)
    return OutboxLoop(db, {Channel.x: sender}, owner="test-sender", idle_s=0.05, **kwargs), sender


async def test_replies_and_dms_are_posted_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    tweet = (await x_control.mention("alice", "my order is late"))["id"]
    dm = await x_control.dm("bob", "can I change my address?")
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, tweet), "Sorry about that, we're checking your order.")
    await bot_reply(db, await conversation_of(db, dm["id"]), "Of course: what is the new address?")

    loop, _ = _loop(db, x_client, brand)
    assert await loop.run_once() == 2
    assert await loop.run_once() == 0

    sent = await x_control.sent()
    assert [(t["in_reply_to_tweet_id"], t["text"]) for t in sent["tweets"]] == [
        (tweet, "Sorry about that, we're checking your order.")
    ]
    assert [(d["recipient"], d["text"]) for d in sent["dms"]] == [
        ("bob", "Of course: what is the new address?")
    ]
    rows = await outbox_rows(db)
    assert [r.status for r in rows] == [OutboxStatus.sent, OutboxStatus.sent]
    assert {r.platform_message_id for r in rows} == {sent["tweets"][0]["id"], sent["dms"][0]["id"]}


async def test_rate_limit_storm_and_503s_still_send_every_reply_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    tweets = [(await x_control.mention(f"cust{i}", f"question {i}"))["id"] for i in range(5)]
    dms = [(await x_control.dm(f"dmcust{i}", f"private question {i}"))["id"] for i in range(5)]
    await ingest(db, x_client, brand)
    for i, platform_id in enumerate(tweets + dms):
        await bot_reply(db, await conversation_of(db, platform_id), f"Answer number {i}, just for you.")
    await x_control.config(
        rate_limit_window_s=1.0, rate_limits={"create_tweet": {"user": 2}, "create_dm": {"user": 2}}
    )
    await x_control.fault(status=503, count=2, path_prefix="/2/tweets", method="POST")
    await x_control.fault(status=503, count=2, path_prefix="/2/dm_conversations", method="POST")

    loop, _ = _loop(db, x_client, brand)
    task = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: _all_sent(db, 10), within_s=60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    sent = await x_control.sent()
    texts = sorted(t["text"] for t in sent["tweets"] + sent["dms"])
    assert texts == sorted(f"Answer number {i}, just for you." for i in range(10))  # each exactly once
    assert loop.retries >= 4  # the 429s and 503s did happen


async def _all_sent(db: Database, n: int) -> bool:
    rows = await outbox_rows(db)
    return len(rows) == n and all(r.status == OutboxStatus.sent for r in rows)


async def test_a_send_whose_process_died_is_reconciled_not_repeated(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    tweet = (await x_control.mention("carol", "where is my refund?"))["id"]
    dm = (await x_control.dm("dave", "do you have this in blue?"))["id"]
    untouched = (await x_control.mention("erin", "are you open today?"))["id"]
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, tweet), "Your refund left us yesterday.")
    await bot_reply(db, await conversation_of(db, dm), "Yes, in every size.")
    await bot_reply(db, await conversation_of(db, untouched), "Yes, until 18:00.")

    # A worker leases all three, posts two of them, and dies before marking anything sent.
    dead_sender = XSender(x_client, brand)
    leased = await lease_due(db, "dead-worker", lease_s=0.3)
    assert len(leased) == 3
    posted = {d.id: await dead_sender.deliver(d) for d in leased if d.target.get("in_reply_to") != untouched}
    await asyncio.sleep(0.5)  # the dead worker's lease lapses

    loop, _ = _loop(db, x_client, brand)
    assert await loop.run_once() == 3
    assert loop.reconciled == 2 and loop.sent == 1

    sent = await x_control.sent()
    assert sorted(t["text"] for t in sent["tweets"]) == sorted(
        ["Your refund left us yesterday.", "Yes, until 18:00."]
    )
    assert [d["text"] for d in sent["dms"]] == ["Yes, in every size."]
    rows = {r.id: r for r in await outbox_rows(db)}
    assert all(r.status == OutboxStatus.sent for r in rows.values())
    for outbox_id, platform_id in posted.items():
        assert rows[outbox_id].platform_message_id == platform_id


async def test_reconciling_does_not_credit_one_post_to_two_rows(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    dm = (await x_control.dm("fay", "hello?"))["id"]
    await ingest(db, x_client, brand)
    conversation = await conversation_of(db, dm)
    await bot_reply(db, conversation, "Hi! How can we help?")
    loop, _ = _loop(db, x_client, brand)
    assert await loop.run_once() == 1
    # The same words again (e.g. the customer greeted twice); its sender dies before posting.
    await bot_reply(db, conversation, "Hi! How can we help?")
    assert len(await lease_due(db, "dead-worker", lease_s=0.2)) == 1
    await asyncio.sleep(0.4)

    assert await loop.run_once() == 1
    assert loop.reconciled == 0  # the first DM belongs to the first row: this one is really sent
    sent = await x_control.sent()
    assert [d["text"] for d in sent["dms"]] == ["Hi! How can we help?", "Hi! How can we help?"]
    assert len({r.platform_message_id for r in await outbox_rows(db)}) == 2


async def test_refusals_fail_for_good_and_are_not_retried(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    await x_control.customer("gil", accepts_dms=False)
    dm = (await x_control.dm("gil", "call me back"))["id"]
    first = (await x_control.mention("hal", "thanks for the help"))["id"]
    second = (await x_control.mention("ian", "thanks a lot"))["id"]
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, dm), "We will call you today.")
    await bot_reply(db, await conversation_of(db, first), "You're welcome!")
    loop, _ = _loop(db, x_client, brand)
    assert await loop.run_once() == 2
    await bot_reply(db, await conversation_of(db, second), "You're welcome!")  # X: duplicate content
    assert await loop.run_once() == 1
    assert await loop.run_once() == 0

    rows = await outbox_rows(db)
    assert [r.status for r in rows] == [OutboxStatus.failed, OutboxStatus.sent, OutboxStatus.failed]
    assert "403" in (rows[0].last_error or "") and "duplicate" in (rows[2].last_error or "").lower()
    assert loop.failed == 2
    sent = await x_control.sent()
    assert sent["dms"] == [] and [t["in_reply_to_tweet_id"] for t in sent["tweets"]] == [first]


async def test_rejected_credentials_are_a_permanent_error_naming_the_settings(
    db: Database, x_sandbox: RunningSandbox, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    dm = (await x_control.dm("jo", "hi"))["id"]
    good = make_x_client(x_settings(x_sandbox))
    bad = make_x_client(
        x_settings(
            x_sandbox,
            x_consumer_key="sandbox-consumer-key",
            x_consumer_secret="sandbox-consumer-secret",
            x_access_token="sandbox-access-token",
            x_access_token_secret="revoked",
        )
    )
    try:
        await ingest(db, good, brand)
        await bot_reply(db, await conversation_of(db, dm), "Hello!")
        [delivery] = await lease_due(db, "w")
        with pytest.raises(SendError) as caught:
            await XSender(bad, brand).deliver(delivery)
        assert caught.value.permanent and "FRONTDESK_X_ACCESS_TOKEN_SECRET" in str(caught.value)
    finally:
        await close_x_client(good)
        await close_x_client(bad)
    assert (await x_control.sent())["dms"] == []


async def test_a_new_answer_does_not_wait_for_a_slow_delivery_in_flight(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    """The running loop leases new rows while earlier ones are still being delivered."""
    brand = x_sandbox.x.brand.id
    slow_dm = await x_control.dm("carol", "hello?")
    quick_dm = await x_control.dm("dave", "hi there")
    await ingest(db, x_client, brand)
    slow_conversation = await conversation_of(db, slow_dm["id"])
    quick_conversation = await conversation_of(db, quick_dm["id"])

    loop, sender = _loop(db, x_client, brand)
    release_slow = asyncio.Event()
    deliver = sender.deliver

    async def deliver_holding_one(delivery: Any) -> str | None:
        if delivery.conversation_id == slow_conversation:
            await release_slow.wait()  # a platform call that hangs (a slow connection)
        return await deliver(delivery)

    sender.deliver = deliver_holding_one  # type: ignore[method-assign]
    running = asyncio.create_task(loop.run())
    try:
        await bot_reply(db, slow_conversation, "Hello Carol!")
        loop.wake()
        await eventually(lambda: _leased_rows_are(db, 1))
        await bot_reply(db, quick_conversation, "Hi Dave!")
        loop.wake()
        # Dave's answer goes out while Carol's delivery is still hanging.
        await eventually(lambda: _dm_texts_are(x_control, ["Hi Dave!"]))
        assert await _leased_rows_are(db, 1), "Carol's delivery is still in flight"
        release_slow.set()
        await eventually(lambda: _dm_texts_are(x_control, ["Hi Dave!", "Hello Carol!"]))
        rows = await outbox_rows(db)
        assert {r.status for r in rows} == {OutboxStatus.sent}
    finally:
        release_slow.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def _leased_rows_are(db: Database, count: int) -> bool:
    return sum(1 for r in await outbox_rows(db) if r.status == OutboxStatus.sending) == count


async def _dm_texts_are(x_control: Any, texts: list[str]) -> bool:
    return [d["text"] for d in (await x_control.sent())["dms"]] == texts


async def test_a_conversations_answers_go_out_back_to_back_not_one_per_idle_poll(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    """Three answers queued at once leave in order, each as soon as the one before it is sent.

    A conversation's rows go out one after another; the loop must lease the next one when the one holding
    it back is done, not at its next idle poll (set to a minute here, so waiting for it would time out).
    """
    brand = x_sandbox.x.brand.id
    dm = await x_control.dm("erin", "three questions coming")
    await ingest(db, x_client, brand)
    conversation = await conversation_of(db, dm["id"])
    answers = ["First answer.", "Second answer.", "Third answer."]
    for text in answers:
        await bot_reply(db, conversation, text)

    loop = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="test-sender", idle_s=60.0)
    running = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: _dm_texts_are(x_control, answers))
        assert {r.status for r in await outbox_rows(db)} == {OutboxStatus.sent}
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
