"""The X emulator as tweepy's AsyncClient sees it: real client, real HTTP on loopback, the production seam."""

from __future__ import annotations

import time

import aiohttp
import pytest
import tweepy
from tweepy.asynchronous import AsyncClient

from bot.channels.x.client import close_x_client, make_x_client
from sandbox.server import RunningSandbox
from sandbox.x.control_client import XSandboxControl
from tests.fixtures.sandbox import sandbox_settings

MENTION_FIELDS = ["author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets"]


async def test_get_me_returns_the_brand(x_client: AsyncClient, x_sandbox: RunningSandbox) -> None:
    me = await x_client.get_me()
    assert me.data.username == "frontdesk"
    assert str(me.data.id) == x_sandbox.x.brand.id


async def test_mentions_since_id_returns_only_newer_ones_newest_first(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    brand_id = x_sandbox.x.brand.id
    first = [await x_control.mention("alice", f"old {i}") for i in range(3)]
    newer = [await x_control.mention("bob", f"new {i}") for i in range(2)]

    page = await x_client.get_users_mentions(brand_id, since_id=first[-1]["id"], tweet_fields=MENTION_FIELDS)

    assert [t.id for t in page.data] == [int(newer[1]["id"]), int(newer[0]["id"])]
    assert page.data[0].text == "@frontdesk new 1"
    assert page.meta["newest_id"] == newer[1]["id"]
    assert page.meta["oldest_id"] == newer[0]["id"]
    assert page.meta["result_count"] == 2


async def test_mentions_paginate_across_pages_with_authors_expanded(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    posted = [await x_control.mention(f"user{i % 3}", f"question {i}") for i in range(12)]
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        page = await x_client.get_users_mentions(
            x_sandbox.x.brand.id,
            max_results=5,
            pagination_token=token,
            expansions="author_id",
            tweet_fields=MENTION_FIELDS,
        )
        pages += 1
        seen += [t.id for t in page.data]
        authors = {u.id for u in page.includes["users"]}
        assert {t.author_id for t in page.data} <= authors
        token = page.meta.get("next_token")
        if token is None:
            break
    assert pages == 3
    assert seen == sorted((int(p["id"]) for p in posted), reverse=True)


async def test_no_new_mentions_is_the_bare_empty_page(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    newest = await x_control.mention("alice", "hello")
    page = await x_client.get_users_mentions(x_sandbox.x.brand.id, since_id=newest["id"])
    assert page.data is None
    assert page.meta == {"result_count": 0}


async def test_only_the_800_newest_mentions_are_reachable(
    x_client: AsyncClient, x_sandbox: RunningSandbox
) -> None:
    for i in range(805):
        x_sandbox.x.add_mention("crowd", f"ping {i}")
    total = 0
    token = None
    while True:
        page = await x_client.get_users_mentions(
            x_sandbox.x.brand.id, max_results=100, pagination_token=token
        )
        total += page.meta["result_count"]
        token = page.meta.get("next_token")
        if token is None:
            break
    assert total == 800


async def test_a_customer_reply_carries_the_thread(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    root = await x_control.mention("alice", "my order is late")
    ours = await x_client.create_tweet(text="Sorry! Which order?", in_reply_to_tweet_id=root["id"])
    again = await x_control.mention("alice", "order 42", in_reply_to=ours.data["id"])

    page = await x_client.get_users_mentions(
        x_sandbox.x.brand.id, since_id=root["id"], tweet_fields=MENTION_FIELDS
    )

    (reply,) = page.data
    assert reply.id == int(again["id"])
    assert reply.conversation_id == int(root["id"])
    assert reply.in_reply_to_user_id == int(x_sandbox.x.brand.id)
    assert reply.referenced_tweets[0].id == int(ours.data["id"])


async def test_own_timeline_shows_what_the_brand_posted(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    root = await x_control.mention("alice", "hi")
    reply = await x_client.create_tweet(text="Hello Alice", in_reply_to_tweet_id=root["id"])
    timeline = await x_client.get_users_tweets(x_sandbox.x.brand.id, tweet_fields=["conversation_id"])
    assert [t.id for t in timeline.data] == [int(reply.data["id"])]
    assert timeline.data[0].conversation_id == int(root["id"])


async def test_dm_events_newest_first_paginated_with_the_brands_own_sends(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    brand_id = x_sandbox.x.brand.id
    first = await x_control.dm("alice", "hello?")
    sent = await x_client.create_direct_message(
        participant_id=first["sender_id"], text="Hi Alice, how can we help?"
    )
    await x_control.dm("alice", "my parcel")
    await x_control.dm("bob", "question")

    events = []
    token = None
    while True:
        page = await x_client.get_direct_message_events(
            max_results=3,
            pagination_token=token,
            event_types="MessageCreate",
            dm_event_fields=["id", "text", "sender_id", "created_at", "dm_conversation_id", "event_type"],
            expansions="sender_id",
        )
        events += page.data
        token = page.meta.get("next_token")
        if token is None:
            break

    assert [e.text for e in events] == ["question", "my parcel", "Hi Alice, how can we help?", "hello?"]
    ids = [e.id for e in events]
    assert ids == sorted(ids, reverse=True)
    echo = next(e for e in events if e.sender_id == int(brand_id))
    assert echo.id == int(sent.data["dm_event_id"])
    low, high = sorted((int(first["sender_id"]), int(brand_id)))
    assert echo.dm_conversation_id == f"{low}-{high}" == sent.data["dm_conversation_id"]


async def test_dm_events_of_one_conversation(x_client: AsyncClient, x_control: XSandboxControl) -> None:
    alice = await x_control.dm("alice", "a1")
    await x_control.dm("bob", "b1")
    page = await x_client.get_direct_message_events(participant_id=alice["sender_id"])
    assert [e.text for e in page.data] == ["a1"]


async def test_sent_dm_and_reply_tweet_appear_in_sent(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    mention = await x_control.mention("carol", "where is my refund?")
    dm = await x_control.dm("dave", "hi")
    tweet = await x_client.create_tweet(text="We are on it, Carol.", in_reply_to_tweet_id=mention["id"])
    message = await x_client.create_direct_message(participant_id=dm["sender_id"], text="Hello Dave")

    sent = await x_control.sent()

    assert sent["tweets"] == [
        {
            "id": tweet.data["id"],
            "text": "We are on it, Carol.",
            "full_text": "@carol We are on it, Carol.",  # as X shows a reply: the mention it auto-populates
            "in_reply_to_tweet_id": mention["id"],
        }
    ]
    assert sent["dms"] == [{"id": message.data["dm_event_id"], "recipient": "dave", "text": "Hello Dave"}]


async def test_tweet_length_limit_counts_like_x(x_client: AsyncClient) -> None:
    await x_client.create_tweet(text="a" * 280)
    with pytest.raises(tweepy.Forbidden, match="too long"):
        await x_client.create_tweet(text="b" * 281)
    with pytest.raises(tweepy.Forbidden, match="too long"):
        await x_client.create_tweet(text="語" * 141)  # CJK weighs 2: 282
    await x_client.create_tweet(text="see https://example.com/" + "x" * 300)  # a URL counts 23


async def test_duplicate_tweet_is_forbidden(x_client: AsyncClient) -> None:
    await x_client.create_tweet(text="Thanks for reaching out!")
    with pytest.raises(tweepy.Forbidden, match="duplicate content"):
        await x_client.create_tweet(text="Thanks for reaching out!")


async def test_reply_to_unknown_tweet_is_refused_like_a_deleted_one(x_client: AsyncClient) -> None:
    # X answers a reply to a post it cannot show (never existed, deleted, hidden) with the same 403.
    with pytest.raises(tweepy.Forbidden, match="deleted or not visible to you"):
        await x_client.create_tweet(text="hello", in_reply_to_tweet_id="123")


async def test_wrong_consumer_secret_is_unauthorized(x_sandbox: RunningSandbox) -> None:
    settings = sandbox_settings(
        x_sandbox.base_url,
        x_consumer_key="sandbox-consumer-key",
        x_consumer_secret="not-the-secret",
        x_access_token="sandbox-access-token",
        x_access_token_secret="sandbox-access-token-secret",
    )
    client = make_x_client(settings)
    try:
        with pytest.raises(tweepy.Unauthorized):
            await client.get_me()
        with pytest.raises(tweepy.Unauthorized):
            await client.create_tweet(text="should never be posted")
    finally:
        await close_x_client(client)
    assert x_sandbox.x.sent() == {"tweets": [], "dms": []}


async def test_wrong_bearer_token_is_unauthorized(x_sandbox: RunningSandbox) -> None:
    client = make_x_client(sandbox_settings(x_sandbox.base_url, x_bearer_token="wrong"))
    try:
        with pytest.raises(tweepy.Unauthorized):
            await client.get_users_mentions(x_sandbox.x.brand.id)
    finally:
        await close_x_client(client)


async def test_app_only_auth_is_refused_where_x_needs_a_user(x_client: AsyncClient) -> None:
    with pytest.raises(tweepy.Forbidden, match="Application-Only is forbidden"):
        await x_client.get_me(user_auth=False)


async def test_over_the_rate_limit_is_429_with_a_reset_time(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    await x_control.config(rate_limit_window_s=60, rate_limits={"mentions": {"app": 2}})
    for _ in range(2):
        await x_client.get_users_mentions(x_sandbox.x.brand.id)
    with pytest.raises(tweepy.TooManyRequests) as caught:
        await x_client.get_users_mentions(x_sandbox.x.brand.id)
    error = caught.value
    assert error.response.headers["x-rate-limit-remaining"] == "0"
    assert error.response.headers["x-rate-limit-limit"] == "2"
    assert time.time() < error.reset_time <= time.time() + 61
    # user-context calls have their own bucket, as on X
    await x_client.get_users_mentions(x_sandbox.x.brand.id, user_auth=True)


async def test_rate_limit_headers_count_down(x_client: AsyncClient, x_sandbox: RunningSandbox) -> None:
    raw = AsyncClient(bearer_token=x_client.bearer_token, return_type=aiohttp.ClientResponse)
    raw.session = x_client.session
    first = await raw.get_users_mentions(x_sandbox.x.brand.id)
    second = await raw.get_users_mentions(x_sandbox.x.brand.id)
    assert int(second.headers["x-rate-limit-remaining"]) == int(first.headers["x-rate-limit-remaining"]) - 1
    assert int(first.headers["x-rate-limit-reset"]) > time.time()


async def test_injected_429_carries_reset_header(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    await x_control.fault(status=429, count=1, path_prefix="/2/dm_events")
    with pytest.raises(tweepy.TooManyRequests) as caught:
        await x_client.get_direct_message_events()
    assert caught.value.reset_time is not None
    await x_client.get_direct_message_events()  # the fault was used up


async def test_injected_503s_then_recovery(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    await x_control.fault(status=503, count=2, path_prefix="/2/users/")
    for _ in range(2):
        with pytest.raises(tweepy.TwitterServerError) as caught:
            await x_client.get_users_mentions(x_sandbox.x.brand.id)
        assert caught.value.response.status == 503
    await x_client.create_tweet(text="posting is not under /2/users/")
    page = await x_client.get_users_mentions(x_sandbox.x.brand.id)
    assert page.meta == {"result_count": 0}
    assert (await x_control.sent())["tweets"][0]["text"] == "posting is not under /2/users/"


async def test_bad_parameters_are_x_bad_requests(x_client: AsyncClient, x_sandbox: RunningSandbox) -> None:
    with pytest.raises(tweepy.BadRequest, match="max_results"):
        await x_client.get_users_mentions(x_sandbox.x.brand.id, max_results=3)
    with pytest.raises(tweepy.BadRequest, match="tweet.fields"):
        await x_client.get_users_mentions(x_sandbox.x.brand.id, tweet_fields=["nonsense"])
    with pytest.raises(tweepy.BadRequest, match="pagination_token"):
        await x_client.get_users_mentions(x_sandbox.x.brand.id, pagination_token="!!")


async def test_unknown_user_mentions_is_a_partial_error(x_client: AsyncClient) -> None:
    page = await x_client.get_users_mentions("42")
    assert page.data is None
    assert page.errors[0]["title"] == "Not Found Error"


async def test_reset_clears_posts_but_ids_keep_increasing(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    before = await x_control.mention("alice", "one")
    alice_id = before["author_id"]
    await x_control.reset()
    after = await x_control.mention("alice", "two")
    assert int(after["id"]) > int(before["id"])
    assert after["author_id"] == alice_id  # customers keep their ids across resets
    page = await x_client.get_users_mentions(x_sandbox.x.brand.id)
    assert [t.text for t in page.data] == ["@frontdesk two"]


async def test_a_customer_who_does_not_accept_dms_gets_none(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    dm = await x_control.dm("erin", "hi")
    await x_control.customer("erin", accepts_dms=False)
    with pytest.raises(tweepy.Forbidden, match="not allowed to send messages"):
        await x_client.create_direct_message(participant_id=dm["sender_id"], text="Hello Erin")
    assert (await x_control.sent())["dms"] == []
