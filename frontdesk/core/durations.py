"""Short durations as people write them in settings and content ("24h", "90m", "2d"): one parser for both."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"\s*(\d{1,6})\s*([smhd])\s*")
MAX_OFFSET_S = 60 * 86400  # a reminder more than 60 days ahead is surely a typo


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Seconds in "24h" (units s, m, h, d); DurationError naming the accepted form otherwise."""
    match = _DURATION.fullmatch(str(text))
    if match is None:
        raise DurationError(f"{text!r} is not a duration; write a whole number and a unit, e.g. 24h, 90m, 2d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_OFFSET_S:
        raise DurationError(f"{text!r} must be more than 0 and at most 60 days")
    return seconds


def parse_offsets(items: list[str] | tuple[str, ...] | str) -> tuple[int, ...]:
    """Reminder offsets ("24h,1h" or a list of them) as distinct seconds, the longest first."""
    parts = [p for p in items.split(",") if p.strip()] if isinstance(items, str) else list(items)
    return tuple(sorted({parse_duration(p) for p in parts}, reverse=True))

