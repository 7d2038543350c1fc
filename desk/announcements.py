"""Announcements in the desk: what the API and the page share (the brand's stop note, events, prices, pace)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.content import ContentError, load_content, shipped_texts
from frontdesk.core.settings import Settings
from storage.announcements import Pace, pace_from
from storage.usage import PriceTable, PriceTableError, load_prices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    footer: str  # the stop note every announcement ends with (replies.yml dm.announcement_footer)
    events: dict[str, str]  # event key -> name, from events.yml
    prices: PriceTable | None  # None: x_prices.yml is unusable (the preview then names no cost)
    pace: Pace


def setup_of(settings: Settings) -> Setup:
    """Read from the content folder at each use, so an edited stop note or catalogue is what is shown."""
    try:
        content = load_content(settings.content_dir)
        footer = content.texts.dm("announcement_footer")
        events = {e.key: e.name for e in content.events}
    except (ContentError, OSError, ValueError) as exc:
        log.warning("desk: the content folder is unusable (%s); announcements use the shipped stop note", exc)
        footer, events = shipped_texts().dm("announcement_footer"), {}
    try:
        prices: PriceTable | None = load_prices(settings.content_dir)
    except (PriceTableError, OSError) as exc:
        log.warning("desk: no X price table (%s); previews show no cost", exc)
        prices = None
    return Setup(footer=footer, events=events, prices=prices, pace=pace_from(settings))


def describe_duration(seconds: float) -> str:
    """"at once", "about 2 h 15 min", "about 3 days 4 h": how long sending takes at the pace."""
    if seconds < 60:
        return "at once"
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if mins and not days:
        parts.append(f"{mins} min")
    return "about " + " ".join(parts)
