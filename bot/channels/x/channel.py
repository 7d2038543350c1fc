"""The X channel as the bot runs it: one tweepy client, the brand's identity, the pollers, the sender.

channel = XChannel(db, settings, wake=router.wake)
await channel.start()        # resolves the brand with GET /2/users/me, starts the pollers
outbox = OutboxLoop(db, {Channel.x: channel.sender}, owner="bot-1")
app.include_router(channel.webhook_router())   # only with FRONTDESK_X_WEBHOOK_ENABLED
...
await channel.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import tweepy
from fastapi import APIRouter
from tweepy.asynchronous import AsyncClient

from bot.channels.base import Wake
from bot.channels.x.api import CREDENTIALS_HINT, TRANSIENT_ERRORS, api_message, call, raw_client
from bot.channels.x.client import close_x_client, make_x_client, usage_meter
from bot.channels.x.dms import DmPoller
from bot.channels.x.listening import Classify, ListeningPoller
from bot.channels.x.mentions import MentionsPoller
from bot.channels.x.poller import Poller
from bot.channels.x.rate_limits import Pacer
from bot.channels.x.sender import XSender
from bot.channels.x.usage import UsageFlusher
from bot.channels.x.webhook import make_x_webhook_router
from bot.listening_rules import ListeningRules
from frontdesk.core.settings import Settings
from storage.db import Database

log = logging.getLogger(__name__)

START_ATTEMPTS = 5
# The app permission that covers everything Frontdesk does: read mentions, post replies, read and send DMs.
NEEDED_ACCESS_LEVEL = "read-write-directmessages"
_LEVEL_NAMES = {
    "read": "Read",
    "read-write": "Read and write",
    "read-write-directmessages": "Read and write and Direct message",
}


class XStartError(RuntimeError):
    """The channel cannot start: X refused the credentials or stayed unreachable."""


class XChannel:
    """Owns the tweepy client (built by `make_x_client(settings)` unless one is given)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        wake: Wake | None = None,
        client: AsyncClient | None = None,
        poll: bool = True,
    ) -> None:
        self.db = db
        self.settings = settings
        self.wake = wake or (lambda: None)
        self._own_client = client is None
        self.client = client or make_x_client(settings)
        self.poll = poll
        self.brand_id: str | None = None
        self.brand_username: str | None = None
        self.sender: XSender | None = None
        self.pollers: list[Poller] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.usage: UsageFlusher | None = None
        # Listening (bot/channels/x/listening.py): the rules in use and the classifier; None: no listening.
        self.listening: tuple[Callable[[], ListeningRules], Classify] | None = None

    @property
    def ready(self) -> bool:
        """The brand is known and the pollers (if any) are running."""
        return self.brand_id is not None and self.sender is not None

    async def start(self) -> None:
        meter = usage_meter(self.client)
        if meter is not None and self.usage is None:  # what X bills, into the store (the desk's estimate)
            self.usage = UsageFlusher(self.db, meter)
            self.usage.start()
        try:
            await self._resolve_brand()
        except BaseException:
            if self.usage is not None:
                await self.usage.stop()
                self.usage = None
            raise
        assert self.brand_id is not None
        if meter is not None:
            meter.own_user_id = self.brand_id
        self.sender = XSender(self.client, self.brand_id, db=self.db)
        if self.poll:
            await self.start_polling()
        log.info(
            "X channel ready as @%s (%s); %s",
            self.brand_username,
            self.brand_id,
            "webhooks on" if self.settings.x_webhook_enabled else "polling",
        )

    async def start_polling(self) -> None:
        """Start the mention and DM pollers (idempotent).  With several workers, call it only while this
        process holds the account's leader lease (bot/channels/leading.py), and `stop_polling()` when it is lost."""
        if self._tasks:
            return
        self.pollers = self._make_pollers()
        self._tasks = [asyncio.create_task(p.run(), name=f"x-{p.kind}-poller") for p in self.pollers]

    async def stop_polling(self) -> None:
        """Stop the pollers (a poll in flight is abandoned: its cursor was not advanced, nothing is lost)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.pollers = []

    def _make_pollers(self) -> list[Poller]:
        s = self.settings
        mentions_s, dms_s = s.x_mentions_poll_s, s.x_dms_poll_s
        if s.x_webhook_enabled:
            if s.x_webhook_backstop_poll_s <= 0:
                return self._listening_pollers({
                    "floor_s": s.x_poll_floor_s, "backoff_max_s": s.x_backoff_max_s, "backfill_s": s.x_backfill_s,
                })
            mentions_s = dms_s = (
                s.x_webhook_backstop_poll_s
            )  # webhooks carry the load; polls catch what X dropped
        common: dict[str, Any] = {
            "wake": self.wake,
            "floor_s": s.x_poll_floor_s,
            "backoff_max_s": s.x_backoff_max_s,
            "backfill_s": s.x_backfill_s,
        }
        assert self.brand_id is not None
        pollers: list[Poller] = [
            MentionsPoller(self.db, self.client, self.brand_id, interval_s=mentions_s, **common),
            DmPoller(
                self.db, self.client, self.brand_id, interval_s=dms_s, page_size=s.x_dms_page_size,
                overlap_s=s.x_dm_overlap_s, **common,
            ),
        ]
        return pollers + self._listening_pollers(common)

    def _listening_pollers(self, common: dict[str, Any]) -> list[Poller]:
        """Recent search per listening rule; it runs beside webhooks too (they never deliver search)."""
        if self.listening is None or self.settings.x_listening_poll_s <= 0:
            return []
        assert self.brand_id is not None
        rules, classify = self.listening
        return [ListeningPoller(
            self.db, self.client, self.brand_id, interval_s=self.settings.x_listening_poll_s, rules=rules,
            classify=classify, brand_username=self.brand_username or "",
            **{k: v for k, v in common.items() if k != "wake"},
        )]

    async def _resolve_brand(self) -> None:
        pacer = Pacer(floor_s=self.settings.x_poll_floor_s, backoff_max_s=self.settings.x_backoff_max_s)
        raw = raw_client(self.client)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                result = await call(raw, "get_me", user_auth=True)
                data = result.body["data"]
                self.brand_id, self.brand_username = str(data["id"]), str(data.get("username") or "")
                self._check_access_level(result.access_level)
                return
            except (tweepy.Unauthorized, tweepy.Forbidden) as error:
                raise XStartError(
                    f"X refused GET /2/users/me ({api_message(error)}): {CREDENTIALS_HINT}"
                ) from None
            except tweepy.TooManyRequests:
                delay = pacer.after_rate_limited(None)
            except (tweepy.HTTPException, *TRANSIENT_ERRORS) as error:
                if attempt == START_ATTEMPTS:
                    base = self.settings.x_api_base or "https://api.twitter.com"
                    raise XStartError(f"X ({base}) is not answering GET /2/users/me: {error}") from None
                delay = pacer.after_failure()
            log.warning("X: GET /2/users/me failed (attempt %d); retrying in %.1f s", attempt, delay)
            await asyncio.sleep(delay)

    def _check_access_level(self, level: str | None) -> None:
        """X names the token's permission in `x-access-level` on every user-context answer; without
        Direct Messages every DM read and send would be refused (403), so the channel does not start."""
        if level is None:
            log.warning("X did not report x-access-level for GET /2/users/me; the DM permission is unchecked")
            return
        if "directmessages" in level.split("-"):
            return
        have = _LEVEL_NAMES.get(level, level)
        raise XStartError(
            f"the X app's permission is {have!r} (x-access-level: {level}); Frontdesk reads and sends Direct "
            f"Messages, so the app lacks the Direct Messages permission. In the X developer portal set the "
            f"app's permissions to {_LEVEL_NAMES[NEEDED_ACCESS_LEVEL]!r}, then regenerate the access token "
            "and secret (a token keeps the permission it was made with) and update "
            "FRONTDESK_X_ACCESS_TOKEN and FRONTDESK_X_ACCESS_TOKEN_SECRET"
        )

    def stats(self) -> dict[str, dict[str, object]]:
        """Counters for metrics and health checks; a poller's `stopped` says why it gave up (else None)."""
        out: dict[str, dict[str, object]] = {
            p.kind: {
                "polls": p.polls,
                "requests": p.requests,
                "recorded": p.recorded,
                "rate_limit_waits": p.rate_limit_waits,
                "errors": p.errors,
                "stopped": p.stopped_reason,
            }
            for p in self.pollers
        }
        if self.sender is not None:
            out["sender"] = {
                "sent": self.sender.sent, "reconciled": self.sender.reconciled, "held": self.sender.held
            }
        return out

    def poke(self) -> None:
        """Poll now (e.g. a test or a webhook hint)."""
        for poller in self.pollers:
            poller.poke()

    def webhook_router(self) -> APIRouter:
        if self.brand_id is None:
            raise RuntimeError(
                "start() the X channel before asking for its webhook router (it needs the brand id)"
            )
        return make_x_webhook_router(self.db, self.settings, self.brand_id, self.wake, client=self.client)

    async def stop(self) -> None:
        await self.stop_polling()
        if self.usage is not None:
            await self.usage.stop()
            self.usage = None
        if self._own_client:
            await close_x_client(self.client)
