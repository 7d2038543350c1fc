"""Group commit for inbound messages: many concurrent webhook requests, one transaction per turn.

X (and Telegram) deliver webhooks several at a time.  Recording each in its own transaction makes every
request queue for the store's write lock behind the others, so ingest falls behind exactly when traffic
peaks.  `InboundRecorder.record` instead parks the caller's messages; whoever arrives while the transactions
(one on SQLite, a few on PostgreSQL) are being written waits for the next one, which takes everything
that gathered meanwhile
(`storage.actions.record_inbound_many`: same de-duplication, same order).  A request still gets its
answer only after its messages are committed, so "recorded before acknowledged" holds.

If a batch fails (one bad message), each caller's messages are retried on their own, so one sender's
bad message never costs another sender theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from storage.actions import InboundMessage, Recorded, record_inbound_many
from storage.db import Database

_Waiting = tuple[Sequence[InboundMessage], "asyncio.Future[list[Recorded]]"]


class InboundRecorder:
    def __init__(self, db: Database, *, max_batch: int = 200, writers: int | None = None) -> None:
        self.db = db
        self.max_batch = max_batch
        # SQLite has one writer at a time anyway; PostgreSQL takes a few transactions side by side, so a
        # slow commit does not hold up every webhook behind it.
        self.writers = writers or (1 if db.dialect == "sqlite" else 4)
        self.transactions = 0  # for tests and metrics: how many commits the recorded messages took
        self._waiting: list[_Waiting] = []
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, messages: Sequence[InboundMessage]) -> list[Recorded]:
        """Record `messages` (in order, de-duplicated); returns when they are committed."""
        if not messages:
            return []
        future: asyncio.Future[list[Recorded]] = asyncio.get_running_loop().create_future()
        self._waiting.append((messages, future))
        if self._active < self.writers:
            self._active += 1
            task = asyncio.ensure_future(self._write_while_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _write_while_waiting(self) -> None:
        try:
            await self._write_batches()
        finally:
            self._active -= 1

    async def _write_batches(self) -> None:
        while self._waiting:
            batch, size = [], 0
            while self._waiting and (not batch or size + len(self._waiting[0][0]) <= self.max_batch):
                messages, future = self._waiting.pop(0)
                if not future.done():  # the request went away (client hung up): nothing to answer
                    batch.append((messages, future))
                    size += len(messages)
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            self.transactions += 1
            results = await record_inbound_many(self.db, [m for messages, _ in batch for m in messages])
        except Exception:  # noqa: BLE001 - find out whose message it was: each caller on its own
            for messages, future in batch:
                try:
                    self.transactions += 1
                    _answer(future, await record_inbound_many(self.db, messages))
                except Exception as exc:  # noqa: BLE001 - handed to that caller
                    if not future.done():
                        future.set_exception(exc)
            return
        start = 0
        for messages, future in batch:
            _answer(future, results[start : start + len(messages)])
            start += len(messages)


def _answer(future: asyncio.Future[list[Recorded]], results: list[Recorded]) -> None:
    if not future.done():
        future.set_result(results)
