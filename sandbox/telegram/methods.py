"""The Bot API methods the emulator answers, as plain functions of (state, parameters) -> result.

Parameters arrive as Telegram accepts them: form fields or query-string values (strings, with non-string
values JSON-encoded, which is what python-telegram-bot sends) or a JSON body (native types).
:class:`Params` hides the difference.  Method names are case-insensitive, as on Telegram.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sandbox.telegram.state import TelegramApiError, TelegramState, now
from sandbox.telegram.text import check_length, render

_MAX_CALLBACK_DATA_BYTES = 64
_BUTTON_ACTIONS = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
                   "callback_game", "pay")


class Params:
    """Typed access to one request's parameters, whatever encoding they came in."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = dict(raw)

    def __contains__(self, name: str) -> bool:
        return self._raw.get(name) not in (None, "")

    def raw(self, name: str) -> Any:
        return self._raw.get(name)

    def str(self, name: str) -> str | None:
        value = self._raw.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self._raw.get(name)
        if value in (None, ""):
            return default
        if isinstance(value, bool):
            raise TelegramApiError(400, f"Bad Request: parameter \"{name}\" must be an Integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise TelegramApiError(400, f"Bad Request: parameter \"{name}\" must be an Integer") from None

    def float(self, name: str, default: float) -> float:
        value = self._raw.get(name)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TelegramApiError(400, f"Bad Request: parameter \"{name}\" must be a Number") from None

    def bool(self, name: str) -> bool:
        value = self._raw.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def json(self, name: str, what: str) -> Any:
        value = self._raw.get(name)
        if isinstance(value, str):
            if not value:
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise TelegramApiError(400, f"Bad Request: can't parse {what} JSON object") from None
        return value


Handler = Callable[[TelegramState, Params], Any | Awaitable[Any]]
METHODS: dict[str, Handler] = {}


def _method(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        METHODS[name.lower()] = func
        return func

    return register


# ------------------------------------------------------------------------------------------- bot
@_method("getMe")
def get_me(state: TelegramState, params: Params) -> dict[str, Any]:
    return copy.deepcopy(state.bot)


@_method("logOut")
@_method("close")
def log_out(state: TelegramState, params: Params) -> bool:
    return True


@_method("setMyCommands")
def set_my_commands(state: TelegramState, params: Params) -> bool:
    commands = params.json("commands", "bot commands") or []
    if not isinstance(commands, list):
        raise TelegramApiError(400, "Bad Request: can't parse bot commands JSON object")
    state.commands = commands
    return True


@_method("getMyCommands")
def get_my_commands(state: TelegramState, params: Params) -> list[dict[str, Any]]:
    return copy.deepcopy(state.commands)


@_method("deleteMyCommands")
def delete_my_commands(state: TelegramState, params: Params) -> bool:
    state.commands = []
    return True


# ------------------------------------------------------------------------------------------- updates
@_method("getUpdates")
async def get_updates(state: TelegramState, params: Params) -> list[dict[str, Any]]:
    allowed = params.json("allowed_updates", "allowed updates")
    if allowed is not None and not isinstance(allowed, list):
        raise TelegramApiError(400, "Bad Request: can't parse allowed updates JSON object")
    return await state.get_updates(
        offset=params.int("offset", 0) or 0,
        limit=params.int("limit", 100) or 100,
        timeout=params.float("timeout", 0.0),
        allowed_updates=allowed,
    )


@_method("setWebhook")
def set_webhook(state: TelegramState, params: Params) -> bool:
    url = (params.str("url") or "").strip()
    drop = params.bool("drop_pending_updates")
    if not url:  # Telegram: an empty url removes the webhook
        state.delete_webhook(drop)
        return True
    _check_webhook_url(url)
    secret = params.str("secret_token")
    if secret is not None and (not 1 <= len(secret) <= 256
                               or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)):
        raise TelegramApiError(400, "Bad Request: secret token contains unallowed characters")
    allowed = params.json("allowed_updates", "allowed updates")
    state.set_webhook(url, secret or None, params.int("max_connections", 40) or 40,
                      allowed if isinstance(allowed, list) else None, drop)
    return True


