"""The Telegram world the emulator keeps in memory: chats, messages, the update queue, the webhook.

Nothing here knows about HTTP.  Operations that the real Bot API would refuse raise
:class:`TelegramApiError` carrying the status code and the description Telegram uses, so that the
transport only has to wrap them in the ``{"ok": false, ...}`` envelope.

Update queue semantics follow https://core.telegram.org/bots/api#getupdates:
an update is *confirmed* (and forgotten) as soon as ``getUpdates`` is called with an ``offset`` higher
than its ``update_id``; a negative offset keeps only the last ``-offset`` updates; a long poll returns as
soon as something arrives; a second concurrent ``getUpdates`` ends the first one with 409; while a
webhook is set ``getUpdates`` answers 409 and the updates go to the webhook instead.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

# Update types Telegram leaves out unless asked for explicitly (allowed_updates empty or absent).
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_FIRST_UPDATE_ID = 100_000_001
_MAX_LONG_POLL_S = 50


class TelegramApiError(Exception):
    """A refusal of the Bot API: HTTP status, Telegram's description, optional ``retry_after``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class ControlError(ValueError):
    """A control-API request that cannot be honoured; the message says how to fix the request."""


@dataclass
class Webhook:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None
    delivered: int = 0


@dataclass
class Fault:
    status: int
    count: int
    method: str | None  # lower-cased Bot API method name; None = any method
    retry_after: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "count": self.count, "method": self.method, "retry_after": self.retry_after}


