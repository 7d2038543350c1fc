"""What Frontdesk spends on X: every request counted by endpoint, every billable item per UTC day, priced.

Through the real tweepy client (the channel's own, built by ``make_x_client``) against the X emulator: the
counts in ``/metrics`` and in the store are what was requested and what X returned, they add up across
restarts (a new client, a new process), and the desk's Figures page prices them with content/x_prices.yml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tweepy

from bot.channels.x import XChannel
from bot.channels.x.usage import endpoint_of, post_kind
from frontdesk.core.metrics import REGISTRY
from sandbox.server import RunningSandbox
from sandbox.x.control_client import XSandboxControl
from storage import usage
from storage.db import Database
from tests.fixtures.x_channel import x_settings

CONTENT = Path(__file__).resolve().parent.parent / "content"


def _requests(endpoint: str, status: str) -> float:
    value = REGISTRY.get_sample_value("frontdesk_x_requests_total", {"endpoint": endpoint, "status": status})
    return value or 0.0


def _items(item: str) -> float:
    return REGISTRY.get_sample_value("frontdesk_x_items_total", {"item": item}) or 0.0


async def _today(db: Database) -> dict[str, int]:
    return (await usage.usage_by_day(db, since_day=usage.utc_day())).get(usage.utc_day(), {})


async def test_requests_and_billable_items_are_counted_as_x_returned_them(
    db: Database, x_sandbox: RunningSandbox, x_control: XSandboxControl
) -> None:
    first = await x_control.mention("alice", "@brand where is my order?")
    await x_control.mention("carol", "@brand the app crashes")
    await x_control.mention("alice", "@brand still waiting")
    bob = await x_control.dm("bob", "hello")
    await x_control.dm("bob", "anyone there?")
    await x_control.customer("dora", accepts_dms=False)
    dora_id = next(u["id"] for u in (await x_control.users())["users"] if u["username"] == "dora")
    before_mentions = _requests("GET /2/users/:id/mentions", "2xx")
    before_dm_4xx = _requests("POST /2/dm_conversations/with/:id/messages", "4xx")
    before_items = {item: _items(item) for item in usage.ITEMS}

    channel = XChannel(db, x_settings(x_sandbox), poll=False)
    await channel.start()  # GET /2/users/me: one user read
    client, brand = channel.client, channel.brand_id
    try:
        # App-only (bearer) mentions: 3 posts and their 2 authors; the same with the brand's user token
        # are owned reads (the brand's own mentions).
        await client.get_users_mentions(brand, expansions="author_id", user_auth=False)
        await client.get_users_mentions(brand, expansions="author_id", user_auth=True)
        await client.get_direct_message_events(event_types="MessageCreate")  # bob's 2 events
        await client.create_tweet(text="Plain news from the brand")
        await client.create_tweet(text="@alice sorry! Track it at https://example.com/track",
                                  in_reply_to_tweet_id=first["id"])
        await client.create_tweet(text="@alice we are on it", in_reply_to_tweet_id=first["id"])
        await client.create_direct_message(participant_id=bob["sender_id"], text="Hi Bob, how can we help?")
        with pytest.raises(tweepy.Forbidden):  # dora does not accept DMs: a request, no item
            await client.create_direct_message(participant_id=dora_id, text="Hi Dora")
    finally:
        await channel.stop()  # the last counts go to the store

    expected = {
        usage.USERS_READ: 1 + 2 + 2,
        usage.POSTS_READ: 3,
        usage.POSTS_READ_OWN: 3,
        usage.DM_EVENTS_READ: 2,
        usage.POSTS_CREATED: 1,
        usage.POSTS_CREATED_URL: 1,
        usage.POSTS_CREATED_SUMMONED: 1,
        usage.DMS_CREATED: 1,
    }
    assert await _today(db) == expected
    assert {item: _items(item) - before_items[item] for item in expected} == expected
    today_gauge = REGISTRY.get_sample_value("frontdesk_x_items_today", {"item": usage.DMS_CREATED})
    assert today_gauge == 1  # the store's figure for today, all processes
    prices = usage.load_prices(CONTENT)
    # 5 users × $0.010 + 6 posts read × $0.005 (owned reads at the post price: the brand does not own the
    # app by default) + 2 DM events × $0.010 + posts $0.015 + $0.200 + $0.010 + a DM $0.015.
    assert (await usage.estimate_cost(db, prices)).today_usd == pytest.approx(0.05 + 0.03 + 0.02 + 0.225 + 0.015)
    assert _requests("GET /2/users/:id/mentions", "2xx") - before_mentions == 2
    assert _requests("POST /2/dm_conversations/with/:id/messages", "4xx") - before_dm_4xx == 1

    # A restart is a new client and a new meter: the store keeps adding up.
    again = XChannel(db, x_settings(x_sandbox), poll=False)
    await again.start()
    await again.stop()
    assert (await _today(db))[usage.USERS_READ] == expected[usage.USERS_READ] + 1


async def test_the_estimate_prices_the_stored_counts_with_the_price_table(db: Database) -> None:
    prices = usage.load_prices(CONTENT)
    assert prices.read_on == "2026-08-22" and prices.prices["dm_events_read"] == 0.010
    today = usage.utc_day()
    await usage.add_usage(db, {(today, usage.DM_EVENTS_READ): 100, (today, usage.POSTS_CREATED_SUMMONED): 10})
    await usage.add_usage(db, {(today, usage.DM_EVENTS_READ): 50, (today, usage.POSTS_READ_OWN): 1000})

    estimate = await usage.estimate_cost(db, prices)
    # 150 DM events × $0.010 + 10 summoned replies × $0.010 + 1,000 own reads at the post-read price (the
    # brand does not own the app by default) × $0.005.
    assert estimate.today_usd == pytest.approx(1.50 + 0.10 + 5.00)
    assert estimate.last_7_days_usd == pytest.approx(6.60)
    assert estimate.days_observed == 1 and estimate.projected_30_days_usd == pytest.approx(6.60 * 30)
    owned = usage.PriceTable({**prices.prices}, prices.read_on, prices.source, brand_owns_app=True)
    assert (await usage.estimate_cost(db, owned)).today_usd == pytest.approx(1.50 + 0.10 + 1.00)


def test_a_price_table_without_a_price_names_the_file_and_the_key(tmp_path: Path) -> None:
    (tmp_path / "x_prices.yml").write_text("read_on: 2026-08-22\nprices:\n  posts_read: cheap\n")
    with pytest.raises(usage.PriceTableError, match=r"x_prices.yml: prices.posts_read must be a price"):
        usage.load_prices(tmp_path)
    with pytest.raises(usage.PriceTableError, match="not found"):
        usage.load_prices(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"text": "hello"}, usage.POSTS_CREATED),
        ({"text": "@a thanks", "reply": {"in_reply_to_tweet_id": "1"}}, usage.POSTS_CREATED_SUMMONED),
        ({"text": "@a see www.example.com", "reply": {"in_reply_to_tweet_id": "1"}}, usage.POSTS_CREATED_URL),
        ({"text": "status at example.com"}, usage.POSTS_CREATED_URL),
    ],
)
def test_posts_are_priced_by_what_x_charges_for_them(body: dict, kind: str) -> None:
    assert post_kind(body) == kind


def test_endpoint_labels_mask_ids() -> None:
    assert endpoint_of("get", "/2/users/123/mentions") == "GET /2/users/:id/mentions"
    assert endpoint_of("GET", "/2/dm_conversations/12-34/dm_events") == "GET /2/dm_conversations/:id/dm_events"


async def test_the_figures_page_shows_the_estimate(desk_client, make_agent, db: Database) -> None:
    from tests.test_desk_pages import _sign_in

    await make_agent("ann@example.com", "Ann")
    await usage.add_usage(db, {(usage.utc_day(), usage.DMS_CREATED): 200})
    await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/stats")
    assert page.status_code == 200
    assert "X API cost (estimate)" in page.text and "$3.00" in page.text and "2026-08-22" in page.text


async def _dm_events_billed_by_one_poll(
    db: Database, sb: RunningSandbox, page_size: int, overlap_s: float = 0.0
) -> int:
    """DM events X returns to the second poll of a caught-up DM poller (nothing new since the first)."""
    settings = x_settings(sb, x_dms_page_size=page_size, x_dm_overlap_s=overlap_s)
    channel = XChannel(db, settings, poll=False)
    await channel.start()
    try:
        (dms,) = [p for p in channel._make_pollers() if p.kind == "dms"]
        await dms.poll_once()  # catches up (and stores the cursor)
        before = _items(usage.DM_EVENTS_READ)
        assert await dms.poll_once() == 0
        return int(_items(usage.DM_EVENTS_READ) - before)
    finally:
        await channel.stop()


async def test_every_dm_poll_bills_a_page_so_the_page_size_is_the_cost_knob(
    db: Database, x_sandbox: RunningSandbox, x_control: XSandboxControl
) -> None:
    for i in range(30):
        await x_control.dm(f"customer{i}", f"question {i}")
    # X has no since_id for DMs: a poll that finds nothing new still gets (and is billed for) a page.
    assert await _dm_events_billed_by_one_poll(db, x_sandbox, 100) == 30
    small = await _dm_events_billed_by_one_poll(db, x_sandbox, 5)
    assert small < 30
    # The overlap (FRONTDESK_X_DM_OVERLAP_S) re-reads the DMs sent within it, whatever the page size: these
    # 30 were all sent just now, so a poll with the overlap on pages through all of them again.
    assert await _dm_events_billed_by_one_poll(db, x_sandbox, 5, overlap_s=120) == 30


@pytest.mark.parametrize(("owned", "item"), [(False, usage.POSTS_READ), (True, usage.POSTS_READ_OWN)])
async def test_owned_reads_read_the_brands_mentions_with_its_user_token(
    db: Database, x_sandbox: RunningSandbox, x_control: XSandboxControl, owned: bool, item: str
) -> None:
    for name in ("amy", "ben", "cat"):
        await x_control.mention(name, f"@frontdesk hello from {name}")
    channel = XChannel(db, x_settings(x_sandbox, x_owned_reads=owned), poll=False)
    await channel.start()
    try:
        (mentions,) = [p for p in channel._make_pollers() if p.kind == "mentions"]
        before = {i: _items(i) for i in (usage.POSTS_READ, usage.POSTS_READ_OWN)}
        assert await mentions.poll_once() == 3
        read = {i: _items(i) - before[i] for i in before}
    finally:
        await channel.stop()
    assert read[item] == 3 and sum(read.values()) == 3
