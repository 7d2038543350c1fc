"""What one handled message costs the store: the router worker's statements (SQLite and PostgreSQL).

The pipeline benchmark (bench/pipeline.py, via bench/statements.py) prints these per phase; this test pins
the route phase of one DM: the lease reads the waiting messages with it, and the conversation row is
written once for the message (its time and bot state go with the lease release), while what the bot
wrote still reads back: the answer, the bot's state, the lease given back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from bot.content import Content
from bot.router import RouterConfig
from bot.worker import BotWorker
from nlu.client import ParseResult
from storage.actions import record_inbound
from storage.db import Database
from storage.models import Conversation, Message, OutboxItem
from tests.fixtures.bot import nlu_result
from tests.store_helpers import dm


class _Greeting:
    async def parse(self, text: str) -> ParseResult:
        return nlu_result("greet", 0.95, text)


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def _writes_to(statements: list[str], table: str) -> list[str]:
    return [s for s in statements if s.upper().startswith(f"UPDATE {table.upper()} ")]


async def test_one_dm_writes_its_conversation_once_and_is_not_read_twice(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    recorded = await record_inbound(db, dm("hello there", sender="9301"))
    worker = BotWorker(db, _Greeting(), content, router_config, owner="w1", idle_poll_s=0.05)
    with _statements(db) as seen:
        await worker.drain()
    assert worker.stats.handled == 1 and worker.stats.replied == 1
    # Handling the message writes the conversation row once: the lease release carries the answer's time
    # and the bot's state (before: the ORM's UPDATE of those, then the release).  The waiting message was
    # read with the lease (before: a read of its own), and leasing is one statement (before: two).
    leases = [s for s in seen if s.startswith("UPDATE conversations SET lease_owner") and "candidate" in s]
    assert len(leases) == 2, seen  # the lease, and drain's last look that finds nothing
    handling = [s for s in _writes_to(seen, "conversations") if s not in leases]
    assert len(handling) == 1 and "bot_state" in handling[0] and "lease_owner" in handling[0], seen
    reads_of_waiting = [s for s in seen if s.startswith("SELECT messages.") and "handled_at IS NULL" in s]
    assert len(reads_of_waiting) == 1, seen
    # Lease + read, then BEGIN, lock, answer, its outbox row, release, mark handled, then the empty lease.
    assert len([s for s in seen if not s.startswith("BEGIN")]) == 8, seen

    async with db.session() as session:
        conversation = await session.get(Conversation, recorded.conversation_id)
        answer = (await session.execute(
            select(OutboxItem).where(OutboxItem.conversation_id == recorded.conversation_id)
        )).scalar_one()
        message = await session.get(Message, recorded.message_id)
    assert conversation is not None and message is not None
    assert conversation.bot_state.get("last_message_id") == recorded.message_id
    assert conversation.lease_owner is None and conversation.lease_until is None
    assert conversation.updated_at >= answer.created_at  # the answer's time reached the row
    assert message.handled_at is not None and message.intent == "greet"
