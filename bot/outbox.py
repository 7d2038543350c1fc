"""The outbox loop: delivers every queued outbound message through its channel, once.

Rows come from `storage.outbox.lease_due` (oldest first, one per conversation at a time, so each
conversation's messages go out in order).  For each leased row:

- if it may already have gone out — its previous sender died mid-send, or its last attempt ended in an
  error that does not tell whether the platform posted it (5xx, timeout; stored with the row, so a restart
  knows too) — it comes back with `needs_reconcile` and the channel's `find_delivered` looks at what the
  account actually posted; found → marked sent, not re-sent;
- an announcement's row (its target names the delivery) whose contact opted out since it was queued is
  marked not sent (`drop_if_opted_out`), never delivered;
- otherwise `deliver`, then `mark_sent`;
- `SendError`: permanent → `mark_failed` (agents see it); else `mark_retry` after the platform's
  `retry_after_s` or an exponential backoff; any other exception is logged and retried the same way.

A sender that dies between `deliver` and `mark_sent` leaves the row `sending`; its lease lapses and the row
comes back with `needs_reconcile`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping

from bot.channels.base import ChannelSender, SendError
from frontdesk.core import metrics
from storage.actions.announcements import drop_if_opted_out
from storage.db import Database
from storage.models import Channel
from storage.outbox import Delivery, lease_due, mark_failed, mark_retry, mark_sent_many

log = logging.getLogger(__name__)

NO_SENDER_RETRY_S = 60.0


class OutboxLoop:
    """`run()` until cancelled; `wake()` to look for work now; `run_once()` handles one batch (tests)."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[Channel, ChannelSender],
        owner: str,
        *,
        batch: int = 20,
        lease_s: float = 60.0,
        idle_s: float = 1.0,
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.owner = owner
        self.batch = batch
        self.lease_s = lease_s
        self.idle_s = idle_s
        self.sent = 0
        self.reconciled = 0
        self.retries = 0
        self.failed = 0
        self.dropped = 0  # announcements not sent: the contact opted out after they were queued
        self._wake = asyncio.Event()
        self._to_mark: list[tuple[int, str | None, asyncio.Future[None]]] = []
        self._marking = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled, up to `batch` rows in flight at once.

        New rows are leased as soon as the router queues them (`wake`), even while earlier ones are still
        being delivered: an answer never waits for the slowest delivery of the batch before it.
        """
        log.info(
            "outbox loop %s started (channels: %s)", self.owner, ", ".join(c.value for c in self.senders)
        )
        in_flight: set[asyncio.Task[None]] = set()
        more_due = False  # the last lease filled all the room there was: more rows may be waiting

        def finished(delivery: Delivery, task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            # Lease again once half the room is free, not after every row: one lease per half batch.  And
            # at once when this row held back the next answer of its conversation (rows of a conversation
            # go out one after another): otherwise that answer would wait for the idle poll, a second for
            # each answer behind it.
            if (more_due and len(in_flight) <= self.batch // 2) or delivery.followed:
                self._wake.set()

        try:
            while True:
                self._wake.clear()
                room = self.batch - len(in_flight)
                if room > 0:
                    try:
                        deliveries = await lease_due(self.db, self.owner, limit=room, lease_s=self.lease_s)
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # the database is away: try again shortly
                        log.exception("outbox: leasing failed; retrying in %.1f s", self.idle_s)
                        deliveries = []
                    for delivery in deliveries:
                        task = asyncio.create_task(self._handle_logged(delivery))
                        in_flight.add(task)
                        task.add_done_callback(functools.partial(finished, delivery))
                    more_due = len(deliveries) == room
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_s)
                except TimeoutError:
                    pass
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def run_once(self) -> int:
        """Lease due rows and handle them (different conversations concurrently); how many were leased."""
        deliveries = await lease_due(self.db, self.owner, limit=self.batch, lease_s=self.lease_s)
        results = await asyncio.gather(*(self._handle(d) for d in deliveries), return_exceptions=True)
        for delivery, result in zip(deliveries, results):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                self._log_unrecorded(delivery, result)
        return len(deliveries)

    async def _handle_logged(self, delivery: Delivery) -> None:
        try:
            await self._handle(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - logged; the row's lease lapses and it is reconciled
            self._log_unrecorded(delivery, error)

    @staticmethod
    def _log_unrecorded(delivery: Delivery, error: BaseException) -> None:
        # Recording the outcome failed (the database went away): the row stays leased, its lease lapses,
        # and it comes back to be reconciled — never blindly re-sent.
        log.error("outbox: could not record the outcome of row %s: %r", delivery.id, error)

    async def _handle(self, delivery: Delivery) -> None:
        sender = self.senders.get(Channel(delivery.channel))
        if sender is None:
            await mark_retry(
                self.db,
                delivery.id,
                f"no sender for channel {delivery.channel!r} is running",
                delay_s=NO_SENDER_RETRY_S,
            )
            return
        try:
            if delivery.needs_reconcile:
                found = await sender.find_delivered(delivery)
                if found is not None:
                    await self._mark_sent(delivery.id, found)
                    metrics.message_sent(delivery.channel)
                    self.reconciled += 1
                    return
            announcement = delivery.target.get("announcement")
            if announcement is not None and await drop_if_opted_out(self.db, delivery.id, int(announcement)):
                self.dropped += 1
                log.info("outbox: row %s not sent: its contact opted out of announcements", delivery.id)
                return
            platform_id = await sender.deliver(delivery)
        except SendError as error:
            await self._failed_attempt(delivery, error)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug in a sender: retry with backoff, never silently drop
            log.exception("outbox: unexpected error delivering row %s", delivery.id)
            self.retries += 1
            metrics.outbox_retry(delivery.channel, type(error).__name__)
            await mark_retry(self.db, delivery.id, f"{type(error).__name__}: {error}", uncertain=True)
            return
        await self._mark_sent(delivery.id, platform_id)
        metrics.message_sent(delivery.channel)
        self.sent += 1

    async def _mark_sent(self, outbox_id: int, platform_id: str | None) -> None:
        """Group commit: rows delivered while another `mark_sent` commits go together in the next one.

        No waiting for a batch to fill (a lone row is marked at once); under load one commit covers
        every row that finished meanwhile.  Returns once this row's commit is done (or raises its error).
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_mark.append((outbox_id, platform_id, done))
        if not self._marking:
            self._marking = True
            try:
                while self._to_mark:
                    batch, self._to_mark = self._to_mark, []
                    try:
                        await mark_sent_many(self.db, [(i, p) for i, p, _ in batch])
                    except BaseException as error:
                        for *_, future in batch:
                            if future is not done and not future.done():  # ours: the raise below says it
                                future.set_exception(
                                    error if isinstance(error, Exception) else RuntimeError("marking interrupted")
                                )
                        raise
                    for *_, future in batch:
                        if not future.done():
                            future.set_result(None)
            finally:
                self._marking = False
                for *_, future in self._to_mark:  # interrupted: waiters fail, their rows get reconciled
                    if not future.done():
                        future.set_exception(RuntimeError("marking interrupted"))
                self._to_mark = []
        await done

    async def _failed_attempt(self, delivery: Delivery, error: SendError) -> None:
        if error.permanent:
            self.failed += 1
            metrics.outbox_failed(delivery.channel)
            log.error("outbox: row %s (%s) will not be delivered: %s", delivery.id, delivery.channel, error)
            await mark_failed(self.db, delivery.id, str(error))
            return
        self.retries += 1
        metrics.outbox_retry(
            delivery.channel, "rate_limited" if error.retry_after_s is not None else "server_error"
        )
        # A 5xx or a lost connection: the platform may have posted it anyway.  That is stored with the row
        # (not remembered here), so whoever leases it next, after a restart too, looks before re-sending.
        uncertain = error.retry_after_s is None
        log.warning(
            "outbox: row %s (%s) attempt %d failed: %s",
            delivery.id,
            delivery.channel,
            delivery.attempts,
            error,
        )
        await mark_retry(self.db, delivery.id, str(error), delay_s=error.retry_after_s, uncertain=uncertain)
