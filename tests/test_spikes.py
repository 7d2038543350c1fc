"""The spike detector (bot/spikes.py) as a pure function: windows, baseline, minimum count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.spikes import SpikeConfig, detect, threshold, windows_at

CONFIG = SpikeConfig(window_s=900, baseline_windows=4, stdevs=3.0, min_count=10, quiet_s=7200)
NOW = datetime(2026, 12, 3, 14, 7, 30, tzinfo=UTC)


def test_windows_are_aligned_so_every_process_names_the_same_one() -> None:
    windows = windows_at(NOW, CONFIG)
    assert windows.current_start == datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    assert windows.baseline_starts[0] == datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
    assert windows_at(NOW + timedelta(minutes=7), CONFIG).current_start == windows.current_start
    assert windows.index_of(datetime(2026, 12, 3, 13, 59, tzinfo=UTC)) == 3
    assert windows.index_of(datetime(2026, 12, 3, 14, 1)) == 4  # naive (SQLite) counts as UTC
    assert windows.index_of(datetime(2026, 12, 3, 12, 59, tzinfo=UTC)) is None


def test_a_burst_over_a_flat_baseline_is_a_spike_and_names_its_category() -> None:
    [spike] = detect({"intent:complaint": [1, 0, 2, 1, 14], "intent:greet": [5, 6, 5, 4, 6]},
                     windows_at(NOW, CONFIG), CONFIG, parents={"intent:complaint": "category:support"})
    assert (spike.key, spike.count, spike.baseline, spike.parent_key) == ("intent:complaint", 14, 1.0, "category:support")
    assert spike.window_start == windows_at(NOW, CONFIG).current_start


def test_a_quiet_brands_few_messages_are_no_spike() -> None:
    assert detect({"intent:complaint": [0, 0, 0, 0, 3]}, windows_at(NOW, CONFIG), CONFIG) == []
    # Exactly the minimum against nothing is one.
    assert [s.count for s in detect({"k": [0, 0, 0, 0, 10]}, windows_at(NOW, CONFIG), CONFIG)] == [10]


def test_a_busy_key_needs_more_than_its_usual_swing() -> None:
    mean, limit = threshold([20, 30, 20, 30], CONFIG)
    assert (mean, limit) == (25.0, 40.0)  # stdev 5
    assert detect({"k": [20, 30, 20, 30, 39]}, windows_at(NOW, CONFIG), CONFIG) == []
    assert len(detect({"k": [20, 30, 20, 30, 40]}, windows_at(NOW, CONFIG), CONFIG)) == 1


def test_missing_windows_count_zero_and_bad_settings_are_refused() -> None:
    assert len(detect({"k": [12]}, windows_at(NOW, CONFIG), CONFIG)) == 0  # [12, 0, 0, 0, 0]: current is 0
    with pytest.raises(ValueError, match="window_s > 0"):
        SpikeConfig(window_s=0)
