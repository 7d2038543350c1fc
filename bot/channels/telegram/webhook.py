"""Webhook mode: Telegram POSTs each update to ``/webhooks/telegram`` on Frontdesk's HTTP server.

Telegram proves it is Telegram with the secret given to setWebhook, sent back in the
``X-Telegram-Bot-Api-Secret-Token`` header.  A request without it, or with another value, is answered 403
and nothing is stored; a body that is not an update (not JSON, nested too deeply, fields of the wrong
shape) is answered 400.  An update is answered 200 only once it is handled; on an error the answer is 500
and Telegram delivers the same update again later (the dispatcher skips it if it was handled after all).

setWebhook asks for ``max_connections=1`` so updates arrive one at a time, in order, as with polling.

The URL is checked before anything is registered (`check_webhook_url`): Telegram takes only an HTTPS URL
on port 443, 80, 88 or 8443 (Bot API, setWebhook) and would refuse the rest at start-up with a bare
"Bad Request: bad webhook: ..."; Frontdesk says which setting to fix instead.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from telegram import Bot, Update

from bot.channels.telegram.client import ALLOWED_UPDATES

log = logging.getLogger("frontdesk.telegram")

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

Dispatch = Callable[[Update], Awaitable[None]]

# "Ports currently supported for webhooks: 443, 80, 88, 8443" (Bot API, setWebhook).
WEBHOOK_PORTS = (443, 80, 88, 8443)


def check_webhook_url(url: str) -> None:
    """Raise ValueError, naming the setting and the fix, unless Telegram would take ``url`` for a webhook."""
    setting = "FRONTDESK_TELEGRAM_WEBHOOK_URL"
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https":
        raise ValueError(f"{setting}={url!r} must be an https:// URL: Telegram delivers webhooks over HTTPS "
                         "only (put a TLS-terminating proxy in front of Frontdesk, or unset it to poll)")
    if not parts.hostname:
        raise ValueError(f"{setting}={url!r} has no host name; e.g. https://bot.example.com{WEBHOOK_PATH}")
    try:
        port = parts.port or 443
    except ValueError:
        port = -1
    if port not in WEBHOOK_PORTS:
        raise ValueError(f"{setting}={url!r}: Telegram delivers webhooks only to ports 443, 80, 88 or 8443; "
                         "use one of them (a proxy can forward it to Frontdesk's HTTP port)")


def _is_update_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def telegram_webhook_router(bot: Bot, dispatch: Dispatch, secret: str, *, path: str = WEBHOOK_PATH) -> APIRouter:
    """A FastAPI router with the webhook endpoint; mount it on the app that `telegram_webhook_url` reaches."""
    if not secret:
        raise ValueError("webhook mode needs a secret: set FRONTDESK_TELEGRAM_WEBHOOK_SECRET (1-256 of A-Za-z0-9_-)")
    expected = secret.encode()
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    async def telegram_webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("telegram webhook: a request without the right secret token was refused")
            return Response(status_code=403)
        try:
            payload = json.loads(await request.body())
            if not isinstance(payload, dict) or not _is_update_id(payload.get("update_id")):
                raise ValueError("not a JSON object with an integer update_id")
            update = Update.de_json(payload, bot)
        # What a body that is not an update raises: not JSON, nested deeper than the parser goes
        # (RecursionError), or fields of the wrong shape for python-telegram-bot's classes.
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            # The class only: the message may quote the body (customer data, characters logs cannot hold).
            log.warning("telegram webhook: not an update (%s); refused", type(exc).__name__)
            return Response(status_code=400)
        if update is None:
            return Response(status_code=400)
        try:
            await dispatch(update)
        except Exception:  # noqa: BLE001 - Telegram retries a non-2xx answer, which is what we want
            log.exception("telegram webhook: update %s failed; Telegram will deliver it again", update.update_id)
            return Response(status_code=500)
        return Response(status_code=200)

    return router


async def register_webhook(bot: Bot, url: str, secret: str) -> None:
    """Tell Telegram where to send updates (replaces polling for this token)."""
    if not url.endswith(WEBHOOK_PATH):
        url = url.rstrip("/") + WEBHOOK_PATH
    await bot.set_webhook(url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES), max_connections=1)
