"""Which event a customer's words identify, and whether anything they said contradicts it.

The bot registers a customer only when their words point at exactly one event and nothing in them
disagrees with it: "the product launch webinar on the 15th" names the launch (a livestream on the 18th)
with the wrong kind and the wrong date, so the router asks first ("the launch is on Thursday 18
February — shall I register you for that one?").  Pure functions over the catalogue and the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.content import Event, contains_phrase

_MONTHS = {
    name: number for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
         ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
         ("october", "oct"), ("november", "nov"), ("december", "dec")], start=1)
    for name in names
}
_WEEKDAYS = {
    name: number for number, names in enumerate(
        [("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"), ("thursday", "thu", "thur", "thurs"),
         ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun")])
    for name in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
# "15th", "the 15", "on the 15th", "15 February", "February 15", "Feb 15th", "15/2", "2026-02-15"
_DAY_PATTERNS = (
    re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b", re.I),
    re.compile(r"\b(?:on|the)\s+(\d{1,2})\b(?!\s*(?:am|pm|:|h\b|people|seats|of us|%))", re.I),
    re.compile(rf"\b(\d{{1,2}})\s*(?:of\s+)?(?:{_MONTH_RE})\b", re.I),
    re.compile(rf"\b(?:{_MONTH_RE})\.?\s+(\d{{1,2}})\b", re.I),
)
_MONTH_WORD = re.compile(rf"\b({_MONTH_RE})\b\.?", re.I)
_WEEKDAY_WORD = re.compile(r"\b(" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + r")\b", re.I)
_RELATIVE = re.compile(r"\b(today|tonight|tomorrow)\b", re.I)
_PLACE = re.compile(r"\b(?:in|at)\s+([A-Z][a-zäöüß]+(?:\s+[A-Z][a-zäöüß]+)?)")
# Words that look like a place after "in"/"at" but are not one.
_NOT_PLACES = {"The", "Our", "Your", "My", "Frontdesk", "Person", "English", "German"}
# Short words that mean a month only in a date ("may I", "sat down", "wed" are not dates).
_AMBIGUOUS_MONTHS = {"may", "mar", "sep", "jun", "jan", "dec", "oct", "aug", "apr", "jul", "nov", "feb"}
_AMBIGUOUS_WEEKDAYS = {"sat", "sun", "wed", "mon", "tue", "thu", "fri"}


@dataclass(frozen=True)
class Identified:
    """The events the words point at (best first) and what in them disagrees with the best one."""

    candidates: tuple[Event, ...]
    mismatch: str = ""  # "" | "date" | "place" | "name"

    @property
    def best(self) -> Event | None:
        return self.candidates[0] if self.candidates else None

    @property
    def one_clear_event(self) -> bool:
        """Exactly one candidate and nothing said against it: safe to act on without asking."""
        return len(self.candidates) == 1 and not self.mismatch


def identify(events: Sequence[Event], text: str, *, now: datetime, extra: str = "") -> Identified:
    """Score every event against `text` (+ `extra`, e.g. NLU entity values); check the best one's details."""
    haystack = f"{text} {extra}".strip()
    scored = sorted(
        ((e.mentioned_in(haystack), i, e) for i, e in enumerate(events)), key=lambda t: (-t[0], t[1])
    )
    scored = [(s, i, e) for s, i, e in scored if s > 0]
    if not scored:
        return Identified(())
    best_score = scored[0][0]
    # A second event counts when it is named about as clearly (half the best score or more), unless the
    # best one is named in full and it is not.
    named_in_full = contains_phrase(haystack, scored[0][2].name)
    candidates = [
        e for s, _, e in scored
        if s == best_score or (s * 2 >= best_score and not (named_in_full and not contains_phrase(haystack, e.name)))
    ]
    best = candidates[0]
    return Identified(tuple(candidates), _mismatch(best, events, haystack, now))


def _mismatch(event: Event, events: Sequence[Event], text: str, now: datetime) -> str:
    if _date_disagrees(event, text, now):
        return "date"
    if _place_disagrees(event, text):
        return "place"
    if _kind_disagrees(event, events, text):
        return "name"
    return ""


def _date_disagrees(event: Event, text: str, now: datetime) -> bool:
    start = event.starts_at
    days = {int(m.group(1)) for p in _DAY_PATTERNS for m in p.finditer(text) if 1 <= int(m.group(1)) <= 31}
    months = {_MONTHS[m.group(1).lower()] for m in _MONTH_WORD.finditer(text)
              if m.group(1).lower() not in _AMBIGUOUS_MONTHS or _near_a_day(text, m)}
    weekdays = {_WEEKDAYS[m.group(1).lower()] for m in _WEEKDAY_WORD.finditer(text)
                if m.group(1).lower() not in _AMBIGUOUS_WEEKDAYS or m.group(0)[0].isupper()}
    if days and start.day not in days:
        return True
    if months and start.month not in months:
        return True
    if weekdays and start.weekday() not in weekdays:
        return True
    local_now = now.astimezone(start.tzinfo)
    for m in _RELATIVE.finditer(text):
        wanted = local_now.date() + timedelta(days=1 if m.group(1).lower() == "tomorrow" else 0)
        if start.date() != wanted:
            return True
    return False


def _near_a_day(text: str, match: re.Match[str]) -> bool:
    around = text[max(0, match.start() - 6): match.end() + 6]
    return re.search(r"\d", around) is not None


def _place_disagrees(event: Event, text: str) -> bool:
    """'the meetup in Munich' when the meetup is in Berlin (an online event has no place to disagree with)."""
    if not event.place:
        return False
    for m in _PLACE.finditer(text):
        place = m.group(1)
        if place.split()[0] in _NOT_PLACES or place.lower() in _MONTHS or place.lower() in _WEEKDAYS:
            continue
        if not contains_phrase(event.place, place) and not contains_phrase(event.name, place) and \
                not any(contains_phrase(place, k) for k in event.keywords):
            return True
    return False


def _kind_disagrees(event: Event, events: Sequence[Event], text: str) -> bool:
    """The words name another kind of event ("webinar") than this one is (a livestream)."""
    own = {event.kind, *event.keywords}
    for other in {e.kind for e in events} - {event.kind}:
        if contains_phrase(text, other) and not any(contains_phrase(k, other) for k in own):
            return True
    return False
