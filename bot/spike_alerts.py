"""The spike alert loop: count (bot/spike_sources.py), decide (bot/spikes.py), record (storage/actions/incidents.py).

Run by the router's process (frontdesk/app/supervisor.py).  Any number of them may run: the store raises
each (key, window) once and keeps the quiet period, and the pager and the desk read the alerts from there.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from bot.spike_sources import SOURCES, Source, count_all
from bot.spikes import SpikeConfig, detect, windows_at
from frontdesk.core.settings import Settings
from storage.actions.incidents import raise_alert
from storage.db import Database
from storage.models import Alert, utcnow

log = logging.getLogger("frontdesk.spikes")


def spike_config(settings: Settings) -> SpikeConfig:
    return SpikeConfig(
        window_s=settings.spike_window_s, baseline_windows=settings.spike_baseline_windows,
        stdevs=settings.spike_stdevs, min_count=settings.spike_min_count, quiet_s=settings.spike_quiet_s,
    )


async def check_spikes(
    db: Database, config: SpikeConfig, *, now: datetime | None = None, sources: tuple[Source, ...] = SOURCES
) -> list[Alert]:
    """One check: the alerts it raised (none for a spike already alerted or in its quiet period)."""
    windows = windows_at(now or utcnow(), config)
    async with db.session() as session:
        counts = await count_all(session, windows, sources)
    spikes = detect(counts.series, windows, config, parents=counts.parents)
    # An intent before its category: the intent's alert quiets the category (the same burst, said vaguer).
    spikes.sort(key=lambda spike: (spike.parent_key is None, spike.key))
    raised: list[Alert] = []
    for spike in spikes:
        alert = await raise_alert(
            db, key=spike.key, window_start=spike.window_start, count=spike.count, baseline=spike.baseline,
            parent_key=spike.parent_key, quiet_s=config.quiet_s, now=windows.now,
        )
        if alert is not None:
            log.warning("spike alert: %s has %d messages this window (baseline %.1f)", spike.key, spike.count,
                        spike.baseline)
            raised.append(alert)
    return raised


async def run_spike_alerts(db: Database, config: SpikeConfig, *, interval_s: float) -> None:
    while True:
        try:
            await check_spikes(db, config)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("spike alerts: check failed; retrying")
        await asyncio.sleep(interval_s)
