"""A PostgreSQL connection that dies while it waits in the pool (a restart, a failover, an idle timeout)
must not cost the next write: it is pinged and replaced before anyone uses it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from storage import actions
from storage.db import Database
from tests.store_helpers import dm

pytestmark = pytest.mark.postgres


async def _backend_pid(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("select pg_backend_pid()"))).scalar_one())


async def _kill(admin: Database, pid: int) -> None:
    async with admin.session() as session:
        assert (await session.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
    await asyncio.sleep(0.2)  # the server closes the socket; the pool does not know yet


async def test_a_connection_killed_while_idle_in_the_pool_is_replaced_before_the_next_write(pg_database_url: str) -> None:
    admin = Database(pg_database_url)
    store = Database(pg_database_url, pool_size=1, max_overflow=0, ping_after_idle_s=0.1)
    try:
        first = await actions.record_inbound(store, dm("hello", msg_id="dm-before-kill"))
        dead_pid = await _backend_pid(store)
        await _kill(admin, dead_pid)

        second = await actions.record_inbound(store, dm("still there?", msg_id="dm-after-kill"))

        assert second.is_new and second.message_id != first.message_id
        assert await _backend_pid(store) != dead_pid
    finally:
        await store.dispose()
        await admin.dispose()


async def test_without_the_idle_ping_the_same_kill_fails_the_next_write(pg_database_url: str) -> None:
    # The control for the test above: it is the ping that saves the write, not luck.
    admin = Database(pg_database_url)
    store = Database(pg_database_url, pool_size=1, max_overflow=0, ping_after_idle_s=3600)
    try:
        await actions.record_inbound(store, dm("hello", msg_id="dm-control-before"))
        await _kill(admin, await _backend_pid(store))
        with pytest.raises(Exception, match="(?i)connection|closed|terminat"):
            await actions.record_inbound(store, dm("lost?", msg_id="dm-control-after"))
    finally:
        await store.dispose()
        await admin.dispose()
