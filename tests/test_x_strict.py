"""Frontdesk against an X emulator as strict as the real X (issue 21): what X returns, not what we sent.

Each test goes through the real tweepy AsyncClient and would fail against the code before the fix:
reconciling replies whose text X prefixed with "@user ", DMs X lists late, pages shorter than asked
for, the 15-minute and 24-hour send limits, and an app without the Direct Messages permission.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import Any

import pytest
import tweepy

from bot.channels.x import DmPoller, MentionsPoller, XChannel, XSender, XStartError
from bot.channels.x.api import call, raw_client
from bot.outbox import OutboxLoop
from frontdesk.app.roles import ROLE_RUN
from frontdesk.app.supervisor import RunError, started
from frontdesk.core.settings import Settings
from sandbox.server import RunningSandbox
from sandbox.x.control_client import SandboxControlError
from storage.actions import agent_reply, bot_reply, claim, escalate
from storage.cursors import active_send_pauses, get_cursor
from storage.db import Database
from storage.models import Channel, OutboxStatus, Queue
from storage.outbox import lease_due
from tests.fixtures.bot import CONTENT_DIR
from tests.fixtures.desk import DEFAULT_PASSWORD
from tests.fixtures.x_channel import conversation_of, inbound_ids, ingest, outbox_rows, x_settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _outbox(db: Database, client: Any, brand: str) -> OutboxLoop:
    """A fresh outbox loop and sender: what a restarted process has (nothing remembered in memory)."""
    return OutboxLoop(db, {Channel.x: XSender(client, brand, db=db)}, owner="restarted", idle_s=0.05)


# --- 1. reconciling by what X returns -------------------------------------------------------------------
async def test_a_reply_x_posted_despite_its_5xx_is_found_after_a_restart_and_sent_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    tweet = (await x_control.mention("alice", "my parcel never came"))["id"]
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, tweet), "So sorry! Please DM us your order number.")
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
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, root), "We're on it, Bea.")
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


# --- 2. DMs X lists late ----------------------------------------------------------------------------------
async def test_a_dm_x_lists_after_newer_ones_is_ingested_exactly_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    first = (await x_control.dm("gwen", "hello?"))["id"]
    late = (await x_control.dm("hugo", "my card was charged twice", index_delay_s=1.0))["id"]
    newer = (await x_control.dm("gwen", "anyone there?"))["id"]
    assert int(first) < int(late) < int(newer)  # the late one keeps its place in time
    poller = DmPoller(db, x_client, brand, overlap_s=60)
    assert await poller.poll_once() == 2  # X does not list the late one yet
    assert await inbound_ids(db) == [first, newer]

    await asyncio.sleep(1.1)  # now X lists it, below the newest event already seen
    assert await poller.poll_once() == 1
    assert await poller.poll_once() == 0  # the overlap reads it again: de-duplicated by event id
    assert sorted(await inbound_ids(db), key=int) == [first, late, newer]
    restarted = DmPoller(db, x_client, brand, overlap_s=60)
    assert await restarted.poll_once() == 0  # nor does a restart record anything twice
    assert sorted(await inbound_ids(db), key=int) == [first, late, newer]


async def test_the_dm_overlap_is_a_setting_the_channel_uses(db: Database, x_sandbox: RunningSandbox) -> None:
    channel = XChannel(db, x_settings(x_sandbox, x_dm_overlap_s=7.5))
    await channel.start()
    try:
        (dms,) = [p for p in channel.pollers if isinstance(p, DmPoller)]
        assert dms.overlap_s == 7.5
    finally:
        await channel.stop()


# --- 3. pages as real X returns them -------------------------------------------------------------------
async def test_short_and_empty_pages_with_a_next_token_are_read_to_the_end(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    await x_control.config(ragged_pages=True)
    mentions = [(await x_control.mention(f"pat{i}", f"question {i}"))["id"] for i in range(9)]
    dms = [(await x_control.dm(f"quin{i}", f"private {i}"))["id"] for i in range(7)]
    mention_poller = MentionsPoller(db, x_client, brand, page_size=5)
    dm_poller = DmPoller(db, x_client, brand, page_size=4)
    assert await mention_poller.poll_once() == 9
    assert mention_poller.requests > 4  # short pages, hollow pages: it kept going while X gave a token
    assert await dm_poller.poll_once() == 7
    assert sorted(await inbound_ids(db), key=int) == sorted(mentions + dms, key=int)
    assert await get_cursor(db, f"x:{brand}:mentions:since_id") == mentions[-1]

    more = [(await x_control.mention(f"pat{i}", f"again {i}"))["id"] for i in range(5)]
    assert await mention_poller.poll_once() == 5
    assert sorted(await inbound_ids(db), key=int) == sorted(mentions + dms + more, key=int)


async def test_since_id_does_not_move_past_a_page_not_read(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    await x_control.config(ragged_pages=True)
    poller = MentionsPoller(db, x_client, brand, page_size=5)
    first = (await x_control.mention("rae", "hi"))["id"]
    assert await poller.poll_once() == 1
    burst = [(await x_control.mention(f"sam{i}", f"where is order {i}"))["id"] for i in range(6)]
    # X answers the first page, then 503s the second: what was fetched is kept, the cursor stays.
    real_get = poller._get
    calls = 0

    async def second_page_fails(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real_get(*args, **kwargs)
        if calls == 1:
            await x_control.fault(status=503, count=1, path_prefix=f"/2/users/{brand}/mentions")
        return result

    poller._get = second_page_fails  # type: ignore[method-assign]
    with pytest.raises(tweepy.TwitterServerError):
        await poller.poll_once()
    assert calls == 2
    assert await get_cursor(db, f"x:{brand}:mentions:since_id") == first  # not past the unread pages
    assert await poller.poll_once() == 6
    assert sorted(await inbound_ids(db), key=int) == sorted([first, *burst], key=int)


async def test_pages_after_the_first_carry_a_previous_token(x_client: Any, x_control: Any) -> None:
    for i in range(12):
        await x_control.mention(f"tia{i}", f"hello {i}")
    brand = (await x_control.users())["brand"]["id"]
    first = await x_client.get_users_mentions(brand, max_results=5)
    assert "previous_token" not in first.meta and first.meta["next_token"]
    second = await x_client.get_users_mentions(brand, max_results=5, pagination_token=first.meta["next_token"])
    assert second.meta["previous_token"]
    back = await x_client.get_users_mentions(
        brand, max_results=5, pagination_token=second.meta["previous_token"]
    )
    assert [t.id for t in back.data] == [t.id for t in first.data]  # the page before, again


# --- 4. X's limits: 15 minutes and 24 hours ------------------------------------------------------------
async def test_the_x_profile_has_the_15_minute_and_24_hour_send_limits(
    x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    await x_control.config(rate_limit_profile="x")
    raw = raw_client(x_client)
    customer = (await x_control.customer("uma"))["users"][-1]["id"]
    first = await call(raw, "create_direct_message", participant_id=customer, text="1", user_auth=True)
    assert first.rate_limit is not None and first.rate_limit.limit == 15  # DM sends: 15 per 15 minutes
    assert [(d.limit, d.remaining) for d in first.day_limits] == [(1440, 1439)]  # ... and 1,440 per 24 h
    for i in range(14):
        await x_client.create_direct_message(participant_id=customer, text=f"dm {i}")
    with pytest.raises(tweepy.TooManyRequests):
        await x_client.create_direct_message(participant_id=customer, text="one too many")

    mention = (await x_control.mention("uma", "hello"))["id"]
    post = await call(raw, "create_tweet", text="Hi!", in_reply_to_tweet_id=mention, user_auth=True)
    assert post.rate_limit is not None and post.rate_limit.limit == 100  # posts: 100 per 15 min per user
    assert [(d.limit, d.remaining) for d in post.day_limits] == [(10_000, 9_999)]  # 10,000 per 24 h per app


async def test_a_used_up_24_hour_window_refuses_after_the_15_minute_one_reopens(
    x_client: Any, x_control: Any
) -> None:
    await x_control.config(
        rate_limit_profile="x", rate_limit_window_s=0.3, daily_limits={"create_dm": {"user": 2}}, daily_window_s=60
    )
    customer = (await x_control.customer("vic"))["users"][-1]["id"]
    await x_client.create_direct_message(participant_id=customer, text="one")
    await x_client.create_direct_message(participant_id=customer, text="two")
    await asyncio.sleep(0.4)  # the 15-minute window has reset; the day's has not
    with pytest.raises(tweepy.TooManyRequests) as refused:
        await x_client.create_direct_message(participant_id=customer, text="three")
    headers = refused.value.response.headers
    assert headers["x-user-limit-24hour-remaining"] == "0"
    assert float(headers["x-user-limit-24hour-reset"]) > float(headers["x-rate-limit-reset"])


async def _sign_in(client: Any, email: str) -> None:
    form = await client.get("/login")
    csrf = CSRF.search(form.text)
    assert csrf
    response = await client.post(
        "/login", data={"email": email, "password": DEFAULT_PASSWORD, "csrf_token": csrf.group(1), "next": ""}
    )
    assert response.status_code == 303


async def test_when_the_day_is_used_up_agents_go_first_the_rest_waits_and_the_desk_says_until_when(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, desk_client: Any, make_agent: Any
) -> None:
    brand = x_sandbox.x.brand.id
    await x_control.config(rate_limit_profile="x", daily_limits={"create_dm": {"user": 2}}, daily_window_s=4)
    early = (await x_control.dm("wes", "hi"))["id"]
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, early), "Hi Wes, how can we help?")
    loop = _outbox(db, x_client, brand)
    assert await loop.run_once() == 1  # one of the day's two DMs spent; X said so in its answer

    dms = [(await x_control.dm(name, "my order?"))["id"] for name in ("xia", "yan", "zed")]
    tweet = (await x_control.mention("zoe", "are you open?"))["id"]
    await ingest(db, x_client, brand)
    await bot_reply(db, await conversation_of(db, dms[0]), "Bot answer for Xia.")
    await bot_reply(db, await conversation_of(db, dms[1]), "Bot answer for Yan.")
    await bot_reply(db, await conversation_of(db, tweet), "Yes, until 18:00!")
    agent = await make_agent(name="Ann")
    ticket = await escalate(db, await conversation_of(db, dms[2]), queue=Queue.support)
    await claim(db, ticket.id, agent.id)
    await agent_reply(db, ticket.id, agent.id, "Ann here: your order left today.")

    assert await loop.run_once() == 4
    sent = await x_control.sent()
    # The one DM left today went to the agent's reply, though the bot's answers were queued before it;
    # the public reply has its own window and went out too.
    assert [d["text"] for d in sent["dms"]] == ["Hi Wes, how can we help?", "Ann here: your order left today."]
    assert [t["text"] for t in sent["tweets"]] == ["Yes, until 18:00!"]
    held = [r for r in await outbox_rows(db) if r.status != OutboxStatus.sent]
    assert len(held) == 2 and all("sending resumes at" in (r.last_error or "") for r in held)

    # The desk says when sending resumes (from the reset X reported) ...
    pauses = await active_send_pauses(db)
    assert [(p.channel, p.what) for p in pauses] == [("x", "direct messages")]
    await _sign_in(desk_client, agent.email)
    page = (await desk_client.get("/queues/all")).text
    assert "direct messages are on hold" in page and pauses[0].resumes_at.strftime("%H:%M UTC") in page

    # ... and when the day's window reopens, the rest goes out, each once.
    await asyncio.sleep(max(0.0, pauses[0].resumes_at.timestamp() - time.time()) + 1.2)
    assert await loop.run_once() == 2
    sent = await x_control.sent()
    assert sorted(d["text"] for d in sent["dms"]) == sorted(
        ["Hi Wes, how can we help?", "Ann here: your order left today.", "Bot answer for Xia.", "Bot answer for Yan."]
    )
    assert all(r.status == OutboxStatus.sent for r in await outbox_rows(db))
    # The first pause is over (those two used up the new day, which is the pause the desk shows now).
    assert all(p.resumes_at > pauses[0].resumes_at for p in await active_send_pauses(db))


# --- 5. the app's permission, checked at start -----------------------------------------------------------
async def test_start_up_fails_naming_the_missing_direct_message_permission(
    db: Database, x_sandbox: RunningSandbox, x_control: Any
) -> None:
    await x_control.config(access_level="read-write")
    channel = XChannel(db, x_settings(x_sandbox))
    with pytest.raises(XStartError, match="lacks the Direct Messages permission") as refused:
        await channel.start()
    assert "regenerate the access token" in str(refused.value) and "'Read and write'" in str(refused.value)
    assert not channel.ready
    await channel.stop()

    await x_control.config(access_level="read-write-directmessages")
    channel = XChannel(db, x_settings(x_sandbox))
    await channel.start()
    try:
        assert channel.ready
    finally:
        await channel.stop()


async def test_frontdesk_run_stops_at_start_up_naming_the_missing_permission(
    sqlite_database_url: str, x_sandbox: RunningSandbox, x_control: Any
) -> None:
    await x_control.config(access_level="read")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=sqlite_database_url, content_dir=CONTENT_DIR, nlu_url="http://127.0.0.1:9",
        x_api_base=x_sandbox.base_url,
    )
    sending_only = replace(
        ROLE_RUN, http=False, pollers=False, router=False, webhooks=False, sandbox=False, metrics_port=False,
        retention=False,
    )
    with pytest.raises(RunError, match="'Read'.*lacks the Direct Messages permission"):
        async with started(settings, sending_only, say=lambda _m: None):
            pass


async def test_an_app_without_the_dm_permission_is_refused_dms_by_x(x_client: Any, x_control: Any) -> None:
    await x_control.config(access_level="read-write")
    customer = (await x_control.customer("ada"))["users"][-1]["id"]
    with pytest.raises(tweepy.Forbidden, match="oauth1 app permissions"):
        await x_client.create_direct_message(participant_id=customer, text="hello")
    me = await call(raw_client(x_client), "get_me", user_auth=True)
    assert me.access_level == "read-write"


# --- the control API refuses what it cannot do (400, naming the field) --------------------------------------
async def test_the_new_controls_refuse_bad_values_with_a_400(x_control: Any) -> None:
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("dms", {"sender": "amy", "text": "hi", "index_delay_s": -1}, "index_delay_s"),
        ("dms", {"sender": "amy", "text": "hi", "index_delay_s": "soon"}, "index_delay_s"),
        ("faults", {"status": 429, "after_commit": True}, "after_commit"),
        ("config", {"access_level": "admin"}, "access_level"),
        ("config", {"daily_limits": {"create_dm": {"everyone": 3}}}, "scopes"),
        ("config", {"daily_limits": {"no_such_endpoint": {"user": 3}}}, "unknown endpoint"),
        ("config", {"daily_window_s": 0}, "daily_window_s"),
    ]
    for path, body, named in bad:
        with pytest.raises(SandboxControlError, match="HTTP 400") as refused:
            await x_control._call("POST", path, body)
        assert named in str(refused.value), (path, body)
    assert (await x_control.config())["access_level"] == "read-write-directmessages"  # nothing changed
