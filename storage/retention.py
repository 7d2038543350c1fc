"""The retention loop: every worker applies FRONTDESK_RETENTION_DAYS now and then (`frontdesk run`/`worker`).

Several workers may run it at once: each erasure is idempotent and takes row locks, so they only share
the work.  A failed pass is logged and tried again at the next one; it never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging

from storage.actions.privacy import erase_expired
from storage.db import Database

log = logging.getLogger("frontdesk.retention")


async def run_retention(db: Database, *, days: int, interval_s: float) -> None:
    """Erase what expired, then again every `interval_s` seconds, until cancelled."""
    while True:
        try:
            erased = await erase_expired(db, older_than_days=days)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database hiccup must not end the worker; the next pass retries
            log.exception("retention: a pass failed; retrying in %.0f s", interval_s)
        else:
            if not erased.empty:
                log.info("retention: erased what was finished over %d days ago: %s", days, erased.describe())
        await asyncio.sleep(interval_s)
