"""Business hours: when people are at their desks.  The bot says when an escalated customer hears back, and
SLA clocks (frontdesk/core/sla.py) count only these hours.

The setting (FRONTDESK_BUSINESS_HOURS) reads like a shop door, optionally followed by an IANA time zone:

    24x7                                               always open (the default; empty means the same)
    Mon-Fri 09:00-17:00                                in FRONTDESK_BUSINESS_TIMEZONE (default UTC)
    Mon-Fri 09:00-17:00 Europe/London                  the zone named in the setting wins
    Mon-Fri 09:00-17:00; Sat 10:00-14:00 Europe/Berlin several spans, separated by `;` (or `,`)
    Fri 22:00-06:00                                    a span that closes before it opens ends the next day
    Sun 00:00-24:00                                    the whole day

Times are wall-clock times in the zone, so a day that changes to or from summer time is an hour shorter or
longer when the desk is open across the change.  Pure functions of their arguments: no clock, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ALWAYS = "24x7"
EXAMPLE = "Mon-Fri 09:00-17:00; Sat 10:00-14:00 Europe/London"

_SPAN = re.compile(
    r"^(?P<d1>[a-z]{3})[a-z]*(?:\s*-\s*(?P<d2>[a-z]{3})[a-z]*)?\s+"
    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})$"
)
_ZONE = re.compile(r"^(?:[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+|UTC|GMT)$")
_DAY = timedelta(days=1)


class HoursError(ValueError):
    """FRONTDESK_BUSINESS_HOURS or FRONTDESK_BUSINESS_TIMEZONE cannot be understood."""


@dataclass(frozen=True)
class _Span:
    weekday: int  # 0 = Monday: the day the span opens
    opens: time
    length: timedelta  # up to a day; a span may run past midnight into the next day

    @property
    def closes(self) -> time:
        return (datetime.combine(date.min, self.opens) + self.length).time()


@dataclass(frozen=True)
class BusinessHours:
    spans: tuple[_Span, ...]
    zone: ZoneInfo
    spec: str = ""

    @property
    def always_open(self) -> bool:
        return not self.spans

    def is_open(self, when: datetime) -> bool:
        if self.always_open:
            return True
        moment = when.astimezone(UTC)
        return any(start <= moment < end for start, end in self._intervals(moment - _DAY, moment + _DAY))

    def next_opening(self, when: datetime) -> datetime | None:
        """The next moment the desk opens after `when` (in the business time zone); None if always open."""
        if self.always_open:
            return None
        moment = when.astimezone(UTC)
        for start, _ in self._intervals(moment, moment + 8 * _DAY):
            if start > moment:
                return start.astimezone(self.zone)
        return None

    def describe_next_opening(self, when: datetime) -> str:
        """E.g. "Monday 09:00 (Europe/Berlin)", "today at 09:00 (UTC)", "tomorrow at 09:00 (UTC)"."""
        opening = self.next_opening(when)
        if opening is None:
            return ""
        local = when.astimezone(self.zone)
        days = (opening.date() - local.date()).days
        day = "today at" if days == 0 else "tomorrow at" if days == 1 else DAY_NAMES[opening.weekday()]
        return f"{day} {opening:%H:%M} ({self.zone.key})"

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Business seconds from `start` to `end` (0 when `end` is not after `start`)."""
        a, b = start.astimezone(UTC), end.astimezone(UTC)
        if b <= a:
            return 0.0
        if self.always_open:
            return (b - a).total_seconds()
        total = 0.0
        for open_at, close_at in self._intervals(a, b):
            overlap = (min(b, close_at) - max(a, open_at)).total_seconds()
            if overlap > 0:
                total += overlap
        return total

    def add_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant at which `seconds` business seconds have passed since `start` (UTC)."""
        moment = start.astimezone(UTC)
        if self.always_open or seconds <= 0:
            return moment + timedelta(seconds=max(seconds, 0.0))
        left = timedelta(seconds=seconds)
        # Every week has at least one span, so each pass of the loop consumes something: it ends.
        for open_at, close_at in self._intervals(moment, None):
            begin = max(open_at, moment)
            if close_at <= begin:
                continue
            if begin + left <= close_at:
                return begin + left
            left -= close_at - begin
        raise AssertionError("unreachable: the intervals never end")  # pragma: no cover

    def _intervals(self, since: datetime, until: datetime | None) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals in UTC, in order, merged where they touch, covering [since, until) (until None:
        for ever).  Spans from the day before `since` are included: they may still be open past midnight."""
        day = since.astimezone(self.zone).date() - _DAY
        last = None if until is None else until.astimezone(self.zone).date()
        current: tuple[datetime, datetime] | None = None
        while last is None or day <= last:
            for span in self._by_day[day.weekday()]:
                # Wall-clock arithmetic in the zone, then UTC: "09:00" stays 09:00 across a DST change.
                local_open = datetime.combine(day, span.opens, tzinfo=self.zone)
                start = local_open.astimezone(UTC)
                end = (local_open + span.length).astimezone(UTC)
                if current is not None and start <= current[1]:
                    current = (current[0], max(current[1], end))
                    continue
                if current is not None:
                    yield current
                current = (start, end)
            day += _DAY
        if current is not None:
            yield current

    @functools.cached_property
    def _by_day(self) -> tuple[tuple[_Span, ...], ...]:
        return tuple(tuple(sorted((s for s in self.spans if s.weekday == d), key=lambda s: s.opens)) for d in range(7))


