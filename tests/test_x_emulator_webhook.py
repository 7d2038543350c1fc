"""Account Activity webhooks from the X emulator: CRC on registration, signed deliveries, X's payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from tweepy.asynchronous import AsyncClient

from frontdesk.core.settings import SANDBOX_X_CONSUMER_SECRET
from sandbox.server import RunningSandbox
from sandbox.x.control_client import SandboxControlError, XSandboxControl


def _sign(secret: str, data: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


@dataclass
class Receiver:
    url: str
    deliveries: list[tuple[str, bytes]] = field(default_factory=list)
    answer_crc: bool = True


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A bot-side webhook endpoint: answers CRC like X requires and records each POST."""
    box = Receiver(url="")

    async def crc(request: web.Request) -> web.Response:
        token = request.query["crc_token"]
        answer = _sign(SANDBOX_X_CONSUMER_SECRET, token.encode()) if box.answer_crc else "sha256=wrong"
        return web.json_response({"response_token": answer})

    async def events(request: web.Request) -> web.Response:
        box.deliveries.append((request.headers.get("x-twitter-webhooks-signature", ""), await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get("/hook", crc)
    app.router.add_post("/hook", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield box
    finally:
        await runner.cleanup()


async def test_webhook_deliveries_are_signed_and_shaped_like_x(
    receiver: Receiver, x_control: XSandboxControl, x_client: AsyncClient, x_sandbox: RunningSandbox
) -> None:
    await x_control.webhook(receiver.url)
    mention = await x_control.mention("alice", "long question " + "x" * 150)
    dm = await x_control.dm("bob", "psst")
    reply = await x_client.create_tweet(text="Looking into it", in_reply_to_tweet_id=mention["id"])
    await x_client.create_direct_message(participant_id=dm["sender_id"], text="Hi Bob")
    await x_sandbox.drain_webhooks()

    assert len(receiver.deliveries) == 4
    for signature, body in receiver.deliveries:
        assert hmac.compare_digest(signature, _sign(SANDBOX_X_CONSUMER_SECRET, body))
    payloads = [json.loads(body) for _, body in receiver.deliveries]
    brand_id = x_sandbox.x.brand.id
    assert all(p["for_user_id"] == brand_id for p in payloads)

    (incoming,) = payloads[0]["tweet_create_events"]
    assert incoming["id_str"] == mention["id"]
    assert incoming["user"]["screen_name"] == "alice"
    assert incoming["truncated"] is True
    assert incoming["extended_tweet"]["full_text"] == mention["text"]

    (dm_event,) = payloads[1]["direct_message_events"]
    assert dm_event["type"] == "message_create"
    assert dm_event["id"] == dm["id"]
    assert dm_event["message_create"]["sender_id"] == dm["sender_id"]
    assert dm_event["message_create"]["target"]["recipient_id"] == brand_id
    assert dm_event["message_create"]["message_data"]["text"] == "psst"
    assert int(dm_event["created_timestamp"]) > 0

    (own_tweet,) = payloads[2]["tweet_create_events"]  # X echoes the brand's own posts too
    assert own_tweet["id_str"] == reply.data["id"]
    assert own_tweet["in_reply_to_status_id_str"] == mention["id"]
    assert own_tweet["user"]["id_str"] == brand_id
    (own_dm,) = payloads[3]["direct_message_events"]
    assert own_dm["message_create"]["sender_id"] == brand_id


async def test_registration_fails_when_crc_is_answered_wrongly(
    receiver: Receiver, x_control: XSandboxControl
) -> None:
    receiver.answer_crc = False
    with pytest.raises(SandboxControlError, match="CRC"):
        await x_control.webhook(receiver.url)
    await x_control.mention("alice", "nobody hears this")
    status = await x_control.webhook_status()
    assert status["url"] is None
    assert receiver.deliveries == []


async def test_no_deliveries_after_unregistering(
    receiver: Receiver, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    await x_control.webhook(receiver.url)
    await x_control.mention("alice", "first")
    await x_control.webhook(None)
    await x_control.mention("alice", "second")
    await x_sandbox.drain_webhooks()
    assert len(receiver.deliveries) == 1
