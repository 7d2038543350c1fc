"""Recent search in the X emulator, through tweepy's real AsyncClient.search_recent_tweets: X's response
shape, its parameter limits and errors, the 7-day window, the rate limit, and the usage the client counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import tweepy
from tweepy.asynchronous import AsyncClient

from bot.channels.x.client import usage_meter
from sandbox.server import RunningSandbox
from sandbox.x import errors, search
from sandbox.x.control_client import SandboxControlError, XSandboxControl
from sandbox.x.state import XState
from storage import usage

FIELDS = ["author_id", "created_at", "conversation_id", "referenced_tweets", "entities"]


async def _raw_search(sb: RunningSandbox, **params: str) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {sb.x.config.bearer_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sb.base_url}/2/tweets/search/recent", params=params, headers=headers) as r:
            return r.status, await r.json(content_type=None)


async def test_a_post_that_does_not_mention_the_brand_is_found_with_its_author_and_meta(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    old = await x_control.post("carol", "Acme widgets are great")
    new = await x_control.post("dave", "my acme widget broke again #acmefail")
    await x_control.post("erin", "nothing to see here")

    page = await x_client.search_recent_tweets(
        "acme", expansions="author_id", tweet_fields=FIELDS, user_fields=["username"]
    )

    assert [str(t.id) for t in page.data] == [new["id"], old["id"]]  # newest first
    assert {u.username for u in page.includes["users"]} == {"carol", "dave"}
    assert page.meta == {"newest_id": new["id"], "oldest_id": old["id"], "result_count": 2}
    assert page.data[0].author_id == int(new["author_id"])
    # It did not reach the brand: no mention.
    mentions = await x_client.get_users_mentions(x_sandbox.x.brand.id)
    assert mentions.data is None

    since = await x_client.search_recent_tweets("acme", since_id=old["id"])
    assert [str(t.id) for t in since.data] == [new["id"]]
    nothing = await x_client.search_recent_tweets("acme", since_id=new["id"])
    assert nothing.data is None and nothing.meta == {"result_count": 0}


async def test_operators_phrases_hashtags_or_and_exclusions(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    a = await x_control.post("carol", "The Acme Rocket is late")
    b = await x_control.post("dave", "loving #AcmeRocket today")
    await x_control.post("erin", "acme rocket jobs: we are hiring")
    c = await x_control.post("frank", "acmee rocket, the typo one")

    page = await x_client.search_recent_tweets('("acme rocket" OR #acmerocket OR acmee) -hiring -is:retweet')

    assert {str(t.id) for t in page.data} == {a["id"], b["id"], c["id"]}
    by_author = await x_client.search_recent_tweets("loving from:dave")
    assert [str(t.id) for t in by_author.data] == [b["id"]]


async def test_pages_by_next_token(x_client: AsyncClient, x_control: XSandboxControl) -> None:
    posted = [await x_control.post(f"user{i}", f"acme post {i}") for i in range(13)]
    first = await x_client.search_recent_tweets("acme", max_results=10)
    assert first.meta["result_count"] == 10 and "next_token" in first.meta
    second = await x_client.search_recent_tweets("acme", max_results=10, next_token=first.meta["next_token"])
    assert second.meta["result_count"] == 3 and "next_token" not in second.meta
    assert {str(t.id) for t in first.data + second.data} == {p["id"] for p in posted}


@pytest.mark.parametrize("max_results", ["9", "101", "ten"])
async def test_max_results_outside_10_to_100_is_xs_400(x_sandbox: RunningSandbox, max_results: str) -> None:
    status, body = await _raw_search(x_sandbox, query="acme", max_results=max_results)
    assert status == 400
    assert body["title"] == "Invalid Request" and body["type"].endswith("/invalid-request")
    assert body["errors"][0]["parameters"] == {"max_results": [max_results]}
    assert "between 10 and 100" in body["errors"][0]["message"]


async def test_tweepy_raises_bad_request_for_a_bad_max_results(x_client: AsyncClient) -> None:
    with pytest.raises(tweepy.BadRequest, match="between 10 and 100"):
        await x_client.search_recent_tweets("acme", max_results=5)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("a" * 513, "exceeds 512 characters"),
        ("acme place_country:US", "invalid operator 'place_country'"),
        ("acme frobnicate:yes", "invalid operator 'frobnicate'"),
        ("is:reply", "must be used in conjunction"),
        ("-acme", "must be used in conjunction"),
        ('"acme rocket', "Unbalanced quotes"),
        ("(acme OR rocket", "Unbalanced parentheses"),
        ("acme is:nonsense", "invalid operator 'is:nonsense'"),
    ],
)
async def test_a_query_x_would_refuse_is_a_400_naming_the_problem(
    x_sandbox: RunningSandbox, query: str, says: str
) -> None:
    status, body = await _raw_search(x_sandbox, query=query)
    assert status == 400, body
    assert body["errors"][0]["parameters"] == {"query": [query]}
    assert says in body["errors"][0]["message"]


async def test_a_query_of_exactly_512_characters_is_accepted(x_sandbox: RunningSandbox) -> None:
    status, _ = await _raw_search(x_sandbox, query="acme " + "b" * 507)
    assert status == 200


async def test_missing_query_and_unknown_parameter_are_400(x_sandbox: RunningSandbox) -> None:
    status, body = await _raw_search(x_sandbox)
    assert status == 400 and body["errors"][0]["parameters"] == {"query": [""]}
    status, body = await _raw_search(x_sandbox, query="acme", pagination_size="3")
    assert status == 400 and "pagination_size" in body["errors"][0]["parameters"]


async def test_start_time_older_than_seven_days_is_refused(x_sandbox: RunningSandbox) -> None:
    eight_days = (datetime.now(UTC) - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = await _raw_search(x_sandbox, query="acme", start_time=eight_days)
    assert status == 400 and "must be on or after" in body["errors"][0]["message"]


def test_posts_older_than_seven_days_are_out_of_reach() -> None:
    now = [1_800_000_000.0]
    state = XState(clock=lambda: now[0])
    old = state.add_post("carol", "acme is old news")
    now[0] += search.WINDOW_S - 60
    fresh = state.add_post("dave", "acme is fresh")
    matcher = search.compile_query("acme")
    assert [t.id for t in state.search_recent(lambda t: matcher(_post(state, t)), search.WINDOW_S)] == [
        fresh.id, old.id
    ]
    now[0] += 120  # the first post is now 7 days and a minute old
    assert [t.id for t in state.search_recent(lambda t: matcher(_post(state, t)), search.WINDOW_S)] == [fresh.id]


def _post(state: XState, tweet: object) -> search.Post:
    from sandbox.x.api import _search_post

    return _search_post(state, tweet)


async def test_the_rate_limit_is_xs_and_a_429_carries_the_reset(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    config = await x_control.config(rate_limit_profile="x")
    assert config["rate_limits"]["search_recent"] == {"app": 450, "user": 300}
    await x_control.config(rate_limits={"search_recent": {"app": 2}})
    await x_client.search_recent_tweets("acme")
    await x_client.search_recent_tweets("acme")
    with pytest.raises(tweepy.TooManyRequests) as refused:
        await x_client.search_recent_tweets("acme")
    assert int(refused.value.response.headers["x-rate-limit-remaining"]) == 0
    assert int(refused.value.response.headers["x-rate-limit-reset"]) > datetime.now(UTC).timestamp()


async def test_receives_your_dm_is_answered_only_to_a_user(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    await x_control.customer("closed", accepts_dms=False)
    await x_control.post("closed", "acme support never answers")
    await x_control.post("open", "acme, anyone?")
    kwargs = {"expansions": "author_id", "user_fields": ["receives_your_dm"]}

    as_user = await x_client.search_recent_tweets("acme", user_auth=True, **kwargs)
    assert {u.username: u.data["receives_your_dm"] for u in as_user.includes["users"]} == {
        "closed": False, "open": True
    }
    as_app = await x_client.search_recent_tweets("acme", **kwargs)
    assert all("receives_your_dm" not in u.data for u in as_app.includes["users"])


async def test_the_client_counts_listening_reads_as_posts_and_users_read(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    for i in range(3):
        await x_control.post(f"user{i}", f"acme {i}")
    meter = usage_meter(x_client)
    assert meter is not None
    meter.take()
    await x_client.search_recent_tweets("acme", expansions="author_id")
    counts = {item: n for (_, item), n in meter.take().items()}
    assert counts == {usage.POSTS_READ_LISTENING: 3, usage.USERS_READ_LISTENING: 3}


async def test_the_control_route_refuses_a_post_that_mentions_the_brand(x_control: XSandboxControl) -> None:
    with pytest.raises(SandboxControlError, match="_sandbox/mentions"):
        await x_control.post("carol", "hey @frontdesk help")
    with pytest.raises(SandboxControlError, match="text"):
        await x_control._call("POST", "posts", {"author": "carol"})


def test_compile_query_errors_are_x_api_errors() -> None:
    with pytest.raises(errors.XApiError) as refused:
        search.compile_query("")
    assert refused.value.status == 400
