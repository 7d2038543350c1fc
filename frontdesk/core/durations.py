"""Short durations as people write them in settings and content ("24h", "90m", "2d", "1h30m"): one parser
for the SLA targets (content/sla.yml), the event reminders (events.yml, FRONTDESK_EVENT_REMINDERS) and
anything after them."""

from __future__ import annotations

import re

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile(r"(?:(?P<d>\d{1,6})d)?\s*(?:(?P<h>\d{1,6})h)?\s*(?:(?P<m>\d{1,6})m)?\s*(?:(?P<s>\d{1,6})s)?")
MAX_OFFSET_S = 60 * 86400  # a reminder more than 60 days ahead is surely a typo


class DurationError(ValueError):
    pass


def parse_duration(text: object, *, zero: str = "must be more than 0") -> int:
    """Seconds in "30m", "4h", "2d", "1h30m", "45s"; DurationError naming the accepted form otherwise.

    `zero`: what to say about a duration of nothing (a caller names what it is for)."""
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()):
        raise DurationError(f"{text!r} is not a duration; write e.g. 30m, 4h, 2d or 1h30m")
    seconds = sum(int(match[unit] or 0) * size for unit, size in _UNITS)
    if seconds <= 0:
        raise DurationError(f"{text!r}: {zero}; write e.g. 30m")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest spelling `parse_duration` reads back."""
    out = ""
    for unit, size in _UNITS:
        n, seconds = divmod(seconds, size)
        if n:
            out += f"{n}{unit}"
    return out or "0s"


def parse_offsets(items: list[str] | tuple[str, ...] | str) -> tuple[int, ...]:
    """Reminder offsets ("24h,1h" or a list of them) as distinct seconds, the longest first."""
    parts = [p for p in items.split(",") if p.strip()] if isinstance(items, str) else list(items)
    offsets = {parse_duration(p) for p in parts}
    if any(s > MAX_OFFSET_S for s in offsets):
        raise DurationError(f"{items!r}: a reminder must be more than 0 and at most 60 days before the event")
    return tuple(sorted(offsets, reverse=True))
