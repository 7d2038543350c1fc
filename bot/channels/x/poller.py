"""The loop every X poller shares: poll, record, pace, survive X's bad moments, stop on bad credentials.

A subclass says how one poll goes (`poll_once`: fetch what is new, record it oldest first with
`record_inbound_many`, one transaction per page, then advance its cursor).  This loop decides when the next poll happens:

- after a poll: as X's rate-limit window allows (see `Pacer`);
- 429: wait until `x-rate-limit-reset`, without a single request in between;
- 5xx, timeouts, connection errors: capped exponential backoff with jitter;
- 401/403: log which settings to check and stop this poller (retrying cannot fix credentials).

Counters (`polls`, `requests`, `recorded`, `rate_limit_waits`, `errors`) are plain attributes for metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import tweepy
from tweepy.asynchronous import AsyncClient

from bot.channels.base import Wake
from bot.channels.x.api import (
    CREDENTIALS_HINT,
    TRANSIENT_ERRORS,
    ApiResult,
    api_message,
    call,
    raw_client,
    retry_after_s,
)
from bot.channels.x.rate_limits import Pacer
from frontdesk.core import metrics
from storage.actions import InboundMessage, record_inbound_many
from storage.db import Database

log = logging.getLogger(__name__)

# A poll reads at most this many pages, then lets the next round carry on from the same token (with
# the cursor unmoved): X can hand out `next_token`s on empty pages, and one poll must not loop forever.
MAX_PAGES_PER_POLL = 50


class PagingUnfinished(Exception):
    """A poll stopped paging before X ran out of pages; the next round resumes from the kept token."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind}: {MAX_PAGES_PER_POLL} pages read, more to come")


class Poller:
    """Base class: `run()` until cancelled or stopped by bad credentials; `poll_once()` for one round."""

    kind = "poller"
    cursor_suffix = "cursor"  # the persisted cursor is `x:<brand id>:<kind>:<cursor_suffix>`

    def __init__(
        self,
        db: Database,
        client: AsyncClient,
        brand_id: str,
        *,
        wake: Wake | None = None,
        interval_s: float = 0.0,
        floor_s: float = 1.0,
        backoff_max_s: float = 60.0,
        backfill_s: float = 3600.0,
        page_size: int = 100,
        cursor_name: str | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.raw = raw_client(client)
        self.brand_id = str(brand_id)
        self.wake = wake or (lambda: None)
        self.pacer = Pacer(floor_s=floor_s, fixed_s=interval_s, backoff_max_s=backoff_max_s)
        self.backfill_s = backfill_s
        self.page_size = page_size
        self.cursor_name = cursor_name or f"x:{self.brand_id}:{self.kind}:{self.cursor_suffix}"
        self.polls = 0
        self.requests = 0
        self.recorded = 0
        self.rate_limit_waits = 0
        self.errors = 0
        self.stopped_reason: str | None = None
        self._poke = asyncio.Event()
        self._must_wait = False

    # --- one poll ---------------------------------------------------------------------------------
    async def poll_once(self) -> int:
        """Fetch and record what is new; the number of messages recorded for the first time."""
        raise NotImplementedError

    async def _get(self, method: str, *args: object, **kwargs: object) -> ApiResult:
        self.requests += 1
        result = await call(self.raw, method, *args, **kwargs)
        self.pacer.observe(result.rate_limit)
        return result

    def _first_run_cutoff(self, cursor: str | None) -> datetime | None:
        """Without a cursor (first start), old history is not news: ingest only the last `backfill_s`."""
        if cursor is not None:
            return None
        return datetime.now(UTC) - timedelta(seconds=self.backfill_s)

    async def _record_all(self, messages: Sequence[InboundMessage]) -> int:
        """Record a page (oldest first, as the caller sorted it) in one transaction; wake the router.

        One commit per page rather than per message is what lets ingest keep up with a busy account; a
        crash before the commit records none of the page, and the cursor has not moved, so the next poll
        fetches it again.
        """
        new = sum(1 for recorded in await record_inbound_many(self.db, messages) if recorded.is_new)
        self.recorded += new
        if new:
            self.wake()
        return new

    # --- the loop ---------------------------------------------------------------------------------
    def poke(self) -> None:
        """Poll now instead of at the next scheduled time (a webhook hinted that something arrived)."""
        self._poke.set()

    async def run(self) -> None:
        log.info("X %s poller started (brand id %s)", self.kind, self.brand_id)
        while True:
            delay = await self._one_round()
            if delay is None:
                return
            await self._sleep(delay)

    async def _one_round(self) -> float | None:
        self._must_wait = True  # after a 429 or an error a poke does not cut the wait short
        try:
            new = await self.poll_once()
        except PagingUnfinished:
            self.polls += 1
            self._must_wait = False
            return self.pacer.after_success()  # more pages: carry on as soon as the budget allows
        except tweepy.TooManyRequests as error:
            self.rate_limit_waits += 1
            delay = self.pacer.after_rate_limited(retry_after_s(error))
            log.warning("X %s: rate limited (429); waiting %.1f s for the window to reset", self.kind, delay)
            metrics.rate_limit_wait("x", self.kind, delay)
            return delay
        except (tweepy.Unauthorized, tweepy.Forbidden) as error:
            self.errors += 1
            self.stopped_reason = (
                f"X refused the {self.kind} request ({api_message(error)}): {CREDENTIALS_HINT}"
            )
            log.error("X %s poller stopped. %s", self.kind, self.stopped_reason)
            return None
        except TRANSIENT_ERRORS as error:
            self.errors += 1
            delay = self.pacer.after_failure()
            log.warning("X %s: %s; retrying in %.1f s", self.kind, _describe(error), delay)
            return delay
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug or the database: keep the poller alive, loudly
            self.errors += 1
            delay = self.pacer.after_failure()
            log.exception("X %s poll failed; retrying in %.1f s", self.kind, delay)
            return delay
        self.polls += 1
        delay = self.pacer.after_success()
        self._must_wait = self.pacer.last is not None and self.pacer.last.remaining <= 0
        if new:
            log.info("X %s: %d new", self.kind, new)
        log.debug("X %s: next poll in %.2f s", self.kind, delay)
        return delay

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            return
        self._poke.clear()
        deadline = time.monotonic() + delay
        try:
            await asyncio.wait_for(self._poke.wait(), timeout=delay)
        except TimeoutError:
            return
        # Poked: poll now, unless X told us to wait (a 429's reset, an exhausted window, a backoff).
        if self._must_wait:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def _describe(error: BaseException) -> str:
    if isinstance(error, tweepy.HTTPException):
        return api_message(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
