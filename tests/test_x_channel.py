"""X ingest: mentions and DMs reach the store exactly once, through real tweepy against the X emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.x import DmPoller, MentionsPoller, XChannel, XStartError
from bot.channels.x.client import close_x_client, make_x_client
from sandbox.server import RunningSandbox
from storage.cursors import get_cursor
from storage.db import Database
from storage.models import Contact, Conversation, ConversationKind, Message
from tests.fixtures.x_channel import eventually, inbound_count, inbound_ids, x_settings


async def _where_stored(db: Database) -> dict[str, tuple[ConversationKind, str, str]]:
    """platform message id -> (conversation kind, conversation ref, sender handle)."""
    async with db.session() as session:
        rows = await session.execute(
            select(Message.platform_message_id, Conversation.kind, Conversation.platform_ref, Contact.handle)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
        )
        return {str(r[0]): (r[1], r[2], r[3]) for r in rows.all()}


async def test_mentions_and_dms_are_recorded_exactly_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    root = (await x_control.mention("alice", "my order #123 is late & nobody answers"))["id"]
    follow_up = (await x_control.mention("alice", "still waiting", in_reply_to=root))["id"]
    other = (await x_control.mention("bob", "do you ship to Norway?"))["id"]
    dm = await x_control.dm("carol", "hi, can I change my delivery address?")

    mentions, dms = MentionsPoller(db, x_client, brand), DmPoller(db, x_client, brand)
    assert await mentions.poll_once() == 3
    assert await dms.poll_once() == 1
    assert await mentions.poll_once() == 0  # polling again finds nothing new ...
    assert await dms.poll_once() == 0
    ids = await inbound_ids(db)
    assert sorted(ids) == sorted([root, follow_up, other, dm["id"]])  # ... and nothing was stored twice

    stored = await _where_stored(db)
    assert stored[root] == (ConversationKind.public, root, "alice")
    assert stored[follow_up] == (ConversationKind.public, root, "alice")  # the thread, not the tweet
    assert stored[other] == (ConversationKind.public, other, "bob")
    assert stored[dm["id"]] == (ConversationKind.dm, dm["sender_id"], "carol")  # the customer's user id
    async with db.session() as session:
        text = (
            await session.execute(select(Message.text).where(Message.platform_message_id == root))
        ).scalar_one()
    assert text.endswith("my order #123 is late & nobody answers")  # X's &amp; undone
    assert await get_cursor(db, f"x:{brand}:mentions:since_id") == max((root, follow_up, other), key=int)


async def test_brand_own_dms_are_skipped(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    first = await x_control.dm("dora", "is the shop open on Sunday?")
    dms = DmPoller(db, x_client, brand)
    assert await dms.poll_once() == 1
    # The brand answers (X lists the brand's own DM among its events), then the customer writes again.
    await x_client.create_direct_message(participant_id=first["sender_id"], text="Yes, 10:00-16:00.")
    again = await x_control.dm("dora", "great, thanks")
    assert await dms.poll_once() == 1
    assert await inbound_ids(db) == [first["id"], again["id"]]
    assert await dms.poll_once() == 0


async def test_500_mentions_between_two_polls_are_all_ingested_in_order(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    first = (await x_control.mention("erin", "hello"))["id"]
    poller = MentionsPoller(db, x_client, brand)
    assert await poller.poll_once() == 1
    burst = [x_sandbox.x.add_mention(f"fan{i % 41}", f"question number {i}").id for i in range(500)]
    requests_before = poller.requests
    assert await poller.poll_once() == 500
    assert poller.requests - requests_before >= 5  # it had to page (100 per page)
    assert await inbound_ids(db) == [first, *burst]  # all of them, oldest first, once
    assert await poller.poll_once() == 0


async def test_first_start_ingests_only_the_backfill_window(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    old = x_sandbox.x.add_mention("gus", "an old complaint")
    old.created_at = old.created_at.replace(year=old.created_at.year - 1)
    fresh = (await x_control.mention("gus", "a new question"))["id"]
    poller = MentionsPoller(db, x_client, x_sandbox.x.brand.id, backfill_s=3600)
    assert await poller.poll_once() == 1
    assert await inbound_ids(db) == [fresh]


async def test_rate_limit_storm_and_503_bursts_lose_nothing_and_wait_for_the_reset(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    # X's own limiter, shrunk: 2 requests per endpoint per 1-second window.
    await x_control.config(
        rate_limit_window_s=1.0,
        rate_limits={"mentions": {"app": 2, "user": 2}, "dm_events": {"user": 2}},
    )
    hits: list[tuple[float, str, bool, float]] = []
    limits = x_sandbox.x.limits
    real_hit = limits.hit

    def recording_hit(endpoint: str, context: str) -> Any:
        window, allowed = real_hit(endpoint, context)
        hits.append((x_sandbox.x.clock(), endpoint, allowed, float(limits.reset_header(window))))
        return window, allowed

    limits.hit = recording_hit  # type: ignore[method-assign]
    brand = x_sandbox.x.brand.id
    posted = [x_sandbox.x.add_mention(f"storm{i % 7}", f"where is my parcel {i}").id for i in range(30)]
    posted += [x_sandbox.x.add_dm(f"dmer{i % 5}", f"private question {i}").id for i in range(12)]
    await x_control.fault(status=503, count=3, path_prefix=f"/2/users/{brand}/mentions")
    await x_control.fault(status=503, count=2, path_prefix="/2/dm_events")

    common: dict[str, Any] = {"floor_s": 0.05, "backoff_max_s": 0.3, "page_size": 5}
    mentions = MentionsPoller(db, x_client, brand, **common)
    dms = DmPoller(db, x_client, brand, **common)
    tasks = [asyncio.create_task(mentions.run()), asyncio.create_task(dms.run())]
    try:
        await eventually(lambda: _count_is(db, len(posted)), within_s=60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        limits.hit = real_hit  # type: ignore[method-assign]

    assert sorted(await inbound_ids(db), key=int) == sorted(posted, key=int)
    assert mentions.rate_limit_waits >= 1 and dms.rate_limit_waits >= 1  # the storm did happen
    assert mentions.errors >= 1 and dms.errors >= 1  # and so did the 503s
    # After each refusal, the emulator saw no request to that endpoint until the window it announced reset.
    for at, endpoint, allowed, reset in hits:
        if allowed:
            continue
        hammering = [t for t, e, _, _ in hits if e == endpoint and at < t < reset]
        assert hammering == [], f"{endpoint}: {len(hammering)} requests while waiting for the reset"


async def _count_is(db: Database, n: int) -> bool:
    return await inbound_count(db) >= n


async def test_bad_credentials_stop_the_poller_with_a_clear_error(
    db: Database, x_sandbox: RunningSandbox
) -> None:
    settings = x_settings(
        x_sandbox,
        x_consumer_key="sandbox-consumer-key",
        x_consumer_secret="wrong-secret",
        x_access_token="sandbox-access-token",
        x_access_token_secret="sandbox-access-token-secret",
        x_bearer_token="wrong-bearer",
    )
    client = make_x_client(settings)
    try:
        with pytest.raises(XStartError, match="FRONTDESK_X_CONSUMER_SECRET"):
            await XChannel(db, settings, client=client).start()
        poller = MentionsPoller(db, client, x_sandbox.x.brand.id, floor_s=0.01)
        await asyncio.wait_for(poller.run(), timeout=30)  # returns: no endless retry loop
        assert poller.stopped_reason is not None and "FRONTDESK_X_BEARER_TOKEN" in poller.stopped_reason
        assert poller.requests == 1
    finally:
        await close_x_client(client)


async def test_channel_start_runs_pollers_and_wakes_the_router(
    db: Database, x_sandbox: RunningSandbox, x_control: Any
) -> None:
    woken = asyncio.Event()
    channel = XChannel(db, x_settings(x_sandbox), wake=woken.set)
    assert not channel.ready
    await channel.start()
    try:
        assert channel.ready and channel.brand_id == x_sandbox.x.brand.id
        tweet = (await x_control.mention("hana", "can I book a table for six?"))["id"]
        dm = (await x_control.dm("hana", "and is there parking?"))["id"]
        await eventually(lambda: _count_is(db, 2))
        assert woken.is_set()
        assert sorted(await inbound_ids(db)) == sorted([tweet, dm])
        polls = [p.polls for p in channel.pollers]
        await eventually(lambda: _polled_more(channel, polls))
        assert sorted(await inbound_ids(db)) == sorted([tweet, dm])  # more polls, no duplicates
        stats = channel.stats()
        assert stats["mentions"]["recorded"] == 1 and stats["dms"]["recorded"] == 1
        assert stats["mentions"]["stopped"] is None
    finally:
        await channel.stop()


async def _polled_more(channel: XChannel, before: list[int]) -> bool:
    return all(p.polls > b for p, b in zip(channel.pollers, before))


async def test_poll_interval_follows_the_rate_limit_x_reports(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    generous = DmPoller(db, x_client, brand, floor_s=0.5)
    await generous.poll_once()
    assert generous.pacer.after_success() == 0.5  # the sandbox's huge budget: as often as the floor allows

    await x_control.config(rate_limit_profile="x")  # X's real numbers: 15 DM reads per 15 minutes
    strict = DmPoller(db, x_client, brand, floor_s=0.5)
    await strict.poll_once()
    assert 60 <= strict.pacer.after_success() <= 66  # ~900 s spread over the 14 requests left

    fixed = DmPoller(db, x_client, brand, floor_s=0.5, interval_s=120)
    await fixed.poll_once()
    assert fixed.pacer.after_success() == 120  # FRONTDESK_X_DMS_POLL_S overrides the derived pace
