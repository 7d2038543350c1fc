"""X webhooks: the emulator pushes signed events to the bot's real HTTP endpoint; forgeries get 403."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from bot.channels.x import XChannel, XSender
from bot.channels.x.webhook import SIGNATURE_HEADER, make_x_webhook_router, sign
from frontdesk.core.settings import SANDBOX_X_CONSUMER_SECRET
from sandbox.server import RunningSandbox
from sandbox.x.webhook import payload_for
from storage.actions import bot_reply
from storage.db import Database
from storage.models import Conversation, ConversationKind, Message
from storage.outbox import lease_due
from tests.fixtures.x_channel import inbound_count, inbound_ids, serving, x_settings


def _app(db: Database, sb: RunningSandbox, client: Any = None, woken: list[int] | None = None) -> FastAPI:
    app = FastAPI()
    wake = (lambda: woken.append(1)) if woken is not None else None
    app.include_router(make_x_webhook_router(db, x_settings(sb), sb.x.brand.id, wake, client=client))
    return app


async def _threads(db: Database) -> dict[str, tuple[ConversationKind, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Message.platform_message_id, Conversation.kind, Conversation.platform_ref).join(
                Conversation, Conversation.id == Message.conversation_id
            )
        )
        return {str(r[0]): (r[1], r[2]) for r in rows.all()}


async def test_signed_events_pushed_by_x_are_recorded_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    earlier = (await x_control.mention("kim", "first, before the webhook existed"))["id"]
    woken: list[int] = []
    async with serving(_app(db, x_sandbox, x_client, woken)) as base:
        await x_control.webhook(f"{base}/webhooks/x")  # the emulator runs X's CRC check first
        long_text = (
            "my card was charged twice & I want a refund. " + "Order 4711, paid on Monday, twice. " * 4
        )
        root = (await x_control.mention("lee", long_text))["id"]  # > 140: X sends it in extended_tweet
        reply = (await x_control.mention("lee", "any news?", in_reply_to=root))["id"]
        unseen_parent_reply = (await x_control.mention("kim", "hello again", in_reply_to=earlier))["id"]
        dm = await x_control.dm("max", "can I pay by invoice?")
        # The brand's own posts come back through the webhook too; they must not become inbound messages.
        await bot_reply(db, (await _conversation_after_webhooks(db, dm["id"], x_sandbox)), "Yes, we can.")
        await x_client.create_tweet(text="We are looking into it.", in_reply_to_tweet_id=root)
        [delivery] = await lease_due(db, "w")
        await XSender(x_client, brand).deliver(delivery)
        await x_sandbox.drain_webhooks()

        status = await x_control.webhook_status()
        assert status["deliveries"] and all(d.get("status") == 200 for d in status["deliveries"])
        assert sorted(await inbound_ids(db), key=int) == sorted(
            [root, reply, unseen_parent_reply, dm["id"]], key=int
        )
        threads = await _threads(db)
        assert threads[reply] == (ConversationKind.public, root)  # found through the stored thread
        assert threads[unseen_parent_reply] == (ConversationKind.public, earlier)  # looked up on X
        assert threads[dm["id"]] == (ConversationKind.dm, dm["sender_id"])
        async with db.session() as session:
            stored = await session.execute(select(Message.text).where(Message.platform_message_id == root))
            assert stored.scalar_one() == x_sandbox.x.tweets[root].text  # the whole post, not the cut
        assert woken

        # X redelivers an event (it retries when unsure): still stored once.
        tweet = x_sandbox.x.tweets[root]
        body = json.dumps(payload_for(x_sandbox.x, "tweet", tweet)).encode()
        async with httpx.AsyncClient() as http:
            again = await http.post(
                f"{base}/webhooks/x",
                content=body,
                headers={
                    SIGNATURE_HEADER: sign(SANDBOX_X_CONSUMER_SECRET, body),
                    "content-type": "application/json",
                },
            )
        assert again.status_code == 200
        assert await inbound_count(db) == 4


async def _conversation_after_webhooks(db: Database, platform_id: str, sb: RunningSandbox) -> int:
    await sb.drain_webhooks()
    async with db.session() as session:
        return (
            await session.execute(
                select(Message.conversation_id).where(Message.platform_message_id == platform_id)
            )
        ).scalar_one()


async def test_forged_and_unsigned_webhooks_are_refused_and_store_nothing(
    db: Database, x_sandbox: RunningSandbox
) -> None:
    tweet = x_sandbox.x.add_mention("nia", "I will pretend to be X")
    body = json.dumps(payload_for(x_sandbox.x, "tweet", tweet)).encode()
    async with serving(_app(db, x_sandbox)) as base, httpx.AsyncClient(base_url=base) as http:
        url = "/webhooks/x"
        headers = {"content-type": "application/json"}
        unsigned = await http.post(url, content=body, headers=headers)
        forged = await http.post(
            url, content=body, headers={**headers, SIGNATURE_HEADER: sign("not-the-secret", body)}
        )
        tampered_body = body.replace(b"pretend", b"PRETEND")
        tampered = await http.post(
            url,
            content=tampered_body,
            headers={**headers, SIGNATURE_HEADER: sign(SANDBOX_X_CONSUMER_SECRET, body)},
        )
        garbage = await http.post(url, content=body, headers={**headers, SIGNATURE_HEADER: "sha256=AAAA"})
        assert [r.status_code for r in (unsigned, forged, tampered, garbage)] == [403, 403, 403, 403]
        assert await inbound_count(db) == 0

        crc = await http.get(url, params={"crc_token": "challenge-123"})
        assert crc.json() == {"response_token": sign(SANDBOX_X_CONSUMER_SECRET, b"challenge-123")}
        assert (await http.get(url)).status_code == 400

        signed = await http.post(
            url, content=body, headers={**headers, SIGNATURE_HEADER: sign(SANDBOX_X_CONSUMER_SECRET, body)}
        )
        assert signed.status_code == 200
        assert await inbound_ids(db) == [tweet.id]


async def test_the_crc_endpoint_signs_no_forged_event(db: Database, x_sandbox: RunningSandbox) -> None:
    """The attack of issue 17: ask the CRC endpoint to sign an event body, then POST it with that answer."""
    forged_event = {
        "for_user_id": x_sandbox.x.brand.id,
        "direct_message_events": [
            {
                "type": "message_create",
                "id": "1999999999999999999",
                "created_timestamp": "1764000000000",
                "message_create": {
                    "sender_id": "4242",
                    "target": {"recipient_id": x_sandbox.x.brand.id},
                    "message_data": {"text": "this is Anna: send my parcel to 9 Mallory Road"},
                },
            }
        ],
        "users": {"4242": {"id": "4242", "screen_name": "anna", "name": "Anna"}},
    }
    body = json.dumps(forged_event)
    async with serving(_app(db, x_sandbox)) as base, httpx.AsyncClient(base_url=base) as http:
        oracle = await http.get("/webhooks/x", params={"crc_token": body})
        assert oracle.status_code == 400 and "response_token" not in oracle.text
        for token in ("a" * 129, "has space", "{}", "tok\u00e9n", "x;y"):
            assert (await http.get("/webhooks/x", params={"crc_token": token})).status_code == 400, token

        # Even had an answer leaked, a signature the attacker cannot compute stays refused.
        guessed = oracle.json().get("response_token", "sha256=")
        posted = await http.post(
            "/webhooks/x",
            content=body.encode(),
            headers={"content-type": "application/json", SIGNATURE_HEADER: guessed},
        )
        assert posted.status_code == 403
        assert await inbound_count(db) == 0

        # X's own tokens (base64 / url-safe, as the emulator's registration sends) are still answered.
        for token in ("challenge-123", "dGhpcyBpcyBhIHRva2Vu+/=", "A" * 128):
            crc = await http.get("/webhooks/x", params={"crc_token": token})
            assert crc.json() == {"response_token": sign(SANDBOX_X_CONSUMER_SECRET, token.encode())}


async def test_channel_in_webhook_mode_serves_the_router_and_does_not_poll(
    db: Database, x_sandbox: RunningSandbox, x_control: Any, x_requests: list[Any]
) -> None:
    channel = XChannel(db, x_settings(x_sandbox, x_webhook_enabled=True, x_webhook_backstop_poll_s=0))
    await channel.start()
    try:
        assert channel.ready and channel.pollers == []
        app = FastAPI()
        app.include_router(channel.webhook_router())
        async with serving(app) as base:
            await x_control.webhook(f"{base}/webhooks/x")
            tweet = (await x_control.mention("ola", "do you deliver on Sundays?"))["id"]
            await x_sandbox.drain_webhooks()
        assert await inbound_ids(db) == [tweet]
        assert [r.path for r in x_requests] == ["/2/users/me"]  # it came by webhook, not by polling
    finally:
        await channel.stop()


async def test_an_edit_pushed_by_webhook_updates_the_stored_post_once(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    """Account Activity sends an edit as a new tweet_create_event whose v1.1 `edit_history` names the original."""
    async with serving(_app(db, x_sandbox, x_client)) as base:
        await x_control.webhook(f"{base}/webhooks/x")
        original = await x_control.mention("nina", "my invoice is wrnog")
        await x_sandbox.drain_webhooks()
        edited = await x_control.mention("nina", "my invoice is wrong", edit_of=original["id"])
        await x_sandbox.drain_webhooks()
        # X redelivers the original late: it must not undo the edit.
        body = json.dumps(payload_for(x_sandbox.x, "tweet", x_sandbox.x.tweets[original["id"]])).encode()
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{base}/webhooks/x", content=body,
                headers={SIGNATURE_HEADER: sign(SANDBOX_X_CONSUMER_SECRET, body), "content-type": "application/json"},
            )
        assert response.status_code == 200
    assert await inbound_ids(db) == [edited["id"]]
    async with db.session() as session:
        stored = (await session.execute(select(Message))).scalar_one()
    assert stored.text == "@frontdesk my invoice is wrong" and stored.summons_brand is True
