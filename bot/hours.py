"""Business hours: when people are at their desks, so the bot can say when an escalated customer hears back.

The setting reads like a shop door: ``"Mon-Fri 09:00-17:00"``, several spans separated by commas or
semicolons (``"Mon-Fri 09:00-17:00, Sat 10:00-14:00"``), in ``settings.business_timezone``.  Empty means
always open (the bot never mentions hours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_SPAN = re.compile(
    r"^(?P<d1>[a-z]{3})[a-z]*(?:\s*-\s*(?P<d2>[a-z]{3})[a-z]*)?\s+"
    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})$"
)


class HoursError(ValueError):
    """FRONTDESK_BUSINESS_HOURS or FRONTDESK_BUSINESS_TIMEZONE cannot be understood."""


@dataclass(frozen=True)
class _Span:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


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
        local = when.astimezone(self.zone)
        return any(s.weekday == local.weekday() and s.opens <= local.time() < s.closes for s in self.spans)

    def next_opening(self, when: datetime) -> datetime | None:
        """The next moment the desk opens after `when` (in the business time zone); None if always open."""
        if self.always_open:
            return None
        local = when.astimezone(self.zone)
        for offset in range(0, 8):
            day = local.date() + timedelta(days=offset)
            for span in sorted(self.spans, key=lambda s: s.opens):
                if span.weekday != day.weekday():
                    continue
                opening = datetime.combine(day, span.opens, tzinfo=self.zone)
                if opening > local:
                    return opening
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


def parse_business_hours(spec: str, timezone: str = "UTC") -> BusinessHours:
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(
            f"FRONTDESK_BUSINESS_TIMEZONE={timezone!r} is not an IANA time zone; use e.g. Europe/Berlin or UTC"
        ) from None
    spans: list[_Span] = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;]", spec or ""))):
        match = _SPAN.match(part.lower())
        if not match:
            raise HoursError(
                f"FRONTDESK_BUSINESS_HOURS: cannot read {part!r}; write e.g. \"Mon-Fri 09:00-17:00\" "
                "(several spans separated by commas)"
            )
        d1, d2 = match["d1"], match["d2"] or match["d1"]
        if d1 not in DAYS or d2 not in DAYS:
            raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        try:
            opens = time(int(match["h1"]), int(match["m1"]))
            closes = time(int(match["h2"]), int(match["m2"])) if match["h2"] != "24" else time(23, 59, 59)
        except ValueError:
            raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part!r}: hours are 00:00 to 24:00") from None
        if closes <= opens:
            raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part!r}: closing time must be after opening time")
        first, last = DAYS.index(d1), DAYS.index(d2)
        days = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        spans.extend(_Span(d, opens, closes) for d in days)
    return BusinessHours(spans=tuple(spans), zone=zone, spec=spec)