def parse_business_hours(spec: str, timezone: str = "UTC") -> BusinessHours:
    """Read FRONTDESK_BUSINESS_HOURS (see the module docstring); `timezone` is used when the spec names none.

    Raises HoursError naming the part it cannot read and how to write it."""
    text = (spec or "").strip()
    zone_name = timezone or "UTC"
    words = text.split()
    if len(words) > 1 and _ZONE.match(words[-1]) and not _SPAN.match(" ".join(words[-2:]).lower()):
        zone_name, text = words[-1], " ".join(words[:-1]).rstrip(";, ")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(
            f"business hours: {zone_name!r} is not an IANA time zone; end FRONTDESK_BUSINESS_HOURS with one "
            "(e.g. Europe/London) or set FRONTDESK_BUSINESS_TIMEZONE"
        ) from None
    if text.lower() in ("", ALWAYS, "24/7"):
        return BusinessHours(spans=(), zone=zone, spec=spec)
    spans: list[_Span] = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;]", text))):
        spans.extend(_parse_span(part))
    return BusinessHours(spans=tuple(spans), zone=zone, spec=spec)


def _parse_span(part: str) -> list[_Span]:
    match = _SPAN.match(part.lower())
    if not match:
        raise HoursError(
            f"FRONTDESK_BUSINESS_HOURS: cannot read {part!r}; write days and hours like \"Mon-Fri 09:00-17:00\", "
            f"several separated by ';' and optionally a time zone at the end (\"{EXAMPLE}\"), or {ALWAYS}"
        )
    d1, d2 = match["d1"], match["d2"] or match["d1"]
    if d1 not in DAYS or d2 not in DAYS:
        raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
    opens, closes = _minutes(part, match["h1"], match["m1"]), _minutes(part, match["h2"], match["m2"])
    if opens == 24 * 60:
        raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part!r}: a span opens at 00:00 to 23:59, not 24:00")
    if closes == opens:
        raise HoursError(
            f"FRONTDESK_BUSINESS_HOURS: {part!r}: opens and closes at the same time; for a whole day write "
            "00:00-24:00"
        )
    length = closes - opens if closes > opens else 24 * 60 - opens + closes  # past midnight: ends the next day
    first, last = DAYS.index(d1), DAYS.index(d2)
    days = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
    return [_Span(d, time(opens // 60, opens % 60), timedelta(minutes=length)) for d in days]


def _minutes(part: str, hours: str, minutes: str) -> int:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m <= 59) or (h == 24 and m != 0):
        raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part!r}: times are 00:00 to 24:00, e.g. 09:30")
    return h * 60 + m
