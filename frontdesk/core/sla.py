"""SLA clocks: how long a ticket may wait, per queue and priority, counted in business hours.

Three metrics run on an open ticket (the targets are brand data, `content/sla.yml`, loaded by bot/content.py):

    first_response   from the ticket's creation until an agent first replies
    next_response    from the customer's oldest message an agent has not answered yet, until an agent replies
    resolution       from the ticket's creation until it is resolved

A clock is `ok`, `warning` once 80% of its target is used, and `breached` when it is all used.  The clock a
ticket shows is the one with the least time left.  Pure: the caller passes the timestamps and "now".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from frontdesk.core import durations
from frontdesk.core.business_hours import BusinessHours, parse_business_hours

WARNING_SHARE = 0.8


class Metric(str, enum.Enum):
    first_response = "first_response"
    next_response = "next_response"
    resolution = "resolution"


class SlaState(str, enum.Enum):
    ok = "ok"
    warning = "warning"
    breached = "breached"


METRICS: tuple[str, ...] = tuple(m.value for m in Metric)
# The ticket_events actions the sweeper writes (figures count "sla_breach" per day and queue).
EVENT_ACTIONS: dict[SlaState, str] = {SlaState.warning: "sla_warning", SlaState.breached: "sla_breach"}

Targets = Mapping[Metric, int]  # seconds of business time


def parse_duration(text: str) -> int:
    """"30m", "4h", "2d", "1h30m", "45s" -> seconds.  A day is 24 hours of business time (not a working day).

    Raises ValueError (DurationError) saying how to write one."""
    return durations.parse_duration(text, zero="a target must be longer than nothing")


@dataclass(frozen=True)
class SlaTargets:
    """Targets per (queue, priority name), with `default` for what is not named; empty: no SLAs at all."""

    default: Targets = field(default_factory=lambda: MappingProxyType({}))
    by_queue: Mapping[str, Mapping[str, Targets]] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.default) or any(any(p.values()) for p in self.by_queue.values())

    def targets_for(self, queue: str, priority: str) -> Targets:
        """The targets of one queue and priority: the priority's own, then the queue's `default`, then the
        file's `default` (each metric looked up separately)."""
        chain = []
        queue_block = self.by_queue.get(queue, {})
        if priority in queue_block:
            chain.append(queue_block[priority])
        if "default" in queue_block:
            chain.append(queue_block["default"])
        chain.append(self.default)
        found: dict[Metric, int] = {}
        for metric in Metric:
            for block in chain:
                if metric in block:
                    found[metric] = block[metric]
                    break
        return found


NO_SLAS = SlaTargets()


@dataclass(frozen=True)
class SlaPolicy:
    """What the clocks need besides the ticket: the brand's targets and the business hours."""

    targets: SlaTargets = NO_SLAS
    hours: BusinessHours = field(default_factory=lambda: parse_business_hours(""))


@dataclass(frozen=True)
class TicketTimes:
    """The facts of one ticket the clocks are computed from."""

    queue: str
    priority: str  # a Priority name
    is_open: bool
    created_at: datetime
    first_response_at: datetime | None
    waiting_since: datetime | None  # the customer's oldest message not answered by an agent yet


@dataclass(frozen=True)
class SlaClock:
    metric: Metric
    started_at: datetime
    due_at: datetime
    target_s: int
    used_s: float
    state: SlaState

    @property
    def remaining_s(self) -> int:
        """Business seconds left (negative: overdue by that much)."""
        return int(self.target_s - self.used_s)


def clocks(times: TicketTimes, policy: SlaPolicy, now: datetime) -> list[SlaClock]:
    """Every clock running on the ticket now (none on a closed ticket or without targets)."""
    if not times.is_open or not policy.targets.enabled:
        return []
    targets = policy.targets.targets_for(times.queue, times.priority)
    starts: dict[Metric, datetime] = {Metric.resolution: times.created_at}
    if times.first_response_at is None:
        starts[Metric.first_response] = times.created_at
    elif times.waiting_since is not None:
        starts[Metric.next_response] = times.waiting_since
    running = []
    for metric, started_at in starts.items():
        target = targets.get(metric)
        if target is None:
            continue
        used = policy.hours.seconds_between(started_at, now)
        state = SlaState.breached if used >= target else SlaState.warning if used >= WARNING_SHARE * target else SlaState.ok
        due = policy.hours.add_seconds(started_at, target)
        running.append(SlaClock(metric, started_at, due, target, used, state))
    return sorted(running, key=lambda c: (c.due_at, METRICS.index(c.metric.value)))


def current(times: TicketTimes, policy: SlaPolicy, now: datetime) -> SlaClock | None:
    """The clock the ticket shows: the one due first; None when no clock runs."""
    running = clocks(times, policy, now)
    return running[0] if running else None