@_method("deleteWebhook")
def delete_webhook(state: TelegramState, params: Params) -> bool:
    state.delete_webhook(params.bool("drop_pending_updates"))
    return True


@_method("getWebhookInfo")
def get_webhook_info(state: TelegramState, params: Params) -> dict[str, Any]:
    return state.webhook_info()


# ------------------------------------------------------------------------------------------- messages
@_method("sendMessage")
def send_message(state: TelegramState, params: Params) -> dict[str, Any]:
    chat = state.resolve_chat(params.raw("chat_id"))
    if chat["id"] in state.blocked_chats:
        raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
    parse_mode = params.str("parse_mode")
    text = render(params.str("text") or "", parse_mode)
    check_length(text)
    markup = _reply_markup(params, inline_only=False)
    reply_to = _reply_target(state, params, chat["id"])
    state.take_send_slot(chat)  # after validation: a refused request is not a message sent

    message: dict[str, Any] = {
        "message_id": state.new_message_id(chat["id"]),
        "from": state.bot_as_sender(),
        "chat": copy.deepcopy(chat),
        "date": now(),
        "text": text,
    }
    if reply_to is not None:
        message["reply_to_message"] = state.as_reply_target(reply_to)
    if markup is not None and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    state.store_message(message)
    state.sent.append(_sent_record(message, markup, parse_mode, reply_to, edited=False))
    return copy.deepcopy(message)


@_method("getChat")
def get_chat(state: TelegramState, params: Params) -> dict[str, Any]:
    chat = copy.deepcopy(state.resolve_chat(params.raw("chat_id")))
    # ChatFullInfo's required fields, with the values of an ordinary chat.
    chat.update({
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                                "premium_subscription": False, "gifts_from_channels": False},
    })
    return chat


@_method("sendChatAction")
def send_chat_action(state: TelegramState, params: Params) -> bool:
    state.resolve_chat(params.raw("chat_id"))
    if not params.str("action"):
        raise TelegramApiError(400, "Bad Request: wrong parameter action in request")
    return True


@_method("editMessageText")
def edit_message_text(state: TelegramState, params: Params) -> dict[str, Any]:
    message = _editable_message(state, params)
    parse_mode = params.str("parse_mode")
    text = render(params.str("text") or "", parse_mode)
    check_length(text)
    markup = _reply_markup(params, inline_only=True)
    return _apply_edit(state, message, text, markup, parse_mode)


@_method("editMessageReplyMarkup")
def edit_message_reply_markup(state: TelegramState, params: Params) -> dict[str, Any]:
    message = _editable_message(state, params)
    markup = _reply_markup(params, inline_only=True)
    return _apply_edit(state, message, message.get("text", ""), markup, None)


@_method("deleteMessage")
def delete_message(state: TelegramState, params: Params) -> bool:
    chat = state.resolve_chat(params.raw("chat_id"))
    key = (chat["id"], params.int("message_id") or 0)
    if key not in state.messages:
        raise TelegramApiError(400, "Bad Request: message to delete not found")
    del state.messages[key]
    return True


@_method("answerCallbackQuery")
def answer_callback_query(state: TelegramState, params: Params) -> bool:
    qid = params.str("callback_query_id") or ""
    query = state.callback_queries.get(qid)
    if query is None or query["answered"]:
        raise TelegramApiError(
            400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
        )
    query["answered"] = True
    state.callback_answers.append({
        "callback_query_id": qid,
        "text": params.str("text"),
        "show_alert": params.bool("show_alert"),
        "url": params.str("url"),
        "cache_time": params.int("cache_time", 0),
    })
    return True


# ------------------------------------------------------------------------------------------- helpers
# setWebhook: "Ports currently supported for webhooks: 443, 80, 88, 8443" and an HTTPS URL (Bot API,
# setWebhook; ../shared/specs/telegram-bot-api.json "HTTPS URL to send updates to").  The refusals are
# Telegram's own words (e.g. home-assistant/core#6472 quotes the port one).  Local receivers are reached
# through the control API's webhook_proxy, not by relaxing this.
WEBHOOK_PORTS = (443, 80, 88, 8443)


