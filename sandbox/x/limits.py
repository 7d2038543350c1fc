"""Rate-limit windows and injected faults: the two ways the emulator says "not now" like X does.

Kept free of HTTP so tests and `frontdesk sandbox` can set them directly or through the control API.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# X's documented per-15-minute limits for the endpoints the emulator serves (app = bearer token,
# user = OAuth 1.0a user context).  Keys are the emulator's endpoint names.
X_RATE_LIMITS: dict[str, dict[str, int]] = {
    "users_me": {"user": 75},
    "mentions": {"app": 450, "user": 300},
    "user_tweets": {"app": 1500, "user": 900},
    "dm_events": {"user": 15},
    "dm_conversation_events": {"user": 15},
    "create_dm": {"user": 200},
    "create_tweet": {"user": 200},
    "tweet_lookup": {"app": 450, "user": 900},
}
X_WINDOW_S = 900.0
# The sandbox default: X's windows but limits nobody hits by accident during a demo or a test run.
SANDBOX_LIMIT = 100_000


def generous_rate_limits() -> dict[str, dict[str, int]]:
    return {name: {ctx: SANDBOX_LIMIT for ctx in limits} for name, limits in X_RATE_LIMITS.items()}


def x_rate_limits() -> dict[str, dict[str, int]]:
    return {name: dict(limits) for name, limits in X_RATE_LIMITS.items()}


@dataclass
class RateWindow:
    limit: int
    remaining: int
    reset_at: float  # Unix seconds, when the window starts afresh


@dataclass
class RateLimiter:
    """Fixed windows per (endpoint, auth context), opened by the first call, like X's 15-minute windows."""

    window_s: float = X_WINDOW_S
    limits: dict[str, dict[str, int]] = field(default_factory=generous_rate_limits)
    clock: Callable[[], float] = time.time
    _windows: dict[tuple[str, str], RateWindow] = field(default_factory=dict)

    def limit_for(self, endpoint: str, context: str) -> int:
        per_context = self.limits.get(endpoint) or {}
        kind = "app" if context == "app" else "user"
        return per_context.get(kind) or max(per_context.values(), default=SANDBOX_LIMIT)

    def hit(self, endpoint: str, context: str) -> tuple[RateWindow, bool]:
        """Count one call; return the window (for the headers) and whether the call is allowed."""
        now = self.clock()
        key = (endpoint, context)
        window = self._windows.get(key)
        limit = self.limit_for(endpoint, context)
        if window is None or now >= window.reset_at or window.limit != limit:
            window = RateWindow(limit=limit, remaining=limit, reset_at=now + self.window_s)
            self._windows[key] = window
        if window.remaining <= 0:
            return window, False
        window.remaining -= 1
        return window, True

    def peek(self, endpoint: str, context: str) -> RateWindow:
        """The window as it stands, without counting a call (for answers that fail before counting)."""
        window = self._windows.get((endpoint, context))
        limit = self.limit_for(endpoint, context)
        if window is None or self.clock() >= window.reset_at or window.limit != limit:
            return RateWindow(limit=limit, remaining=limit, reset_at=self.clock() + self.window_s)
        return window

    def headers(self, window: RateWindow) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(window.limit),
            "x-rate-limit-remaining": str(window.remaining),
            "x-rate-limit-reset": str(self.reset_header(window)),
        }

    def reset_header(self, window: RateWindow) -> int:
        # Whole seconds, rounded up so that a client sleeping until then finds the window open.
        return math.ceil(window.reset_at)

    def configure(
        self, *, window_s: float | None = None, limits: dict[str, dict[str, int]] | None = None
    ) -> None:
        if window_s is not None:
            if window_s <= 0:
                raise ValueError("rate_limit_window_s must be > 0")
            self.window_s = float(window_s)
        if limits is not None:
            unknown = set(limits) - set(X_RATE_LIMITS)
            if unknown:
                raise ValueError(f"unknown endpoint(s) {sorted(unknown)}; known: {sorted(X_RATE_LIMITS)}")
            for name, per_context in limits.items():
                self.limits.setdefault(name, {}).update({k: int(v) for k, v in per_context.items()})
        self._windows.clear()

    def clear(self) -> None:
        self._windows.clear()


@dataclass
class Fault:
    """Answer the next ``count`` matching requests with ``status`` (None: only delay them)."""

    path_prefix: str = "/2/"
    status: int | None = None
    count: int | None = 1  # None: every matching request until cleared
    latency_ms: int = 0
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return path.startswith(self.path_prefix)

    def as_dict(self) -> dict[str, object]:
        return {
            "path_prefix": self.path_prefix,
            "status": self.status,
            "count": self.count,
            "latency_ms": self.latency_ms,
            "method": self.method,
        }


@dataclass
class Faults:
    active: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> Fault:
        if fault.status is not None and not (400 <= fault.status <= 599):
            raise ValueError("status must be an HTTP error status (400-599), e.g. 429 or 503")
        if fault.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if fault.status is None and fault.latency_ms == 0:
            raise ValueError("a fault needs a status (e.g. 503), a latency_ms, or both")
        self.active.append(fault)
        return fault

    def take(self, method: str, path: str) -> tuple[int, int | None]:
        """Consume the faults matching this request: (total latency ms, status to answer with or None)."""
        latency = 0
        status: int | None = None
        for fault in self.active:
            if not fault.matches(method, path):
                continue
            if fault.status is not None and status is not None:
                continue  # one status per request; the next fault waits for the next request
            latency += fault.latency_ms
            if fault.status is not None:
                status = fault.status
            if fault.count is not None:
                fault.count -= 1
        self.active = [f for f in self.active if f.count is None or f.count > 0]
        return latency, status

    def clear(self) -> None:
        self.active.clear()
