"""The X emulator's rules for the brand's replies, edits and deleted posts, through the real tweepy AsyncClient.

References (cited in sandbox/x/state.py): X's changelog of 2026-02-23 and manage-tweets/integrate.mdx (a reply
only under a post whose author @mentioned or quoted the replier), edit-posts.mdx (30 minutes, 5 edits, a new
id per edit, `edit_history_tweet_ids` on every version, deleting one version deletes the chain).
"""

from __future__ import annotations

import pytest
import tweepy
from tweepy.asynchronous import AsyncClient

from sandbox.server import RunningSandbox
from sandbox.x.control_client import SandboxControlError, XSandboxControl
from sandbox.x.webhook import tweet_event


async def _brand_post(x_client: AsyncClient, text: str) -> str:
    created = await x_client.create_tweet(text=text, user_auth=True)
    return str(created.data["id"])


# --- replies X forbids -------------------------------------------------------------------------------------
async def test_reply_under_a_post_that_does_not_summon_the_brand_is_refused(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    announcement = await _brand_post(x_client, "Our spring sale starts today")
    # The customer replies to the brand's post but unticks @frontdesk: the post reaches the brand, unsummoned.
    post = await x_control.mention("alice", "is it on headphones too?", in_reply_to=announcement, mention_brand=False)
    assert "@frontdesk" not in post["text"]
    with pytest.raises(tweepy.Forbidden) as refused:
        await x_client.create_tweet(text="Yes, all of them", in_reply_to_tweet_id=post["id"], user_auth=True)
    assert refused.value.api_messages == [
        "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by "
        "the author of the post you are replying to."
    ]
    # Under a post that @mentions the brand, or quotes one of its posts, the same reply is fine.
    mention = await x_control.mention("alice", "is it on headphones too?")
    await x_client.create_tweet(text="Yes, all of them!", in_reply_to_tweet_id=mention["id"], user_auth=True)
    quote = await x_control.mention("bob", "finally!", quote_of=announcement, mention_brand=False)
    await x_client.create_tweet(text="Enjoy the sale", in_reply_to_tweet_id=quote["id"], user_auth=True)


async def test_enterprise_access_is_not_restricted(x_client: AsyncClient, x_control: XSandboxControl) -> None:
    announcement = await _brand_post(x_client, "New store opening")
    post = await x_control.mention("carol", "where?", in_reply_to=announcement, mention_brand=False)
    assert (await x_control.config(summoned_replies_only=False))["summoned_replies_only"] is False
    await x_client.create_tweet(text="In Zurich", in_reply_to_tweet_id=post["id"], user_auth=True)


async def test_a_post_that_would_not_reach_the_brand_is_refused_by_the_control_api(
    x_control: XSandboxControl,
) -> None:
    with pytest.raises(SandboxControlError, match="would not reach the brand"):
        await x_control.mention("dave", "talking about something else", mention_brand=False)


# --- edits ---------------------------------------------------------------------------------------------------
async def test_an_edit_is_a_new_id_continuing_the_edit_chain(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    original = await x_control.mention("erin", "my order 12 is lte")
    edited = await x_control.mention("erin", "my order 12 is late, please help", edit_of=original["id"])
    assert edited["id"] != original["id"]
    chain = [original["id"], edited["id"]]
    assert edited["edit_history_tweet_ids"] == chain
    # Both versions carry the whole chain, oldest first; the old one still reads by id.
    for version in chain:
        found = await x_client.get_tweet(version, tweet_fields=["edit_controls"])
        assert found.data.edit_history_tweet_ids == [int(i) for i in chain]  # tweepy makes them ints
        assert found.data.edit_controls["edits_remaining"] == 4
    # The mentions timeline lists the latest version only.
    page = await x_client.get_users_mentions((await x_control.users())["brand"]["id"])
    assert [t.id for t in page.data] == [int(edited["id"])]
    assert all(t.edit_history_tweet_ids for t in page.data)


async def test_edits_follow_xs_rules(x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox) -> None:
    original = await x_control.mention("fay", "first")
    with pytest.raises(SandboxControlError, match="only the author"):
        await x_control.mention("gus", "hijack", edit_of=original["id"])
    latest = original
    for n in range(5):
        latest = await x_control.mention("fay", f"edit {n}", edit_of=latest["id"])
    with pytest.raises(SandboxControlError, match="at most 5 times"):
        await x_control.mention("fay", "edit 6", edit_of=latest["id"])
    with pytest.raises(SandboxControlError, match="latest version"):
        await x_control.mention("fay", "old", edit_of=original["id"])
    # A reply to someone else cannot be edited at all.
    brand_post = await _brand_post(x_client, "Ask us anything")
    reply = await x_control.mention("fay", "a question", in_reply_to=brand_post)
    with pytest.raises(SandboxControlError, match="non-self-thread"):
        await x_control.mention("fay", "a better question", edit_of=reply["id"])
    # ... and the window closes 30 minutes after the first version.
    x_sandbox.x.config.edit_window_s = 0
    other = await x_control.mention("fay", "late")
    with pytest.raises(SandboxControlError, match="edit window"):
        await x_control.mention("fay", "later", edit_of=other["id"])


async def test_webhook_tweets_carry_the_v1_edit_history(x_control: XSandboxControl, x_sandbox: RunningSandbox) -> None:
    original = await x_control.mention("hana", "one")
    edited = await x_control.mention("hana", "two", edit_of=original["id"])
    event = tweet_event(x_sandbox.x, x_sandbox.x.tweets[edited["id"]])
    assert event["edit_history"] == {"initial_tweet_id": original["id"], "edit_tweet_ids": [original["id"], edited["id"]]}


# --- deleted posts -------------------------------------------------------------------------------------------
async def test_reply_to_a_deleted_post_is_refused_with_xs_wording(
    x_client: AsyncClient, x_control: XSandboxControl
) -> None:
    post = await x_control.mention("ivan", "never mind")
    edited = await x_control.mention("ivan", "never mind, sorted", edit_of=post["id"])
    assert (await x_control.delete_tweet(post["id"]))["deleted"] == [post["id"], edited["id"]]
    for version in (post["id"], edited["id"]):  # deleting one version deletes the chain
        with pytest.raises(tweepy.Forbidden) as refused:
            await x_client.create_tweet(text="Glad to hear", in_reply_to_tweet_id=version, user_auth=True)
        assert refused.value.api_messages == ["You attempted to reply to a Tweet that is deleted or not visible to you."]
    lookup = await x_client.get_tweet(post["id"])
    assert lookup.data is None and lookup.errors[0]["title"] == "Not Found Error"
    brand_id = (await x_control.users())["brand"]["id"]
    assert (await x_client.get_users_mentions(brand_id)).data is None