def _check_webhook_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise TelegramApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    try:
        port = parts.port or 443
    except ValueError:
        raise TelegramApiError(400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 "
                                    "or 8443") from None
    if not parts.hostname:
        raise TelegramApiError(400, "Bad Request: bad webhook: Failed to resolve host: Name or service not known")
    if port not in WEBHOOK_PORTS:
        raise TelegramApiError(400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 "
                                    "or 8443")


def _editable_message(state: TelegramState, params: Params) -> dict[str, Any]:
    if "inline_message_id" in params:
        raise TelegramApiError(400, "Bad Request: MESSAGE_ID_INVALID")  # the sandbox has no inline mode
    chat = state.resolve_chat(params.raw("chat_id"))
    message = state.get_message(chat["id"], params.int("message_id") or 0)
    if message is None:
        raise TelegramApiError(400, "Bad Request: message to edit not found")
    if message.get("from", {}).get("id") != state.bot["id"]:
        raise TelegramApiError(400, "Bad Request: message can't be edited")
    return message


def _apply_edit(state: TelegramState, message: dict[str, Any], text: str, markup: dict[str, Any] | None,
                parse_mode: str | None) -> dict[str, Any]:
    # Telegram: an edit without reply_markup removes the inline keyboard.
    if message.get("text") == text and message.get("reply_markup") == markup:
        raise TelegramApiError(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message",
        )
    message["text"] = text
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup
    message["edit_date"] = now()
    reply_to = message.get("reply_to_message")
    state.sent.append(_sent_record(message, markup, parse_mode, reply_to, edited=True))
    return copy.deepcopy(message)


def _reply_markup(params: Params, *, inline_only: bool) -> dict[str, Any] | None:
    markup = params.json("reply_markup", "reply keyboard markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise TelegramApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if inline_only or not ({"keyboard", "remove_keyboard", "force_reply"} & markup.keys()):
            raise TelegramApiError(400, "Bad Request: can't parse inline keyboard JSON object")
        return markup
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise TelegramApiError(400, "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup "
                                    "should be an Array of Arrays")
    for row in rows:
        for button in row:
            _check_button(button)
    return {"inline_keyboard": rows}


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise TelegramApiError(400, "Bad Request: can't parse inline keyboard button: Field \"text\" must be "
                                    "of type String")
    actions = [key for key in _BUTTON_ACTIONS if key in button]
    if not actions:
        raise TelegramApiError(400, "Bad Request: can't parse inline keyboard button: Text buttons are "
                                    "unallowed in the inline keyboard")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= _MAX_CALLBACK_DATA_BYTES:
            raise TelegramApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _reply_target(state: TelegramState, params: Params, chat_id: int) -> dict[str, Any] | None:
    reply = params.json("reply_parameters", "reply parameters")
    allow_missing = params.bool("allow_sending_without_reply")
    target_chat = chat_id
    if isinstance(reply, dict):
        message_id = reply.get("message_id")
        allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        if reply.get("chat_id") not in (None, ""):
            target_chat = state.resolve_chat(reply["chat_id"])["id"]
    elif reply is not None:
        raise TelegramApiError(400, "Bad Request: can't parse reply parameters JSON object")
    else:
        message_id = params.int("reply_to_message_id")
    if message_id in (None, 0):
        return None
    try:
        target = state.get_message(target_chat, int(message_id))
    except (TypeError, ValueError):
        target = None
    if target is None and not allow_missing:
        raise TelegramApiError(400, "Bad Request: message to be replied not found")
    return target


def _sent_record(message: dict[str, Any], markup: dict[str, Any] | None, parse_mode: str | None,
                 reply_to: dict[str, Any] | None, *, edited: bool) -> dict[str, Any]:
    return {
        "message_id": message["message_id"],
        "chat_id": message["chat"]["id"],
        "text": message.get("text", ""),
        "reply_markup": copy.deepcopy(markup),
        "reply_to_message_id": reply_to["message_id"] if reply_to else None,
        "parse_mode": parse_mode,
        "edited": edited,
        "date": message.get("edit_date", message["date"]),
    }
