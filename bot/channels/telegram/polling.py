"""Long polling: the default way updates arrive (no public URL needed).

A plain `Bot.get_updates` loop rather than PTB's `Updater`, because the offset must come from the store
(so a restart continues where the last process stopped) and advance only once an update is handled.

On start the webhook is removed (Telegram refuses getUpdates while one is set).  Errors are survived:
RetryAfter waits as told, network trouble backs off, a Conflict (another process polls with this token)
is logged loudly and retried; only an invalid token stops the poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import Bot
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from bot.channels.telegram.client import ALLOWED_UPDATES, retry_after_seconds
from bot.channels.telegram.updates import UpdateDispatcher
from frontdesk.core import metrics

log = logging.getLogger("frontdesk.telegram")

MAX_BACKOFF_S = 30.0


class TelegramPoller:
    """Feeds `getUpdates` into the dispatcher until stopped.  ``await start()``, ``await stop()``."""

    def __init__(self, bot: Bot, dispatcher: UpdateDispatcher, *, timeout_s: int = 25) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._fetch: asyncio.Task[tuple] | None = None  # type: ignore[type-arg]
        self._stopping = False
        self._stop_event = asyncio.Event()
        self.failure: BaseException | None = None

    async def start(self) -> None:
        await self.dispatcher.load()
        await self.bot.delete_webhook()
        self._stopping = False
        self._stop_event.clear()
        self._task = asyncio.create_task(self._run(), name="telegram-poller")

    async def stop(self) -> None:
        """Stop after the update being handled (if any); a long poll in flight is abandoned.

        Abandoning it loses nothing: updates are confirmed only by the next call's offset.
        """
        self._stopping = True
        self._stop_event.set()
        if self._fetch is not None:
            self._fetch.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping:
            self._fetch = asyncio.ensure_future(
                self.bot.get_updates(
                    offset=self.dispatcher.next_offset,
                    timeout=self.timeout_s,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            )
            try:
                updates = await self._fetch
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except InvalidToken as exc:
                self.failure = exc
                log.error("telegram: the token was refused (%s); check FRONTDESK_TELEGRAM_TOKEN", exc)
                return
            except RetryAfter as exc:
                metrics.rate_limit_wait("telegram", "getUpdates", retry_after_seconds(exc))
                await self._sleep(retry_after_seconds(exc))
                continue
            except Conflict as exc:
                log.error("telegram: %s — is another Frontdesk polling with this token?", exc)
                await self._sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            except TelegramError as exc:
                log.warning("telegram: getUpdates failed (%s); retrying in %.0fs", exc, backoff)
                await self._sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            finally:
                self._fetch = None
            backoff = 1.0
            for update in updates:
                try:
                    await self.dispatcher.dispatch(update)
                except Exception:  # noqa: BLE001 - e.g. the store is down: ask for it again later
                    log.exception("telegram: update %s failed; it will be fetched again", update.update_id)
                    await self._sleep(backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
                    break  # the next getUpdates (offset unchanged) returns it again

    async def _sleep(self, seconds: float) -> None:
        """Wait, but not past a stop."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)
