"""The Telegram emulator's control API under ``/_sandbox/telegram/``: what only the sandbox serves.

No auth; for tests and people trying the sandbox: ``POST messages``, ``POST callback``, ``POST chats``,
``POST block``, ``POST webhook_proxy``, ``POST limits`` / ``GET limits``, ``GET sent``, ``GET state``, ``POST faults`` / ``GET faults``, ``POST reset``.  Bad input gets
``{"error": ...}`` with a 400.  See docs/sandbox-telegram.md.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.telegram.emulator import CONTROL_PREFIX, TelegramEmulator
from sandbox.telegram.state import ControlError, as_int


def _routes(emulator: TelegramEmulator) -> list[web.RouteDef]:
    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError as exc:
            raise ControlError(f"the body must be a JSON object ({exc})") from None
        if not isinstance(body, dict):
            raise ControlError("the body must be a JSON object")
        return body

    def guarded(func: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                return web.json_response(await func(request))
            except ControlError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except (KeyError, TypeError) as exc:
                return web.json_response({"error": f"malformed request: {exc!r}; see docs/sandbox-telegram.md"},
                                         status=400)

        return handler

    async def messages(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        sender = body.get("from")
        if not isinstance(sender, dict):
            raise ControlError('"from" must be an object like {"id": 42, "username": "alice"}')
        return emulator.user_message(chat_id=body.get("chat_id"), sender=sender, text=body.get("text"),
                                     chat_type=body.get("chat_type"), chat_title=body.get("chat_title"),
                                     reply_to_message_id=body.get("reply_to_message_id"),
                                     update_id=body.get("update_id"))

    async def callback(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        sender = body.get("from")
        if not isinstance(sender, dict):
            raise ControlError('"from" must be an object like {"id": 42, "username": "alice"}')
        for key in ("chat_id", "message_id", "data"):
            if key not in body:
                raise ControlError(f'"{key}" is required')
        return emulator.press_button(chat_id=body["chat_id"], message_id=body["message_id"], sender=sender,
                                     data=str(body["data"]))

    async def chats(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        if "id" not in body:
            raise ControlError('"id" (a negative group id) is required')
        return emulator.add_chat(chat_id=body["id"], chat_type=body.get("type", "supergroup"),
                                 title=body.get("title"))

    async def block(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        emulator.block(chat_id=body.get("chat_id"), blocked=bool(body.get("blocked", True)))
        return {"ok": True}

    async def faults(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        if "status" not in body:
            raise ControlError('"status" (429, 500, 502, ...) is required')
        retry_after = body.get("retry_after")
        fault = emulator.inject_fault(status=as_int(body["status"], '"status"'),
                                      count=as_int(body.get("count", 1), '"count"'),
                                      method=body.get("method"),
                                      retry_after=None if retry_after is None else as_int(retry_after,
                                                                                            '"retry_after"'))
        return {"armed": fault, "faults": emulator.snapshot()["faults"]}

    async def limits(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        return {"flood_limits": emulator.set_flood_limits(**body)}

    async def get_limits(request: web.Request) -> dict[str, Any]:
        return {"flood_limits": emulator.snapshot()["flood_limits"],
                "flood_refusals": emulator.snapshot()["flood_refusals"]}

    async def webhook_proxy(request: web.Request) -> dict[str, Any]:
        body = await body_of(request)
        if "url" not in body:
            raise ControlError('"url" is required: the local base URL webhook requests go to, or null')
        return emulator.set_webhook_proxy(body["url"])

    async def list_faults(request: web.Request) -> dict[str, Any]:
        return {"faults": emulator.snapshot()["faults"]}

    async def sent(request: web.Request) -> dict[str, Any]:
        return emulator.sent()

    async def state(request: web.Request) -> dict[str, Any]:
        return emulator.snapshot()

    async def reset(request: web.Request) -> dict[str, Any]:
        emulator.reset()
        return {"ok": True}

    p = CONTROL_PREFIX
    return [
        web.post(f"{p}/messages", guarded(messages)),
        web.post(f"{p}/callback", guarded(callback)),
        web.post(f"{p}/chats", guarded(chats)),
        web.post(f"{p}/block", guarded(block)),
        web.post(f"{p}/faults", guarded(faults)),
        web.get(f"{p}/faults", guarded(list_faults)),
        web.post(f"{p}/webhook_proxy", guarded(webhook_proxy)),
        web.post(f"{p}/limits", guarded(limits)),
        web.get(f"{p}/limits", guarded(get_limits)),
        web.get(f"{p}/sent", guarded(sent)),
        web.get(f"{p}/state", guarded(state)),
        web.post(f"{p}/reset", guarded(reset)),
    ]


def add_control_routes(app: web.Application, emulator: TelegramEmulator) -> None:
    """Register the ``/_sandbox/telegram/`` routes for ``emulator`` on ``app``."""
    app.router.add_routes(_routes(emulator))
