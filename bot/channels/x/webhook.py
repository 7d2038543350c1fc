"""X Account Activity webhooks: X pushes each new mention and DM instead of waiting for the next poll.

`GET /webhooks/x?crc_token=T` answers X's challenge-response check; `POST /webhooks/x` accepts an event
only with a valid `x-twitter-webhooks-signature` (HMAC-SHA256 of the raw body with the app's consumer
secret, compared in constant time) and records it exactly as the pollers would (same `InboundMessage`,
same de-duplication), so webhooks and the backstop pollers can run together.

The HTTP layer (`make_x_webhook_router`) is kept apart from what is done with a payload (`XWebhookHandler`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import tweepy
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from tweepy.asynchronous import AsyncClient

from bot.channels.base import Wake
from bot.channels.recording import InboundRecorder
from bot.channels.x.api import TRANSIENT_ERRORS, call, raw_client, uses_user_auth_for_reads
from bot.channels.x.convert import dm_from_v1, is_x_id, tweet_from_v1, webhook_tweet_parent
from frontdesk.core import metrics
from frontdesk.core.settings import SANDBOX_X_CONSUMER_SECRET, Settings
from storage.actions import InboundMessage
from storage.db import Database
from storage.models import Channel, Conversation, ConversationKind, Message

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/x"
SIGNATURE_HEADER = "x-twitter-webhooks-signature"

# The CRC answer is HMAC(consumer_secret, token), the very signature a webhook POST of body `token`
# needs: answering any token would sign forged events for whoever asks.  X's tokens are short base64 /
# url-safe strings (the emulator's too), and no event body (a JSON object, starting with `{`) is ever
# one, so only tokens of that shape are answered.
CRC_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9+/=_-]{1,128}")


def is_crc_token(token: str) -> bool:
    """A token X could have sent: at most 128 characters of the base64 / url-safe alphabet."""
    return CRC_TOKEN_PATTERN.fullmatch(token) is not None


class WebhookConfigError(ValueError):
    """Webhooks cannot be verified without the app's consumer secret."""


def consumer_secret_for(settings: Settings) -> str:
    """The key X signs webhooks with: the app's consumer secret (in sandbox mode, the sandbox's)."""
    if settings.x_consumer_secret is not None:
        return settings.x_consumer_secret.get_secret_value()
    if settings.x_api_base:
        return SANDBOX_X_CONSUMER_SECRET
    raise WebhookConfigError(
        "X webhooks need FRONTDESK_X_CONSUMER_SECRET (the app's API key secret) to verify X's signatures; "
        "set it, or turn webhooks off with FRONTDESK_X_WEBHOOK_ENABLED=false"
    )


def sign(secret: str, payload: bytes) -> str:
    """`sha256=` + base64(HMAC-SHA256(secret, payload)): X's CRC answer and its webhook signature."""
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), payload, hashlib.sha256).digest()).decode()


# What reading a malformed item raises (a list where an object belongs, a missing id, ...): a bug in the
# payload, not in the store, so the item is skipped rather than the request failed (and retried) forever.
_MALFORMED = (AttributeError, KeyError, TypeError, ValueError)


