"""A local Telegram Bot API: python-telegram-bot talks to it exactly as to api.telegram.org.

Point a bot at it with::

    ApplicationBuilder().token(SANDBOX_TELEGRAM_TOKEN)
        .base_url("http://127.0.0.1:PORT/bot").base_file_url("http://127.0.0.1:PORT/file/bot")

Bot API:  ``{GET,POST} /bot{token}/{method}`` (form, multipart, JSON body or query string).
Control API (no auth; for tests and people trying the sandbox), under ``/_sandbox/telegram/``:
``POST messages``, ``POST callback``, ``POST chats``, ``POST block``, ``GET sent``, ``GET state``,
``POST faults`` / ``GET faults``, ``POST reset``.  See docs/sandbox-telegram.md.

This module is the transport only; what each call does lives in telegram_state / telegram_methods.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import inspect
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from frontdesk.settings import SANDBOX_TELEGRAM_TOKEN
from sandbox.telegram_methods import METHODS, Params
from sandbox.telegram_state import ControlError, TelegramApiError, TelegramState, as_int, now
from sandbox.telegram_webhook import WebhookDeliverer

log = logging.getLogger(__name__)

TELEGRAM_EMULATOR_KEY: web.AppKey[TelegramEmulator] = web.AppKey("telegram_emulator")
CONTROL_PREFIX = "/_sandbox/telegram"


class TelegramEmulator:
    """One emulated bot: its token, its state, and the things a test or a person can make happen.

    The control API is a thin HTTP skin over the public methods here, so in-process tests can call them
    directly (``emulator.user_message(...)``) or over HTTP, with the same result.
    """

    def __init__(self, *, token: str = SANDBOX_TELEGRAM_TOKEN, bot_username: str = "frontdesk_bot",
                 bot_first_name: str = "Frontdesk") -> None:
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456
        self.token = token
        self.state = TelegramState(bot={
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        })
        self.webhooks = WebhookDeliverer(self.state)

    # ------------------------------------------------------------------ what users do
    def user_message(self, *, chat_id: int | None, sender: dict[str, Any], text: str,
                     chat_type: str | None = None, chat_title: str | None = None,
                     reply_to_message_id: int | None = None) -> dict[str, Any]:
        """A user writes ``text`` to the bot (privately or in a group); returns update_id and message_id."""
        if not isinstance(text, str) or not text:
            raise ControlError('"text" must be a non-empty string')
        user = self.state.user_payload(sender)
        chat_id = user["id"] if chat_id is None else as_int(chat_id, '"chat_id"')
        chat_type = chat_type or ("private" if chat_id > 0 else "supergroup" if str(chat_id).startswith("-100")
                                  else "group")
        chat = self.state.ensure_chat(chat_id, chat_type, user, chat_title)
        message: dict[str, Any] = {
            "message_id": self.state.new_message_id(chat_id),
            "from": user,
            "chat": copy.deepcopy(chat),
            "date": now(),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to_message_id is not None:
            target = self.state.get_message(chat_id, as_int(reply_to_message_id, '"reply_to_message_id"'))
            if target is None:
                raise ControlError(f"there is no message {reply_to_message_id} in chat {chat_id} to reply to; "
                                   f"GET {CONTROL_PREFIX}/sent lists the bot's messages")
            message["reply_to_message"] = self.state.as_reply_target(target)
        self.state.store_message(message)
        update_id, queued = self.state.enqueue("message", copy.deepcopy(message))
        return {"update_id": update_id, "message_id": message["message_id"], "chat_id": chat_id, "queued": queued}

    def press_button(self, *, chat_id: int, message_id: int, sender: dict[str, Any], data: str) -> dict[str, Any]:
        """A user presses the inline button carrying ``data`` under one of the bot's messages."""
        user = self.state.user_payload(sender)
        chat_id = as_int(chat_id, '"chat_id"')
        message = self.state.get_message(chat_id, as_int(message_id, '"message_id"'))
        if message is None or message.get("from", {}).get("id") != self.state.bot["id"]:
            raise ControlError(f"chat {chat_id} has no bot message {message_id}; "
                               f"GET {CONTROL_PREFIX}/sent lists the bot's messages")
        buttons = [b.get("callback_data") for row in message.get("reply_markup", {}).get("inline_keyboard", [])
                   for b in row if "callback_data" in b]
        if data not in buttons:
            raise ControlError(f"message {message_id} has no inline button with callback_data {data!r}; "
                               f"its buttons carry {buttons}")
        query = self.state.new_callback_query(user, message, data)
        update_id, queued = self.state.enqueue("callback_query", query)
        return {"update_id": update_id, "callback_query_id": query["id"], "queued": queued}

    def add_chat(self, *, chat_id: int, chat_type: str = "supergroup", title: str | None = None) -> dict[str, Any]:
        """Make the bot a member of a group (e.g. the agents' chat) without anybody writing in it first."""
        chat_id = as_int(chat_id, '"id"')
        return copy.deepcopy(self.state.ensure_chat(chat_id, chat_type, {"id": chat_id}, title))

    def block(self, *, chat_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sendMessage to them then fails with 403."""
        chat_id = as_int(chat_id, '"chat_id"')
        if blocked:
            self.state.blocked_chats.add(chat_id)
        else:
            self.state.blocked_chats.discard(chat_id)

    # ------------------------------------------------------------------ what tests look at
    def sent(self) -> dict[str, Any]:
        return {"messages": copy.deepcopy(self.state.sent),
                "callback_answers": copy.deepcopy(self.state.callback_answers)}

    def inject_fault(self, *, status: int, count: int = 1, method: str | None = None,
                     retry_after: int | None = None) -> dict[str, Any]:
        return self.state.add_fault(status, count, method, retry_after).as_dict()

    def snapshot(self) -> dict[str, Any]:
        return {
            "bot": copy.deepcopy(self.state.bot),
            "chats": list(copy.deepcopy(self.state.chats).values()),
            "pending_updates": copy.deepcopy(self.state.pending),
            "webhook": {**self.state.webhook_info(),
                        "delivered": self.state.webhook.delivered if self.state.webhook else 0},
            "faults": [f.as_dict() for f in self.state.faults],
        }

    def reset(self) -> None:
        self.state.reset()

    # ------------------------------------------------------------------ the Bot API
    async def call(self, token: str, method: str, params: Params) -> Any:
        """Answer one Bot API call; raises TelegramApiError exactly where Telegram refuses."""
        if token != self.token:
            if ":" in token and token.split(":", 1)[0].isdigit():
                raise TelegramApiError(401, "Unauthorized")
            raise TelegramApiError(404, "Not Found")  # Telegram's answer to a malformed token
        handler = METHODS.get(method.lower())
        if handler is None:
            raise TelegramApiError(404, "Not Found")
        fault = self.state.take_fault(method)
        if fault is not None:
            raise fault
        result = handler(self.state, params)
        if inspect.isawaitable(result):
            result = await result
        return result


# ---------------------------------------------------------------------------------------- transport
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


def _control_routes(emulator: TelegramEmulator) -> list[web.RouteDef]:
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
                                     reply_to_message_id=body.get("reply_to_message_id"))

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
        web.get(f"{p}/sent", guarded(sent)),
        web.get(f"{p}/state", guarded(state)),
        web.post(f"{p}/reset", guarded(reset)),
    ]


def add_telegram_routes(app: web.Application, *, token: str = SANDBOX_TELEGRAM_TOKEN,
                        bot_username: str = "frontdesk_bot") -> TelegramEmulator:
    """Mount the Telegram emulator (Bot API + control API) on ``app`` and return it.

    The webhook deliverer starts with the app and stops with it; long polls in flight are released on
    shutdown so the server stops at once.  The emulator is also reachable as ``app[TELEGRAM_EMULATOR_KEY]``.
    """
    emulator = TelegramEmulator(token=token, bot_username=bot_username)
    bot_api = _make_bot_api_handler(emulator)
    app.router.add_route("GET", "/bot{token}/{method}", bot_api)
    app.router.add_route("POST", "/bot{token}/{method}", bot_api)
    app.router.add_route("*", "/file/bot{token}/{path:.*}", _file_not_found)
    app.router.add_routes(_control_routes(emulator))
    app[TELEGRAM_EMULATOR_KEY] = emulator

    async def on_startup(_: web.Application) -> None:
        emulator.state.closing = False
        emulator.webhooks.start()

    async def on_shutdown(_: web.Application) -> None:
        emulator.state.close()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.webhooks.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return emulator


def build_telegram_app(*, token: str = SANDBOX_TELEGRAM_TOKEN, bot_username: str = "frontdesk_bot") -> web.Application:
    """An aiohttp app serving only the Telegram emulator (the emulator is ``app[TELEGRAM_EMULATOR_KEY]``)."""
    app = web.Application()
    add_telegram_routes(app, token=token, bot_username=bot_username)
    return app


@dataclass
class RunningTelegramSandbox:
    """A started standalone emulator: where it listens and the emulator itself."""

    url: str
    emulator: TelegramEmulator

    @property
    def token(self) -> str:
        return self.emulator.token

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    @property
    def control_url(self) -> str:
        return f"{self.url}{CONTROL_PREFIX}"


@contextlib.asynccontextmanager
async def run_telegram_sandbox(host: str = "127.0.0.1", port: int = 0, *, token: str = SANDBOX_TELEGRAM_TOKEN,
                               bot_username: str = "frontdesk_bot") -> AsyncIterator[RunningTelegramSandbox]:
    """Serve the emulator alone on ``host:port`` (0 = a free port) for the duration of the block."""
    app = build_telegram_app(token=token, bot_username=bot_username)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    try:
        yield RunningTelegramSandbox(url=f"http://{bound_host}:{bound_port}", emulator=app[TELEGRAM_EMULATOR_KEY])
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """``python -m sandbox.telegram_api --port 8082``: the Telegram emulator alone, until Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--token", default=SANDBOX_TELEGRAM_TOKEN)
    parser.add_argument("--bot-username", default="frontdesk_bot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    async def serve() -> None:
        async with run_telegram_sandbox(args.host, args.port, token=args.token,
                                        bot_username=args.bot_username) as sandbox:
            print(f"Telegram sandbox on {sandbox.url}  base_url={sandbox.base_url}  token={sandbox.token}")
            print(f"control API: {sandbox.control_url}/messages, /callback, /sent, /faults, /reset")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
