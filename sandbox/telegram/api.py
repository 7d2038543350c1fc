"""The Telegram Bot API as python-telegram-bot calls it: ``{GET,POST} /bot{token}/{method}``.

Everything in this file is something api.telegram.org serves: parameters as a form, multipart, JSON body or
query string, and every answer in Telegram's ``{"ok": ..., "result" | "error_code", "description"}`` envelope.
What each method does lives in ``methods.py`` / ``state.py``; what only the sandbox adds is in ``control.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from sandbox.telegram.emulator import TelegramEmulator
from sandbox.telegram.methods import Params
from sandbox.telegram.state import TelegramApiError

log = logging.getLogger(__name__)


async def _read_params(request: web.Request) -> Params:
    raw: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                raise TelegramApiError(400, "Bad Request: can't parse JSON object") from None
            if isinstance(body, dict):
                raw.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    return Params(raw)


def _envelope(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def _make_bot_api_handler(emulator: TelegramEmulator) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        try:
            params = await _read_params(request)
            result = await emulator.call(token, method, params)
        except TelegramApiError as exc:
            if exc.status != 409:
                log.debug("telegram %s -> %s %s", method, exc.status, exc.description)
            return _envelope(exc.status, exc.envelope())
        return _envelope(200, {"ok": True, "result": result})

    return handle


async def _file_not_found(request: web.Request) -> web.Response:
    return _envelope(404, {"ok": False, "error_code": 404, "description": "Not Found"})


def add_bot_api_routes(app: web.Application, emulator: TelegramEmulator) -> None:
    """Serve ``emulator`` at ``/bot{token}/{method}`` (and refuse file downloads, which it does not keep)."""
    bot_api = _make_bot_api_handler(emulator)
    app.router.add_route("GET", "/bot{token}/{method}", bot_api)
    app.router.add_route("POST", "/bot{token}/{method}", bot_api)
    app.router.add_route("*", "/file/bot{token}/{path:.*}", _file_not_found)
