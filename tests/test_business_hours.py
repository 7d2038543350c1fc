"""Business hours (frontdesk/core/business_hours.py): counting and adding business seconds, the setting's format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from frontdesk.core.business_hours import HoursError, parse_business_hours

H = 3600


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_24x7_and_empty_count_every_second() -> None:
    for spec in ("24x7", "", "  "):
        hours = parse_business_hours(spec)
        assert hours.always_open
        assert hours.seconds_between(utc(2026, 11, 27, 18), utc(2026, 11, 30, 9)) == 63 * H
        assert hours.add_seconds(utc(2026, 11, 27, 18), 2 * H) == utc(2026, 11, 27, 20)


def test_a_weekend_does_not_count() -> None:
    hours = parse_business_hours("Mon-Fri 09:00-17:00")
    friday_4pm, monday_10am = utc(2026, 11, 27, 16), utc(2026, 11, 30, 10)
    assert hours.seconds_between(friday_4pm, monday_10am) == 2 * H
    assert hours.add_seconds(friday_4pm, 2 * H) == monday_10am
    # Started on a Saturday: the clock starts on Monday morning.
    assert hours.add_seconds(utc(2026, 11, 28, 12), 30 * 60) == utc(2026, 11, 30, 9, 30)
    assert hours.seconds_between(utc(2026, 11, 28, 0), utc(2026, 11, 30, 0)) == 0
    # A whole working week.
    assert hours.seconds_between(utc(2026, 11, 30), utc(2026, 12, 7)) == 40 * H
    assert hours.seconds_between(monday_10am, friday_4pm) == 0  # backwards: nothing


def test_the_zone_named_in_the_setting_is_used_and_summer_time_ends_on_a_weekend() -> None:
    hours = parse_business_hours("Mon-Fri 09:00-17:00 Europe/London", "Asia/Tokyo")
    assert hours.zone.key == "Europe/London"
    # Friday 23 Oct 2026, 16:00 UTC is 17:00 BST: closed.  Clocks go back on Sunday 25th, so Monday 09:00 is
    # 09:00 UTC.
    friday = utc(2026, 10, 23, 15)  # 16:00 BST: one hour left
    assert hours.seconds_between(friday, utc(2026, 10, 26, 10)) == 2 * H
    assert hours.add_seconds(friday, 3 * H) == utc(2026, 10, 26, 11)


def test_a_day_across_a_summer_time_change_is_an_hour_shorter_or_longer() -> None:
    hours = parse_business_hours("Sun 00:00-24:00 Europe/Berlin")
    spring = utc(2026, 3, 28, 12)  # a Saturday; Sunday 29 March loses an hour
    assert hours.seconds_between(spring, spring + timedelta(days=2)) == 23 * H
    autumn = utc(2026, 10, 24, 12)  # Sunday 25 October gains one
    assert hours.seconds_between(autumn, autumn + timedelta(days=2)) == 25 * H
    # Wall-clock opening stays put: 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
    nine = parse_business_hours("Mon-Fri 09:00-17:00", "Europe/Berlin")
    assert nine.next_opening(utc(2026, 3, 28, 12)) == datetime(2026, 3, 30, 9, tzinfo=nine.zone)
    assert nine.next_opening(utc(2026, 3, 28, 12)).astimezone(UTC) == utc(2026, 3, 30, 7)  # type: ignore[union-attr]


def test_a_window_past_midnight_belongs_to_the_day_it_opens() -> None:
    hours = parse_business_hours("Fri 22:00-06:00")
    assert hours.is_open(utc(2026, 11, 28, 3))  # Saturday 03:00
    assert not hours.is_open(utc(2026, 11, 28, 7))
    assert not hours.is_open(utc(2026, 11, 27, 3))  # Friday 03:00: Thursday has no night shift
    assert hours.seconds_between(utc(2026, 11, 23), utc(2026, 11, 30)) == 8 * H
    assert hours.add_seconds(utc(2026, 11, 27, 23), 2 * H) == utc(2026, 11, 28, 1)
    # Started before the shift: the clock runs from 22:00.
    assert hours.add_seconds(utc(2026, 11, 27, 12), 8 * H) == utc(2026, 11, 28, 6)


def test_several_spans_separated_by_semicolons_and_overlaps_count_once() -> None:
    hours = parse_business_hours("Mon-Fri 09:00-17:00; Sat 10:00-14:00")
    assert hours.seconds_between(utc(2026, 11, 28), utc(2026, 11, 29)) == 4 * H
    assert hours.describe_next_opening(utc(2026, 11, 29, 11)) == "tomorrow at 09:00 (UTC)"
    overlapping = parse_business_hours("Mon 09:00-17:00; Mon 12:00-20:00")
    assert overlapping.seconds_between(utc(2026, 11, 30), utc(2026, 12, 1)) == 11 * H
    assert overlapping.add_seconds(utc(2026, 11, 30, 9), 10 * H) == utc(2026, 11, 30, 19)
    # A long target spans many weeks.
    weekdays = parse_business_hours("Mon-Fri 09:00-17:00")
    start = utc(2026, 11, 30, 9)
    assert weekdays.add_seconds(start, 400 * H) == utc(2027, 2, 5, 17)  # ten weeks of 40 hours
    assert weekdays.seconds_between(start, weekdays.add_seconds(start, 400 * H)) == 400 * H


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("weekdays 9 to 5", "write days and hours like \"Mon-Fri 09:00-17:00\""),
        ("Mon-Fri 9-5", "several separated by ';'"),
        ("Mon-Fro 09:00-17:00", "days are Mon, Tue"),
        ("Mon-Fri 09:00-25:00", "times are 00:00 to 24:00"),
        ("Mon-Fri 09:60-17:00", "times are 00:00 to 24:00"),
        ("Mon 09:00-09:00", "for a whole day write 00:00-24:00"),
        ("Mon-Fri 09:00-17:00 Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
        ("24/8", "or 24x7"),
    ],
)
def test_bad_formats_are_refused_naming_the_fix(spec: str, says: str) -> None:
    with pytest.raises(HoursError) as refused:
        parse_business_hours(spec)
    assert says in str(refused.value)
    assert "FRONTDESK_BUSINESS_HOURS" in str(refused.value)


def test_a_bad_fallback_time_zone_names_both_settings() -> None:
    with pytest.raises(HoursError, match="FRONTDESK_BUSINESS_TIMEZONE"):
        parse_business_hours("Mon-Fri 09:00-17:00", "Berlin")
