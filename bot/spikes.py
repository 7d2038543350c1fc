"""Spike detection, pure: is the current window's count of a key far above what its earlier windows had?

Method (docs/incidents.md): time is cut into windows of `window_s` seconds aligned on the Unix epoch, so
every process computes the same window for the same moment (and the store's unique (key, window_start)
lets only one of them raise it).  For each key (an intent, a category, a listening rule) the *current*
window's count so far is compared with the `baseline_windows` full windows before it:

    threshold = max(min_count, mean + stdevs · stdev)        (population stdev of the baseline counts)
    spike     = count >= threshold  and  count > mean

`min_count` keeps a quiet brand's 3 messages from being a spike even against a baseline of zeros.  One spike
raises one alert: after an alert the key is quiet for `quiet_s` seconds (the store checks it), so a burst
that lasts an hour is one alert, not four.  An intent's alert also quiets its category (the same burst,
said less precisely), and a category's alert quiets its intents.

Counting happens elsewhere (a *source* is a function from time windows to counts per key, see
`storage/spike_sources.py`); this module only decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class SpikeConfig:
    window_s: int = 15 * 60
    baseline_windows: int = 8
    stdevs: float = 3.0
    min_count: int = 10
    quiet_s: int = 2 * 3600

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.baseline_windows < 1 or self.min_count < 1 or self.stdevs < 0:
            raise ValueError("spike settings: window_s > 0, baseline_windows >= 1, min_count >= 1, stdevs >= 0")


@dataclass(frozen=True)
class Windows:
    """The windows one check looks at: `baseline_starts[0]` is the oldest; `current_start` ends at `now`."""

    current_start: datetime
    now: datetime
    window: timedelta
    baseline_starts: tuple[datetime, ...]

    @property
    def since(self) -> datetime:
        return self.baseline_starts[0] if self.baseline_starts else self.current_start

    def index_of(self, when: datetime) -> int | None:
        """0 … baseline_windows-1 for a baseline window, baseline_windows for the current one, else None."""
        if when.tzinfo is None:  # SQLite hands timestamps back naive (stored in UTC)
            when = when.replace(tzinfo=UTC)
        if when < self.since or when >= self.now:
            return None
        return min(int((when - self.since) / self.window), len(self.baseline_starts))


@dataclass(frozen=True)
class Spike:
    key: str
    window_start: datetime
    count: int
    baseline: float  # the baseline windows' mean count
    threshold: float
    parent_key: str | None = None  # an intent's category: quieted by this alert too


def windows_at(now: datetime, config: SpikeConfig) -> Windows:
    """The current epoch-aligned window (the one `now` falls in) and the full windows before it."""
    epoch_s = int(now.timestamp())
    current = datetime.fromtimestamp(epoch_s - epoch_s % config.window_s, tz=UTC)
    step = timedelta(seconds=config.window_s)
    baseline = tuple(current - step * (config.baseline_windows - i) for i in range(config.baseline_windows))
    return Windows(current_start=current, now=now, window=step, baseline_starts=baseline)


def threshold(baseline: Sequence[int], config: SpikeConfig) -> tuple[float, float]:
    """(mean, threshold) of a baseline of counts."""
    mean = sum(baseline) / len(baseline) if baseline else 0.0
    stdev = math.sqrt(sum((c - mean) ** 2 for c in baseline) / len(baseline)) if baseline else 0.0
    return mean, max(float(config.min_count), mean + config.stdevs * stdev)


def detect(
    counts: Mapping[str, Sequence[int]],
    windows: Windows,
    config: SpikeConfig,
    *,
    parents: Mapping[str, str] | None = None,
) -> list[Spike]:
    """The keys whose current window is a spike.  `counts[key]` holds one count per window, oldest first,
    the current window last (missing windows count 0); `parents` names a key's broader key, if any."""
    found: list[Spike] = []
    width = len(windows.baseline_starts) + 1
    for key in sorted(counts):
        series = list(counts[key])[:width]
        series += [0] * (width - len(series))
        *baseline, current = series
        mean, limit = threshold(baseline, config)
        if current >= limit and current > mean:
            found.append(Spike(key, windows.current_start, current, round(mean, 2), round(limit, 2),
                               (parents or {}).get(key)))
    return found
