"""`python -m bot.channels.x`: run only the X ingest (pollers) against the configured store.

Useful to watch ingestion on its own, and how the tests kill and restart a real ingesting process.
Configuration comes from the usual FRONTDESK_* settings (FRONTDESK_DATABASE_URL, FRONTDESK_X_API_BASE, ...).
The store must already be migrated (`frontdesk db upgrade`).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.channels.x.channel import XChannel
from frontdesk.core.settings import Settings
from storage.db import Database


async def _main() -> None:
    settings = Settings()
    db = Database(settings.effective_database_url)
    channel = XChannel(db, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await channel.start()
    print(f"ready brand={channel.brand_id}", flush=True)
    try:
        await stop.wait()
    finally:
        await channel.stop()
        await db.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main())
