"""Listening end to end: the whole Frontdesk (`started`, the X emulator through tweepy's real AsyncClient, the
session's real Rasa, a real store on SQLite and PostgreSQL).  A post that does not address the brand and one
that does both appear in the stream, classified; an agent opens a ticket and answers through the desk's API:
in public only under the post that addressed the brand, and the other one, refused with X's reason, by DM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from desk import create_desk_app
from frontdesk.core.vocabulary import CATEGORIES
from storage import listening, usage
from storage.agents import create_agent
from storage.models import ListeningItem
from tests.fixtures.bot import BotHarness, bot_harness, e2e_settings, eventually
from tests.fixtures.desk import TEST_SECRET_KEY, mint_api_token

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture
async def listening_bot(db, database_url: str, nlu_settings, nlu_server_url: str) -> AsyncIterator[BotHarness]:  # type: ignore[no-untyped-def]
    async with bot_harness(lambda sb: e2e_settings(
        nlu_settings, database_url, nlu_server_url, sb, x_listening_poll_s=0.2,
    )) as harness:
        yield harness


async def _post(bot: BotHarness, author: str, text: str) -> dict[str, Any]:
    response = await bot.http.post(f"{bot.sandbox_url}/_sandbox/posts", json={"author": author, "text": text})
    response.raise_for_status()
    return response.json()


async def _item_for(bot: BotHarness, post_id: str) -> ListeningItem:
    async def probe() -> ListeningItem | None:
        return next((i for i in await listening.list_items(bot.db) if i.platform_post_id == post_id), None)

    return await eventually(probe, what=f"post {post_id} in the listening stream")


async def test_a_match_appears_classified_and_is_answered_where_x_allows(listening_bot: BotHarness) -> None:
    bot = listening_bot
    quiet = await _post(bot, "carol", "frontdesk checkout keeps failing, so annoying, I was charged twice")
    loud = await bot.mention("dave", "frontdesk checkout took my money and the order never arrived")
    await _post(bot, "erin", "nothing about the brand here")

    carol = await _item_for(bot, quiet["id"])
    dave = await _item_for(bot, loud["id"])
    # Both rules match it (it names the brand and checkout): it is kept once, under the one that found it first.
    assert carol.rule in ("brand", "checkout") and carol.author_handle == "carol" and not carol.addressed_brand
    assert dave.addressed_brand  # it @mentions the brand
    assert carol.intent is not None and carol.category in CATEGORIES  # the real model classified it
    assert carol.sentiment.value == "negative"  # "failing", "annoying", "charged twice"
    assert carol.author_accepts_dms is True  # X's receives_your_dm, read with the user's token
    assert len(await listening.list_items(bot.db)) == 2  # erin's post matches no rule

    agent = await create_agent(bot.db, name="Ada", email="ada@example.com", password="correct horse battery")
    settings = bot.running.settings.model_copy(update={"secret_key": SecretStr(TEST_SECRET_KEY)})
    desk = create_desk_app(bot.db, settings)
    headers = await mint_api_token(bot.db, agent.id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=desk), base_url="http://desk.test") as api:
        stream = (await api.get(f"/api/listening?rule={carol.rule}&sentiment=negative", headers=headers)).json()
        assert carol.id in [i["id"] for i in stream["items"]]

        ticket = await api.post(f"/api/listening/{carol.id}/ticket", headers=headers)
        assert ticket.status_code == 201, ticket.text
        refused = await api.post(f"/api/listening/{carol.id}/reply", headers=headers,
                                 json={"text": "Sorry to hear that, Carol."})
        assert refused.status_code == 409
        assert "mentions it or quotes" in refused.json()["detail"] and refused.json()["dm_offered"] is True
        by_dm = await api.post(f"/api/listening/{carol.id}/reply", headers=headers,
                               json={"text": "Hi Carol, sorry about checkout. Your order number?", "via": "dm"})
        assert by_dm.status_code == 201, by_dm.text

        public = await api.post(f"/api/listening/{dave.id}/reply", headers=headers,
                                json={"text": "Dave, we're on it: a colleague is checking your order now."})
        assert public.status_code == 201, public.text

    assert await bot.wait_dms_to("carol", 1) == ["Hi Carol, sorry about checkout. Your order number?"]

    async def reply_under_dave() -> list[dict[str, Any]] | None:
        tweets = (await bot.sent())["tweets"]
        found = [t for t in tweets if t["text"].startswith("Dave, we're on it")]
        return found or None

    [reply] = await eventually(reply_under_dave, what="the public reply under dave's post")
    assert reply["in_reply_to_tweet_id"] == loud["id"]
    sent = await bot.sent()
    assert all(t["in_reply_to_tweet_id"] != quiet["id"] for t in sent["tweets"])  # nothing public to carol

    # What listening read is counted, apart, for the Figures card and /metrics.
    assert bot.running.channel.usage is not None
    await bot.running.channel.usage.flush()
    today = (await usage.usage_by_day(bot.db, since_day=usage.utc_day()))[usage.utc_day()]
    assert today.get(usage.POSTS_READ_LISTENING, 0) >= 2
