"""Poller leadership: one leader per account at a time, and a quick takeover when the leader goes away.

Each test runs on SQLite (lease row) and PostgreSQL (advisory lock); the lease-row mechanism is also
exercised on PostgreSQL.  Takeovers are awaited with a generous ceiling, never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from storage.cursors import get_cursor, set_cursor
from storage.db import Database
from storage.leadership import LeaderLease, leader_lease

TAKEOVER_CEILING_S = 30.0  # a failure, not a measurement: the takeover normally takes about one lease period


async def _until_held(lease: LeaderLease) -> None:
    await asyncio.wait_for(lease.wait_held(), TAKEOVER_CEILING_S)


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "auto"), id="sqlite-row"),
        pytest.param(("postgresql", "auto"), id="postgresql-advisory", marks=pytest.mark.postgres),
        pytest.param(("postgresql", "row"), id="postgresql-row", marks=pytest.mark.postgres),
    ]
)
def contest_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    dialect, strategy = request.param
    return request.getfixturevalue("sqlite_database_url" if dialect == "sqlite" else "pg_database_url"), strategy


@pytest.fixture
async def contest(contest_url: tuple[str, str]) -> AsyncIterator[tuple[Database, str]]:
    """A store with no lease rows, and the mechanism to test on it."""
    url, strategy = contest_url
    database = Database(url)
    async with database.transaction() as s:
        await s.execute(text("DELETE FROM channel_cursors"))
    try:
        yield database, strategy
    finally:
        await database.dispose()


async def test_of_two_contenders_exactly_one_leads(contest: tuple[Database, str]) -> None:
    db, strategy = contest
    a = LeaderLease(db, "x:brand", owner="worker-a", strategy=strategy)  # type: ignore[arg-type]
    b = LeaderLease(db, "x:brand", owner="worker-b", strategy=strategy)  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(a.try_acquire(), b.try_acquire())
        assert sorted(results) == [False, True]
        assert a.held != b.held
        leader = a if a.held else b
        assert await leader.renew() is True
        follower = b if leader is a else a
        assert await follower.try_acquire() is False
    finally:
        await a.release()
        await b.release()


async def test_ten_concurrent_contenders_elect_one(contest: tuple[Database, str]) -> None:
    db, strategy = contest
    leases = [LeaderLease(db, "telegram:bot", owner=f"w{i}", strategy=strategy) for i in range(10)]  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(*(lease.try_acquire() for lease in leases))
        assert results.count(True) == 1
    finally:
        for lease in leases:
            await lease.release()


async def test_different_names_have_independent_leaders(contest: tuple[Database, str]) -> None:
    db, strategy = contest
    x = LeaderLease(db, "x:brand", owner="w1", strategy=strategy)  # type: ignore[arg-type]
    tg = LeaderLease(db, "telegram:bot", owner="w2", strategy=strategy)  # type: ignore[arg-type]
    try:
        assert await x.try_acquire() and await tg.try_acquire()
    finally:
        await x.release()
        await tg.release()


async def test_released_lease_is_taken_over(contest: tuple[Database, str]) -> None:
    db, strategy = contest
    seen_a: list[bool] = []
    seen_b: list[bool] = []
    async with leader_lease(db, "x:brand", owner="a", lease_s=1.0, strategy=strategy, on_change=seen_a.append) as a:  # type: ignore[arg-type]
        assert a.held
        async with leader_lease(
            db, "x:brand", owner="b", lease_s=1.0, retry_s=0.1, strategy=strategy, on_change=seen_b.append  # type: ignore[arg-type]
        ) as b:
            assert not b.held
            await a.release()
            await _until_held(b)
            assert b.held and not a.held
            assert await a.try_acquire() is False  # the old leader does not snatch it back
    assert seen_a == [True, False]
    assert seen_b == [True, False]


async def test_a_leader_that_stops_renewing_is_replaced_and_learns_it(db: Database) -> None:
    """The holder freezes (no renewals: a stuck event loop, a paused VM): its row lease lapses."""
    a = LeaderLease(db, "x:brand", owner="frozen", lease_s=0.5, strategy="row")
    assert await a.try_acquire()
    async with leader_lease(db, "x:brand", owner="b", lease_s=0.5, retry_s=0.1, strategy="row") as b:
        await _until_held(b)
        assert await a.renew() is False  # it wakes up and finds out before polling again
        assert not a.held
    await a.release()


@pytest.mark.postgres
async def test_postgres_leader_whose_connection_dies_is_replaced(pg_database_url: str) -> None:
    """The holder's process is killed: the server notices its connection is gone and frees the lock."""
    db = Database(pg_database_url)
    try:
        a = LeaderLease(db, "x:killed", owner="doomed")
        assert a.strategy == "advisory" and await a.try_acquire()
        async with leader_lease(db, "x:killed", owner="heir", lease_s=1.0, retry_s=0.1) as b:
            assert not b.held
            async with db.transaction() as s:
                killed = (
                    await s.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'frontdesk-leader:x:killed' AND datname = current_database() "
                            "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
                        )
                    )
                ).scalar_one()
            assert killed == 1
            await _until_held(b)
            assert await a.renew() is False
        await a.release()
    finally:
        await db.dispose()


async def test_lease_rows_do_not_disturb_channel_cursors(db: Database) -> None:
    await set_cursor(db, "x:brand:mentions", "1234")
    lease = LeaderLease(db, "x:brand:mentions", owner="w", strategy="row")
    try:
        assert await lease.try_acquire()
        assert await get_cursor(db, "x:brand:mentions") == "1234"
    finally:
        await lease.release()


async def test_wait_held_returns_for_the_only_contender(db: Database) -> None:
    async with leader_lease(db, "telegram:solo", lease_s=1.0) as lease:
        await _until_held(lease)
        assert lease.held
    assert not lease.held
