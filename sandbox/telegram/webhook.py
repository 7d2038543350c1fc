"""Webhook delivery: POST each pending update to the webhook URL, in order, until it is accepted.

Like Telegram, an update counts as delivered only on a 2xx answer; anything else (an error status, a
refused connection, a timeout) is recorded in ``getWebhookInfo.last_error_*`` and retried after a
growing pause, so a bot that is down for a moment loses nothing.  Telegram's pauses are minutes; the
sandbox's are short (``initial_backoff_s`` doubling up to ``max_backoff_s``) so tests stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from urllib.parse import urlsplit

import aiohttp

from sandbox.telegram.state import TelegramState

log = logging.getLogger(__name__)


def _target(url: str, proxy: str | None) -> str:
    """Where a delivery to ``url`` goes: ``url`` itself, or the same path and query on the proxy."""
    if not proxy:
        return url
    parts = urlsplit(url)
    return proxy.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class WebhookDeliverer:
    """One background task per emulator, started with the server and stopped with it."""

    def __init__(self, state: TelegramState, *, initial_backoff_s: float = 0.1, max_backoff_s: float = 2.0,
                 request_timeout_s: float = 10.0) -> None:
        self._state = state
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="telegram-webhook-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        backoff = self._initial_backoff_s
        while not self._state.closing:
            hook = self._state.webhook
            if hook is None or not self._state.pending:
                await self._state.wait_for_change(60.0)
                continue
            update = self._state.pending[0]
            error = await self._post(_target(hook.url, self._state.webhook_proxy), hook.secret_token, update)
            if self._state.webhook is not hook:
                continue  # the webhook changed while we were posting; start over with the new one
            if error is None:
                self._state.webhook_delivered(hook, update["update_id"])
                backoff = self._initial_backoff_s
                continue
            self._state.webhook_failed(hook, error)
            log.info("webhook delivery of update %s failed (%s); retrying in %.1fs",
                     update["update_id"], error, backoff)
            await self._state.wait_for_change(backoff)  # a new setWebhook retries at once
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _post(self, url: str, secret_token: str | None, update: dict[str, object]) -> str | None:
        """POST one update; None when accepted, else Telegram-style ``last_error_message`` text."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Content-Type": "application/json"}
        if secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        try:
            async with self._session.post(url, data=json.dumps(update), headers=headers) as resp:
                await resp.read()
                if 200 <= resp.status <= 299:
                    return None
                return f"Wrong response from the webhook: {resp.status} {resp.reason or ''}".strip()
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError as exc:
            return f"Connection refused ({exc.os_error})" if exc.os_error else "Connection refused"
        except aiohttp.ClientError as exc:
            return f"Connection error: {exc}"
