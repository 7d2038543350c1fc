"""The tweepy seam (bot.channels.x.client) and emulator behaviours that need a controlled clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import tweepy
from pydantic import SecretStr
from tweepy.asynchronous import AsyncClient
from yarl import URL

from bot.channels.x.client import (
    RedirectingSession,
    XClientConfigError,
    close_x_client,
    make_x_client,
    open_x_client,
)
from frontdesk.core.settings import SANDBOX_X_BEARER_TOKEN, SANDBOX_X_CONSUMER_KEY, Settings
from sandbox.server import RunningSandbox, running_sandbox
from sandbox.x.control_client import XSandboxControl
from sandbox.x.state import XConfig, XState
from tests.fixtures.sandbox import sandbox_settings


def test_no_credentials_and_no_sandbox_names_the_fix() -> None:
    with pytest.raises(XClientConfigError, match="FRONTDESK_X_API_BASE"):
        make_x_client(Settings(_env_file=None))  # type: ignore[call-arg]


def test_incomplete_credentials_name_the_missing_ones() -> None:
    settings = Settings(_env_file=None, x_consumer_key=SecretStr("k"), x_consumer_secret=SecretStr("s"))  # type: ignore[call-arg]
    with pytest.raises(XClientConfigError, match="FRONTDESK_X_ACCESS_TOKEN, FRONTDESK_X_ACCESS_TOKEN_SECRET"):
        make_x_client(settings)


def test_sandbox_base_without_keys_uses_the_sandbox_credentials() -> None:
    client = make_x_client(sandbox_settings("http://127.0.0.1:9"))
    assert client.consumer_key == SANDBOX_X_CONSUMER_KEY
    assert client.bearer_token == SANDBOX_X_BEARER_TOKEN


def test_real_keys_without_base_talk_to_x_itself() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        x_consumer_key=SecretStr("ck"),
        x_consumer_secret=SecretStr("cs"),
        x_access_token=SecretStr("1-at"),
        x_access_token_secret=SecretStr("ats"),
    )
    client = make_x_client(settings)
    assert client.consumer_key == "ck"
    session = client.session
    assert isinstance(session, RedirectingSession)
    assert session.rewrite("https://api.twitter.com/2/users/me") == "https://api.twitter.com/2/users/me"


def test_rewrite_keeps_signed_query_encoding() -> None:
    session = RedirectingSession("http://127.0.0.1:8081/")
    signed = URL(
        "https://api.twitter.com/2/users/1/mentions?start_time=2026-11-25T10%3A00%3A00Z", encoded=True
    )
    rewritten = session.rewrite(signed)
    assert isinstance(rewritten, URL)
    assert str(rewritten) == "http://127.0.0.1:8081/2/users/1/mentions?start_time=2026-11-25T10%3A00%3A00Z"


async def test_trailing_slash_in_base_and_signed_colons_in_query(x_sandbox: RunningSandbox) -> None:
    x_sandbox.x.add_mention("alice", "hi")
    async with open_x_client(sandbox_settings(x_sandbox.base_url + "/")) as client:
        since = datetime.now(UTC) - timedelta(minutes=5)
        page = await client.get_users_mentions(x_sandbox.x.brand.id, start_time=since, user_auth=True)
    assert [t.text for t in page.data] == ["@frontdesk hi"]


async def test_lookup_a_single_post(x_client: AsyncClient, x_control: XSandboxControl) -> None:
    posted = await x_control.mention("alice", "a question")
    found = await x_client.get_tweet(posted["id"], tweet_fields=["author_id"], expansions="author_id")
    assert found.data.text == "@frontdesk a question"
    assert found.includes["users"][0].username == "alice"


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_the_rate_limit_window_reopens_after_its_reset() -> None:
    clock = _Clock()
    # the emulator's clock jumps 15 minutes ahead of the client's: leave oauth_timestamp unchecked
    state = XState(XConfig(timestamp_tolerance_s=0), clock=clock)
    state.limits.configure(window_s=900, limits={"create_tweet": {"user": 1}})
    async with running_sandbox(x_state=state) as sandbox:
        client = make_x_client(sandbox_settings(sandbox.base_url))
        try:
            await client.create_tweet(text="one")
            with pytest.raises(tweepy.TooManyRequests) as caught:
                await client.create_tweet(text="two")
            clock.now = caught.value.reset_time + 1
            await client.create_tweet(text="two")
        finally:
            await close_x_client(client)
    assert [t["text"] for t in state.sent()["tweets"]] == ["one", "two"]


async def test_faults_are_listed_and_used_up(
    x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    listed = await x_control.fault(latency_ms=1, count=1, path_prefix="/2/users/me")
    assert listed["faults"] == [
        {"path_prefix": "/2/users/me", "status": None, "count": 1, "latency_ms": 1, "method": None,
             "after_commit": False}
    ]
    await x_client.get_me()
    assert x_sandbox.x.faults.active == []
    await x_control.fault(status=503, count=5)
    assert (await x_control.clear_faults())["faults"] == []
    await x_client.get_me()


async def test_x_rate_limit_profile_uses_xs_numbers(
    x_control: XSandboxControl, x_client: AsyncClient
) -> None:
    config = await x_control.config(rate_limit_profile="x")
    assert config["rate_limits"]["dm_events"] == {"user": 15}
    for _ in range(15):
        await x_client.get_direct_message_events()
    with pytest.raises(tweepy.TooManyRequests):
        await x_client.get_direct_message_events()
