"""bot/channels/leading.py: a channel's pollers run in exactly one process, and another takes over."""

from __future__ import annotations

import asyncio

from bot.channels.leading import PollingLeader
from storage.db import Database
from tests.fixtures.bot import eventually


async def test_only_the_leader_polls_and_a_follower_takes_over(db: Database) -> None:
    running: dict[str, bool] = {"a": False, "b": False}

    def leader(name: str) -> PollingLeader:
        async def start() -> None:
            running[name] = True

        async def stop() -> None:
            running[name] = False

        return PollingLeader(db, "x:12345", start, stop, lease_s=1.5, check_s=0.05)

    a, b = leader("a"), leader("b")
    task_a = asyncio.create_task(a.run())
    await asyncio.wait_for(a.first_attempt.wait(), 10)
    task_b = asyncio.create_task(b.run())
    await asyncio.wait_for(b.first_attempt.wait(), 10)
    assert running == {"a": True, "b": False}

    task_a.cancel()  # the leader stops: its pollers stop, the follower starts its own
    await asyncio.gather(task_a, return_exceptions=True)
    assert running["a"] is False
    await eventually(lambda: _true(running["b"]), what="the follower taking over", timeout_s=10)
    assert b.takeovers == 1

    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)
    assert running == {"a": False, "b": False}


async def _true(value: bool) -> bool | None:
    return True if value else None
