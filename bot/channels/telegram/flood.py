"""Pacing sends to Telegram's flood limits, so that a burst of answers does not become a burst of 429s.

Telegram's Bots FAQ ("My bot is hitting limits, how do I avoid this?",
https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this): in one chat "avoid sending
more than one message per second"; "no more than 20 messages per minute to the same group"; in bulk "not more
than 30 messages per second or so".  One `FloodControl` per bot is shared by everything that sends with it
(the outbox's sender, the agents' pager), so their sends are counted together.

Each limit is kept with a small margin: Telegram counts when a request arrives, we count when it leaves, and
two requests can arrive closer together than they left.  A 429 that comes anyway (another process sending
with the same token, the margin not enough) is obeyed: `penalise` holds the chat until ``retry_after``.

Pacing is per chat: a chat (or the agents' group) that has to wait holds up only its own messages, never the
replies to other customers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

PER_CHAT_INTERVAL_S = 1.0
GROUP_PER_MINUTE = 20
GLOBAL_PER_SECOND = 30
_MARGIN_S = 0.1  # added to every interval and window: arrival jitter at Telegram
# Sends to many chats queue for the HTTP connections, so they reach Telegram bunched more than the sends
# to one chat (which go one at a time): a wider margin on the overall window.
_GLOBAL_MARGIN_S = 0.3
_SWEEP_ABOVE_CHATS = 10_000  # forget chats written to over a minute ago once this many are remembered


def is_group(chat_id: int | str) -> bool:
    """Group and supergroup ids are negative; private chats (a user's id) positive; @channel names count
    as groups (the 20-per-minute limit is the one that applies to them)."""
    return not isinstance(chat_id, int) or chat_id < 0


class FloodControl:
    """When the next message to a chat may go, by Telegram's limits; ``await acquire(chat)`` before sending."""

    def __init__(self, *, per_chat_interval_s: float = PER_CHAT_INTERVAL_S, group_per_minute: int = GROUP_PER_MINUTE,
                 global_per_second: int = GLOBAL_PER_SECOND, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_chat_interval_s = per_chat_interval_s + _MARGIN_S
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second
        self.clock = clock
        self._chat_sends: dict[int | str, deque[float]] = {}
        self._all_sends: deque[float] = deque()
        self._held_until: dict[int | str, float] = {}
        self.waited_s = 0.0  # total time sends were held back here (pacing, not 429s)

    def delay(self, chat_id: int | str) -> float:
        """Seconds until a message to ``chat_id`` is within every limit (0: now)."""
        now = self.clock()
        self._forget_old(chat_id, now)
        wait = self._held_until.get(chat_id, 0.0) - now
        sent = self._chat_sends.get(chat_id)
        if sent:
            wait = max(wait, sent[-1] + self.per_chat_interval_s - now)
            if is_group(chat_id) and len(sent) >= self.group_per_minute:
                wait = max(wait, sent[-self.group_per_minute] + 60.0 + _MARGIN_S - now)
        if len(self._all_sends) >= self.global_per_second:
            wait = max(wait, self._all_sends[-self.global_per_second] + 1.0 + _GLOBAL_MARGIN_S - now)
        return max(0.0, wait)

    def take(self, chat_id: int | str) -> float:
        """Count a send to ``chat_id`` now if the limits allow it and return 0; else how long to wait.

        Checking and counting happen without an await in between, so concurrent senders never both take
        the last slot.
        """
        wait = self.delay(chat_id)
        if wait > 0:
            return wait
        now = self.clock()
        self._chat_sends.setdefault(chat_id, deque()).append(now)
        self._all_sends.append(now)
        if len(self._chat_sends) > _SWEEP_ABOVE_CHATS:
            for chat in list(self._chat_sends):
                self._forget_old(chat, now)
        return 0.0

    async def acquire(self, chat_id: int | str, *, max_wait_s: float | None = None) -> float:
        """Wait for a slot and take it (0 returned); or, when it is more than ``max_wait_s`` away, take
        nothing and return the wait (the caller reschedules the message instead of holding on to it)."""
        while True:
            wait = self.take(chat_id)
            if wait <= 0:
                return 0.0
            if max_wait_s is not None and wait > max_wait_s:
                return wait
            self.waited_s += wait
            await asyncio.sleep(wait)

    def penalise(self, chat_id: int | str, retry_after_s: float) -> None:
        """Telegram answered 429 for ``chat_id``: nothing goes to it before ``retry_after_s`` has passed."""
        until = self.clock() + retry_after_s
        self._held_until[chat_id] = max(self._held_until.get(chat_id, 0.0), until)

    def _forget_old(self, chat_id: int | str, now: float) -> None:
        sent = self._chat_sends.get(chat_id)
        while sent and now - sent[0] >= 60.0 + _MARGIN_S:
            sent.popleft()
        if sent is not None and not sent:
            del self._chat_sends[chat_id]
        while self._all_sends and now - self._all_sends[0] >= 1.0 + _GLOBAL_MARGIN_S:
            self._all_sends.popleft()
        if self._held_until.get(chat_id, 0.0) <= now:
            self._held_until.pop(chat_id, None)
