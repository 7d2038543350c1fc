"""Rate-limit windows and injected faults: the two ways the emulator says "not now" like X does.

Kept free of HTTP so tests and `frontdesk sandbox` can set them directly or through the control API.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# X's documented per-15-minute limits for the endpoints the emulator serves (app = bearer token,
# user = OAuth 1.0a user context).  Keys are the emulator's endpoint names.  Source:
# ../shared/specs/x-limits-and-prices.md (xdevplatform/docs x-api/fundamentals/rate-limits.mdx).
X_RATE_LIMITS: dict[str, dict[str, int]] = {
    "users_me": {"user": 75},
    "mentions": {"app": 450, "user": 300},
    # GET /2/tweets/search/recent: 450 per app, 300 per user (x-limits-and-prices.md, rate-limits.mdx).
    "search_recent": {"app": 450, "user": 300},
    "user_tweets": {"app": 1500, "user": 900},
    "dm_events": {"user": 15},
    "dm_conversation_events": {"user": 15},
    "create_dm": {"user": 15},
    "create_tweet": {"user": 100},
    "tweet_lookup": {"app": 450, "user": 900},
}
X_WINDOW_S = 900.0
# ... and the 24-hour ones on top of them: "user" counts per user token, "app" counts every call of the
# app whatever its auth.  X reports them in `x-user-limit-24hour-*` / `x-app-limit-24hour-*` headers
# (limit, remaining, reset), next to the 15-minute `x-rate-limit-*` ones (plhery/node-twitter-api-v2
# issue #495 and PR #618 parse exactly these from real answers).
X_DAILY_LIMITS: dict[str, dict[str, int]] = {
    "create_dm": {"user": 1440},
    "create_tweet": {"app": 10_000},
}
X_DAY_S = 24 * 3600.0
# The sandbox default: X's windows but limits nobody hits by accident during a demo or a test run.
SANDBOX_LIMIT = 100_000


def generous_rate_limits() -> dict[str, dict[str, int]]:
    return {name: {ctx: SANDBOX_LIMIT for ctx in limits} for name, limits in X_RATE_LIMITS.items()}


def x_rate_limits() -> dict[str, dict[str, int]]:
    return {name: dict(limits) for name, limits in X_RATE_LIMITS.items()}


def x_daily_limits() -> dict[str, dict[str, int]]:
    return {name: dict(limits) for name, limits in X_DAILY_LIMITS.items()}


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
    # The 24-hour windows (empty in the generous sandbox profile; X's in the `x` profile).
    daily_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    day_s: float = X_DAY_S
    _windows: dict[tuple[str, str], RateWindow] = field(default_factory=dict)
    _days: dict[tuple[str, str], RateWindow] = field(default_factory=dict)

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
        days = self.day_windows(endpoint, context)
        if window.remaining <= 0 or any(day.remaining <= 0 for day in days.values()):
            return window, False  # a refused call counts against no window (X: 429, nothing spent)
        window.remaining -= 1
        for day in days.values():
            day.remaining -= 1
        return window, True

    def day_windows(self, endpoint: str, context: str) -> dict[str, RateWindow]:
        """The 24-hour windows this call counts against, by scope ("user" / "app"), opened by the first call."""
        per_scope = self.daily_limits.get(endpoint) or {}
        now = self.clock()
        found: dict[str, RateWindow] = {}
        for scope, limit in per_scope.items():
            if scope == "user" and context == "app":
                continue  # an app-only call spends no user's budget
            key = (endpoint, "app" if scope == "app" else context)
            day = self._days.get(key)
            if day is None or now >= day.reset_at or day.limit != limit:
                day = RateWindow(limit=limit, remaining=limit, reset_at=now + self.day_s)
                self._days[key] = day
            found[scope] = day
        return found

    def day_headers(self, endpoint: str, context: str) -> dict[str, str]:
        """`x-user-limit-24hour-*` / `x-app-limit-24hour-*` for the call's 24-hour windows."""
        out: dict[str, str] = {}
        for scope, day in self.day_windows(endpoint, context).items():
            prefix = f"x-{scope}-limit-24hour-"
            out[prefix + "limit"] = str(day.limit)
            out[prefix + "remaining"] = str(day.remaining)
            out[prefix + "reset"] = str(self.reset_header(day))
        return out

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
        self,
        *,
        window_s: float | None = None,
        limits: dict[str, dict[str, int]] | None = None,
        day_s: float | None = None,
        daily_limits: dict[str, dict[str, int]] | None = None,
    ) -> None:
        if window_s is not None:
            if window_s <= 0:
                raise ValueError("rate_limit_window_s must be > 0")
            self.window_s = float(window_s)
        if day_s is not None:
            if day_s <= 0:
                raise ValueError("daily_window_s must be > 0")
            self.day_s = float(day_s)
        if daily_limits is not None:
            unknown = set(daily_limits) - set(X_RATE_LIMITS)
            if unknown:
                raise ValueError(f"unknown endpoint(s) {sorted(unknown)}; known: {sorted(X_RATE_LIMITS)}")
            for name, per_scope in daily_limits.items():
                bad = set(per_scope) - {"user", "app"}
                if bad:
                    raise ValueError(f"daily_limits[{name!r}]: scopes are 'user' and 'app', not {sorted(bad)}")
                self.daily_limits.setdefault(name, {}).update({k: int(v) for k, v in per_scope.items()})
        if limits is not None:
            unknown = set(limits) - set(X_RATE_LIMITS)
            if unknown:
                raise ValueError(f"unknown endpoint(s) {sorted(unknown)}; known: {sorted(X_RATE_LIMITS)}")
            for name, per_context in limits.items():
                self.limits.setdefault(name, {}).update({k: int(v) for k, v in per_context.items()})
        self._windows.clear()
        self._days.clear()

    def clear(self) -> None:
        self._windows.clear()
        self._days.clear()


@dataclass
class Fault:
    """Answer the next ``count`` matching requests with ``status`` (None: only delay them)."""

    path_prefix: str = "/2/"
    status: int | None = None
    count: int | None = 1  # None: every matching request until cleared
    latency_ms: int = 0
    method: str | None = None
    # True: X does the work (the post is created, the DM sent) and only then answers with `status`:
    # the 5xx-after-commit a client cannot tell from a failure, which is why X senders reconcile.
    after_commit: bool = False

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
            "after_commit": self.after_commit,
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
        if fault.after_commit and (fault.status is None or fault.status < 500):
            raise ValueError("after_commit needs a 5xx status (X did the work, then its answer failed)")
        self.active.append(fault)
        return fault

    def take(self, method: str, path: str) -> tuple[int, int | None, bool]:
        """Consume the faults matching this request: (total latency ms, status to answer with or None,
        whether that status comes after the request was carried out)."""
        latency = 0
        status: int | None = None
        after = False
        for fault in self.active:
            if not fault.matches(method, path):
                continue
            if fault.status is not None and status is not None:
                continue  # one status per request; the next fault waits for the next request
            latency += fault.latency_ms
            if fault.status is not None:
                status = fault.status
                after = fault.after_commit
            if fault.count is not None:
                fault.count -= 1
        self.active = [f for f in self.active if f.count is None or f.count > 0]
        return latency, status, after

    def clear(self) -> None:
        self.active.clear()