class XWebhookHandler:
    """Verifies and records Account Activity events.

    Counters: `received`, `recorded`, `rejected`, `skipped` (items that were not a readable tweet or DM).
    """

    def __init__(
        self,
        db: Database,
        consumer_secret: str,
        brand_user_id: str,
        wake: Wake | None = None,
        *,
        client: AsyncClient | None = None,
    ) -> None:
        self.db = db
        self.recorder = InboundRecorder(db)  # concurrent deliveries share transactions
        self._secret = consumer_secret
        self.brand_id = str(brand_user_id)
        self.wake = wake or (lambda: None)
        self.client = client
        self._raw = raw_client(client) if client is not None else None
        self.received = 0
        self.recorded = 0
        self.rejected = 0
        self.skipped = 0

    def crc_response(self, crc_token: str) -> dict[str, str]:
        """X's challenge answer; refuses (ValueError) a token that is not in X's format (see above)."""
        if not is_crc_token(crc_token):
            raise ValueError("crc_token must be 1-128 characters of the base64 / url-safe alphabet")
        return {"response_token": sign(self._secret, crc_token.encode())}

    def verify(self, body: bytes, signature: str | None) -> bool:
        if not signature:
            return False
        return hmac.compare_digest(sign(self._secret, body).encode(), signature.strip().encode())

    async def handle(self, payload: Mapping[str, Any]) -> int:
        """Record the payload's mentions and DMs (the brand's own skipped); how many were new.

        An item that is not a readable tweet or DM (wrong shape, no numeric id) is skipped with a logged,
        counted reason (`skipped`, `frontdesk_inbound_skipped_total`); the payload's other items are kept.
        """
        self.received += 1
        for_user = payload.get("for_user_id")
        if for_user is not None and str(for_user) != self.brand_id:
            log.warning(
                "X webhook: event for user %.40r, not the brand (%s); ignored", for_user, self.brand_id
            )
            return 0
        messages: list[InboundMessage] = []
        for tweet in self._objects(payload, "tweet_create_events", "tweet"):
            try:
                message = tweet_from_v1(tweet, self.brand_id, await self._thread_root(tweet))
            except _MALFORMED as exc:
                self._skip("tweet", exc)
                continue
            self._keep(message, messages, "tweet")
        users = payload.get("users")
        users = users if isinstance(users, Mapping) else {}
        for event in self._objects(payload, "direct_message_events", "dm"):
            try:
                message = dm_from_v1(event, users, self.brand_id)
            except _MALFORMED as exc:
                self._skip("dm", exc)
                continue
            self._keep(message, messages, "dm")
        recorded = await self.recorder.record(sorted(messages, key=lambda m: int(m.platform_message_id)))
        new = sum(1 for r in recorded if r.is_new)
        if new:
            self.recorded += new
            self.wake()
        return new

    def _objects(self, payload: Mapping[str, Any], key: str, kind: str) -> list[Mapping[str, Any]]:
        items = payload.get(key) or []
        objects = []
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, Mapping):
                objects.append(item)
            else:
                self._skip(kind, TypeError("not a JSON object"))
        return objects

    def _keep(self, message: InboundMessage | None, messages: list[InboundMessage], kind: str) -> None:
        if message is None:
            return
        if not is_x_id(message.platform_message_id):
            self._skip(kind, ValueError("its id is not an X id"))
            return
        messages.append(message)

    def _skip(self, kind: str, exc: Exception) -> None:
        self.skipped += 1
        metrics.inbound_skipped("x", f"malformed_{kind}")
        # The exception's class only: its text may quote the payload (customer data, unloggable characters).
        log.warning(
            "X webhook: a %s item is not readable (%s); skipped, the rest kept", kind, type(exc).__name__
        )

    async def _thread_root(self, tweet: Mapping[str, Any]) -> str:
        """v1.1 tweets carry no `conversation_id`: find the thread root the way a poller would see it."""
        tweet_id = str(tweet.get("id_str") or tweet.get("id"))
        parent = webhook_tweet_parent(tweet)
        if parent is None:
            return tweet_id  # a new thread
        known = await self._known_thread_of(parent)
        if known is not None:
            return known
        if self._raw is not None and self.client is not None:
            try:
                result = await call(
                    self._raw,
                    "get_tweet",
                    tweet_id,
                    tweet_fields=["conversation_id"],
                    user_auth=uses_user_auth_for_reads(self.client),
                )
                root = (result.body.get("data") or {}).get("conversation_id")
                if root:
                    return str(root)
            except (tweepy.HTTPException, *TRANSIENT_ERRORS) as error:
                log.warning("X webhook: could not look up the thread of tweet %s: %s", tweet_id, error)
        return parent

    async def _known_thread_of(self, tweet_id: str) -> str | None:
        async with self.db.session() as session:
            return (
                await session.execute(
                    select(Conversation.platform_ref)  # type: ignore[call-overload]
                    .join(Message, Message.conversation_id == Conversation.id)
                    .where(
                        Message.channel == Channel.x,
                        Message.platform_message_id == tweet_id,
                        Conversation.kind == ConversationKind.public,
                    )
                    .limit(1)
                )
            ).scalar_one_or_none()


def make_x_webhook_router(
    db: Database,
    settings: Settings,
    brand_user_id: str,
    wake: Wake | None = None,
    *,
    client: AsyncClient | None = None,
    handler: XWebhookHandler | None = None,
) -> APIRouter:
    """An APIRouter serving X's webhook at `/webhooks/x` (mount it on the bot's FastAPI app).

    `client` (optional) lets the router look up the thread root of a reply it has never seen.
    """
    handler = handler or XWebhookHandler(
        db, consumer_secret_for(settings), brand_user_id, wake, client=client
    )
    router = APIRouter()

    # Plain Starlette endpoints (`add_route`), not FastAPI's: X calls these for every event, and FastAPI's
    # per-request dependency solving was a few percent of the bot's CPU for routes that read the raw body.
    async def x_crc(request: Request) -> JSONResponse:
        crc_token = request.query_params.get("crc_token")
        if not crc_token:
            return JSONResponse({"error": "crc_token query parameter is required"}, status_code=400)
        if not is_crc_token(crc_token):
            handler.rejected += 1
            log.warning("X webhook: CRC token not in X's format (%d characters); refused", len(crc_token))
            return JSONResponse(
                {"error": "crc_token must be 1-128 characters of the base64 / url-safe alphabet"}, status_code=400
            )
        return JSONResponse(handler.crc_response(crc_token))

    async def x_event(request: Request) -> JSONResponse:
        body = await request.body()
        if not handler.verify(body, request.headers.get(SIGNATURE_HEADER)):
            handler.rejected += 1
            log.warning("X webhook: missing or wrong %s; rejected", SIGNATURE_HEADER)
            return JSONResponse({"error": "invalid signature"}, status_code=403)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        except RecursionError:  # nested deeper than the parser goes: no event X sends looks like that
            log.warning("X webhook: a signed body nested too deeply to parse; refused")
            return JSONResponse({"error": "body is nested too deeply"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        new = await handler.handle(payload)
        return JSONResponse({"ok": True, "recorded": new})

    router.add_route(WEBHOOK_PATH, x_crc, methods=["GET"], include_in_schema=False)
    router.add_route(WEBHOOK_PATH, x_event, methods=["POST"], include_in_schema=False)
    router.x_webhook_handler = handler  # type: ignore[attr-defined]
    return router
