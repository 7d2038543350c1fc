"""How long a poller waits before its next request: spread X's window budget, obey 429s, back off from 5xx.

X limits each endpoint per 15-minute window (mentions 300-450, DMs 15).  Polling as fast as the budget
allows answers customers soonest without ever being refused, so the interval is the time left in the
window divided by the requests left in it, never below a floor.  A fixed interval from the settings
overrides that (X's 429 still wins).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable

from bot.channels.x.api import RateLimit, day_limits_from_headers

RESET_MARGIN_S = 0.1  # X's reset is whole seconds; a hair later finds the window open


class Pacer:
    def __init__(
        self,
        *,
        floor_s: float = 1.0,
        fixed_s: float = 0.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.floor_s = max(0.0, floor_s)
        self.fixed_s = max(0.0, fixed_s)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.last: RateLimit | None = None
        self._failures = 0
        self._refusals = 0

    def observe(self, rate_limit: RateLimit | None) -> None:
        """Remember the window X reported with an answer (an answer means the window was open)."""
        self._refusals = 0
        if rate_limit is not None:
            self.last = rate_limit

    def after_success(self) -> float:
        """Seconds until the next poll after a poll that went through."""
        self._failures = 0
        self._refusals = 0
        budget_wait = self._budget_wait()
        if self.fixed_s > 0:
            return max(self.fixed_s, budget_wait if self._exhausted() else 0.0)
        return max(self.floor_s, budget_wait)

    def _exhausted(self) -> bool:
        return self.last is not None and self.last.remaining <= 0

    def _budget_wait(self) -> float:
        if self.last is None:
            return self.floor_s
        left_s = self.last.reset_at - self.clock()
        if left_s <= 0:
            return 0.0  # the window has started afresh
        if self.last.remaining <= 0:
            return left_s + RESET_MARGIN_S
        return left_s / self.last.remaining

    def after_rate_limited(self, retry_after_s: float | None) -> float:
        """Seconds to wait after a 429: until X's reset; never a tight loop if X's clock or header is off."""
        self._refusals += 1
        if retry_after_s is None:
            return self._backoff(self._refusals)
        wait = retry_after_s + RESET_MARGIN_S
        if self._refusals > 1:  # refused again right after the reset it announced: X's clock and ours differ
            wait = max(wait, self._backoff(self._refusals - 1))
        return max(wait, self.floor_s)

    def after_failure(self) -> float:
        """Capped exponential backoff with jitter (half to all of it) after a 5xx or network error."""
        self._failures += 1
        cap = self._backoff(self._failures)
        return random.uniform(cap / 2, cap)

    def _backoff(self, n: int) -> float:
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, n - 1))


class SendBudget:
    """What X still allows one kind of send (DMs, or posts) before its windows reset: the 15-minute
    window and the 24-hour ones (DMs: 15 / 15 min and 1,440 / 24 h per user; posts: 100 / 15 min per
    user and 10,000 / 24 h per app), as X last reported them.

    `take()` spends one send before the request goes out, so sends started together cannot overrun a
    window between two answers: the outbox starts its deliveries in lease order, agents' replies first,
    and those are the ones that get the last sends of a window.  A refused `take()` says until when.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._windows: list[RateLimit] = []

    def observe(self, rate_limit: RateLimit | None, day_limits: Iterable[RateLimit] = ()) -> None:
        """X's answer is the truth: replace what was counted here with its numbers."""
        windows = [w for w in (rate_limit, *day_limits) if w is not None]
        if windows:
            self._windows = windows

    def refused(self, headers: object, reset_at: float | None) -> float:
        """After a 429: remember the exhausted windows; until when sending must wait."""
        fifteen = RateLimit.from_headers(headers)
        days = day_limits_from_headers(headers)
        exhausted = [w for w in (fifteen, *days) if w is not None and w.remaining <= 0]
        if not exhausted:  # X did not say which: the 15-minute window, until the reset it gave
            until = reset_at if reset_at is not None else self.clock() + 60.0
            exhausted = [RateLimit(limit=fifteen.limit if fifteen else 0, remaining=0, reset_at=until)]
        self._windows = [*exhausted, *(w for w in (fifteen, *days) if w is not None and w.remaining > 0)]
        return max(w.reset_at for w in exhausted)

    def blocked_until(self) -> float | None:
        """When the last exhausted window reopens, or None when a send may go now."""
        now = self.clock()
        self._windows = [w for w in self._windows if w.reset_at > now]  # a reset window is X's to report
        exhausted = [w.reset_at for w in self._windows if w.remaining <= 0 and w.reset_at > now]
        return max(exhausted) if exhausted else None

    def take(self) -> float | None:
        """Spend one send; None if allowed, else the time (Unix seconds) sending resumes."""
        blocked = self.blocked_until()
        if blocked is not None:
            return blocked
        self._windows = [
            RateLimit(w.limit, w.remaining - 1, w.reset_at) for w in self._windows if w.reset_at > self.clock()
        ]
        return None
