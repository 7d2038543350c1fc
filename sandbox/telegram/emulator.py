"""One emulated Telegram bot: its token, its in-memory world, what users do to it, answering a Bot API call.

The control API (``sandbox/telegram/control.py``) is a thin HTTP skin over the user-side methods here, and
the Bot API transport (``sandbox/telegram/api.py``) over :meth:`TelegramEmulator.call`, so in-process tests
can call them directly (``emulator.user_message(...)``) or over HTTP, with the same result.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from frontdesk.core.settings import SANDBOX_TELEGRAM_TOKEN
from sandbox.telegram.methods import METHODS, Params
from sandbox.telegram.state import ControlError, TelegramApiError, TelegramState, as_int, now
from sandbox.telegram.webhook import WebhookDeliverer

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
                     reply_to_message_id: int | None = None, update_id: int | None = None) -> dict[str, Any]:
        """A user writes ``text`` to the bot (privately or in a group); returns update_id and message_id.

        ``update_id``: give this update that id (and number the next ones after it), as Telegram does after
        a week without updates; see `TelegramState.enqueue`.
        """
        if update_id is not None:
            update_id = as_int(update_id, '"update_id"')
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
        update_id, queued = self.state.enqueue("message", copy.deepcopy(message), update_id=update_id)
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

    def set_flood_limits(self, **changes: Any) -> dict[str, Any]:
        """Change (or switch off, ``enabled=False``) the flood limits sendMessage enforces; see `FloodLimits`."""
        return self.state.set_flood_limits(**changes).as_dict()

    def set_webhook_proxy(self, url: str | None) -> dict[str, Any]:
        """Deliver webhook requests to ``url`` (same path and query) instead of the registered https URL.

        The sandbox's stand-in for the TLS-terminating proxy in front of a real deployment: Telegram posts
        to ``https://bot.example/webhooks/telegram``, the proxy hands it to ``http://127.0.0.1:8000``.
        """
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise ControlError('"url" must be an http(s):// base URL such as "http://127.0.0.1:8000", or null')
        self.state.webhook_proxy = url or None
        self.state._wake()
        return {"webhook_proxy": self.state.webhook_proxy}

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
            "flood_limits": self.state.flood.as_dict(),
            "flood_refusals": self.state.flood_refusals,
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