@dataclass
class FloodLimits:
    """Telegram's flood limits on sending, as its Bots FAQ states them ("My bot is hitting limits, how do I
    avoid this?", https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
    in one chat "avoid sending more than one message per second"; "no more than 20 messages per minute to
    the same group"; bulk "not more than 30 messages per second or so".  The FAQ allows "short bursts";
    the sandbox does not (the stricter reading): the first message over a limit gets 429.
    """

    enabled: bool = True
    per_chat_interval_s: float = 1.0
    group_per_minute: int = 20
    global_per_second: int = 30

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TelegramState:
    """Everything the emulated Telegram remembers for one bot."""

    bot: dict[str, Any]
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    blocked_chats: set[int] = field(default_factory=set)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    callback_queries: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> query (answered flag)
    faults: list[Fault] = field(default_factory=list)
    webhook: Webhook | None = None
    # Sandbox only: where webhook deliveries really go (plays the TLS proxy in front of a local receiver,
    # since setWebhook takes only https:// URLs on ports 443, 80, 88, 8443).
    webhook_proxy: str | None = None
    allowed_updates: list[str] | None = None
    commands: list[dict[str, Any]] = field(default_factory=list)
    flood: FloodLimits = field(default_factory=FloodLimits)
    flood_refusals: int = 0
    _sends_by_chat: dict[int, deque[float]] = field(default_factory=dict)
    _sends_all: deque[float] = field(default_factory=deque)
    _next_update_id: int = _FIRST_UPDATE_ID
    _highest_update_id: int = 0
    _next_message_id: dict[int, int] = field(default_factory=dict)
    _next_callback_id: int = 4_242_000_000_000_000_001
    _poll_seq: int = 0
    _waiters: set[asyncio.Future[None]] = field(default_factory=set)
    closing: bool = False

    # ---------------------------------------------------------------- lifecycle
    def reset(self) -> None:
        """Forget everything except the update_id counter.

        update_ids keep growing across a reset: a bot that persisted ``offset = last + 1`` would otherwise
        treat every new update as already confirmed and never see it.
        """
        # After a restarted numbering (control ``update_id``) the next run of tests starts above every id
        # handed out so far, not after the low one.
        next_update_id = max(self._next_update_id, self._highest_update_id + 1)
        bot = self.bot
        waiters, poll_seq = self._waiters, self._poll_seq
        self.__init__(bot=bot)  # type: ignore[misc]
        self._next_update_id = next_update_id
        # A long poll in flight during a reset must keep running, not end as "terminated by other".
        self._waiters, self._poll_seq = waiters, poll_seq
        self._wake()

    def close(self) -> None:
        """Server shutdown: release every long poll at once so the server stops promptly."""
        self.closing = True
        self._wake()

    # ---------------------------------------------------------------- waiting
    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for_change(self, timeout: float) -> None:
        """Sleep until an update arrives, the webhook changes, or ``timeout`` seconds pass."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    # ---------------------------------------------------------------- faults
    def add_fault(self, status: int, count: int, method: str | None, retry_after: int | None) -> Fault:
        if status != 429 and not 500 <= status <= 599:
            raise ControlError(f"status must be 429 or a 5xx code, got {status}")
        if count < 1:
            raise ControlError(f"count must be at least 1, got {count}")
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(status=status, count=count, method=method.lower() if method else None,
                      retry_after=retry_after if status == 429 else None)
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str) -> TelegramApiError | None:
        """Consume one injected fault matching ``method`` (case-insensitive), if any is armed."""
        method = method.lower()
        for fault in self.faults:
            if fault.method in (None, method):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                if fault.status == 429:
                    return TelegramApiError(429, f"Too Many Requests: retry after {fault.retry_after}",
                                            retry_after=fault.retry_after)
                return TelegramApiError(fault.status, _REASONS.get(fault.status, "Internal Server Error"))
        return None

    # ---------------------------------------------------------------- flood limits
    def set_flood_limits(self, **changes: Any) -> FloodLimits:
        for key, value in changes.items():
            if key not in FloodLimits.__dataclass_fields__:
                raise ControlError(f"unknown limit {key!r}; known: {', '.join(FloodLimits.__dataclass_fields__)}")
            if key == "enabled":
                if not isinstance(value, bool):
                    raise ControlError('"enabled" must be true or false')
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ControlError(f'"{key}" must be a positive number, got {value!r}')
            setattr(self.flood, key, int(value) if key != "per_chat_interval_s" and key != "enabled" else value)
        return self.flood

    def take_send_slot(self, chat: dict[str, Any]) -> None:
        """Count one message sent to ``chat``, or refuse it with Telegram's 429 when over a flood limit."""
        if not self.flood.enabled:
            return
        limits, at = self.flood, time.monotonic()
        sent = self._sends_by_chat.setdefault(chat["id"], deque())
        while sent and at - sent[0] >= 60.0:
            sent.popleft()
        while self._sends_all and at - self._sends_all[0] >= 1.0:
            self._sends_all.popleft()
        wait = 0.0
        if sent and at - sent[-1] < limits.per_chat_interval_s:
            wait = limits.per_chat_interval_s - (at - sent[-1])
        if chat.get("type") in ("group", "supergroup") and len(sent) >= limits.group_per_minute:
            wait = max(wait, sent[-limits.group_per_minute] + 60.0 - at)
        if len(self._sends_all) >= limits.global_per_second:
            wait = max(wait, self._sends_all[-limits.global_per_second] + 1.0 - at)
        if wait > 0:
            self.flood_refusals += 1
            retry_after = max(1, math.ceil(wait))
            raise TelegramApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        sent.append(at)
        self._sends_all.append(at)

    # ---------------------------------------------------------------- chats and users
    def bot_as_sender(self) -> dict[str, Any]:
        """The bot as it appears in a message's ``from``: only the basic User fields, as on Telegram."""
        return {k: self.bot[k] for k in ("id", "is_bot", "first_name", "username")}

    def user_payload(self, user: dict[str, Any]) -> dict[str, Any]:
        if "id" not in user:
            raise ControlError('"from" needs an "id" (the Telegram user id, a positive integer)')
        uid = as_int(user["id"], '"from.id"')
        username = user.get("username")
        payload: dict[str, Any] = {
            "id": uid,
            "is_bot": False,
            "first_name": user.get("first_name") or username or f"User {uid}",
        }
        if user.get("last_name"):
            payload["last_name"] = user["last_name"]
        if username:
            payload["username"] = username
        payload["language_code"] = user.get("language_code", "en")
        return payload

    def ensure_chat(self, chat_id: int, chat_type: str, sender: dict[str, Any], title: str | None) -> dict[str, Any]:
        if chat_type not in ("private", "group", "supergroup"):
            raise ControlError(f'chat_type must be "private", "group" or "supergroup", got {chat_type!r}')
        if chat_type == "private":
            if chat_id != sender["id"]:
                raise ControlError(
                    f"in a private chat the chat_id is the user's id: use chat_id={sender['id']} "
                    f"or a negative group id with chat_type \"group\" (got chat_id {chat_id})"
                )
            chat = {"id": chat_id, "type": "private", "first_name": sender["first_name"]}
            for key in ("last_name", "username"):
                if key in sender:
                    chat[key] = sender[key]
        else:
            if chat_id >= 0:
                raise ControlError(f"group chat ids are negative (e.g. -1001234567890), got {chat_id}")
            existing = self.chats.get(chat_id)
            chat = {"id": chat_id, "type": chat_type,
                    "title": title or (existing or {}).get("title") or f"Group {-chat_id}"}
        self.chats[chat_id] = chat
        return chat

    def resolve_chat(self, chat_ref: Any) -> dict[str, Any]:
        """The chat a Bot API ``chat_id`` names (an integer or ``@username``), or 400 chat not found."""
        if isinstance(chat_ref, str) and chat_ref.startswith("@"):
            for chat in self.chats.values():
                if chat.get("username", "").lower() == chat_ref[1:].lower():
                    return chat
            raise TelegramApiError(400, "Bad Request: chat not found")
        if chat_ref is None or chat_ref == "":
            raise TelegramApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(chat_ref)
        except (TypeError, ValueError):
            raise TelegramApiError(400, "Bad Request: chat not found") from None
        chat = self.chats.get(chat_id)
        if chat is None:
            raise TelegramApiError(400, "Bad Request: chat not found")
        return chat

    # ---------------------------------------------------------------- messages
    def new_message_id(self, chat_id: int) -> int:
        mid = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = mid + 1
        return mid

    def store_message(self, message: dict[str, Any]) -> None:
        self.messages[(message["chat"]["id"], message["message_id"])] = message

    def get_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        return self.messages.get((chat_id, message_id))

    @staticmethod
    def as_reply_target(message: dict[str, Any]) -> dict[str, Any]:
        """A message as it appears in ``reply_to_message``: full, but without its own reply_to_message."""
        target = copy.deepcopy(message)
        target.pop("reply_to_message", None)
        return target

    def new_callback_query(self, user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        qid = str(self._next_callback_id)
        self._next_callback_id += 1
        chat_id = message["chat"]["id"]
        query = {
            "id": qid,
            "from": user,
            "message": copy.deepcopy(message),
            "chat_instance": str((chat_id * 2_654_435_761) % 10**19),
            "data": data,
        }
        self.callback_queries[qid] = {"answered": False}
        return query

    # ---------------------------------------------------------------- updates
    def enqueue(self, kind: str, payload: dict[str, Any], *, update_id: int | None = None) -> tuple[int, bool]:
        """Create an update of ``kind``; returns its update_id and whether it was queued.

        Types the bot did not ask for (``allowed_updates``) are not queued, as on Telegram.  ``update_id``
        plays Telegram's restart of the numbering: "If there are no new updates for at least a week, then
        identifier of the next update will be chosen randomly instead of sequentially" (Bot API, Update;
        ../shared/specs/telegram-bot-api.json).  The numbering goes on from there, and an offset already
        above the new id confirms (drops) it, as getUpdates' offset is documented to do.
        """
        if update_id is not None:
            if update_id < 1:
                raise ControlError(f'"update_id" must be a positive integer, got {update_id}')
            self._next_update_id = update_id
        update_id = self._next_update_id
        self._next_update_id += 1
        self._highest_update_id = max(self._highest_update_id, update_id)
        if not self._is_allowed(kind):
            return update_id, False
        self.pending.append({"update_id": update_id, kind: payload})
        self._wake()
        return update_id, True

    def _is_allowed(self, kind: str) -> bool:
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in _OPT_IN_UPDATE_TYPES

    def confirm(self, offset: int) -> None:
        """Apply getUpdates' ``offset``: forget what the bot has confirmed."""
        if offset > 0:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        elif offset < 0:
            self.pending = self.pending[offset:]

    async def get_updates(self, offset: int, limit: int, timeout: float,
                          allowed_updates: list[str] | None) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise _webhook_conflict()
        if allowed_updates is not None:
            self.allowed_updates = list(allowed_updates)
        self._poll_seq += 1
        my_seq = self._poll_seq
        self._wake()  # ends an older long poll, which then answers 409
        self.confirm(offset)
        limit = min(max(limit, 1), 100)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), _MAX_LONG_POLL_S)
        while True:
            if self._poll_seq != my_seq:
                raise TelegramApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if self.webhook is not None:
                raise _webhook_conflict()
            # An update that arrived during the poll with an id below the offset (a restarted numbering)
            # is confirmed too, never returned: "Identifier of the first update to be returned" (offset).
            self.confirm(offset)
            if self.pending or self.closing:
                return copy.deepcopy(self.pending[:limit])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self.wait_for_change(remaining)

    # ---------------------------------------------------------------- webhook
    def set_webhook(self, url: str, secret_token: str | None, max_connections: int,
                    allowed_updates: list[str] | None, drop_pending: bool) -> None:
        if drop_pending:
            self.pending.clear()
        if allowed_updates is not None:
            self.allowed_updates = list(allowed_updates)
        self.webhook = Webhook(url=url, secret_token=secret_token, max_connections=max_connections)
        self._wake()

    def delete_webhook(self, drop_pending: bool) -> bool:
        had = self.webhook is not None
        self.webhook = None
        if drop_pending:
            self.pending.clear()
        self._wake()
        return had

    def webhook_info(self) -> dict[str, Any]:
        hook = self.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if hook:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
            if self.allowed_updates:
                info["allowed_updates"] = list(self.allowed_updates)
        return info

    def webhook_delivered(self, hook: Webhook, update_id: int) -> None:
        hook.delivered += 1
        self.pending = [u for u in self.pending if u["update_id"] != update_id]

    @staticmethod
    def webhook_failed(hook: Webhook, message: str) -> None:
        hook.last_error_date = now()
        hook.last_error_message = message


_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _webhook_conflict() -> TelegramApiError:
    return TelegramApiError(
        409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    )


def now() -> int:
    return int(time.time())


def as_int(value: Any, what: str) -> int:
    """``value`` as an integer, or a ControlError naming the field (control-API input is loosely typed)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(f"{what} must be an integer, got {value!r}") from None
