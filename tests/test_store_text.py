"""Whatever customers type is stored exactly, or refused with a clear error and nothing half-written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage import actions
from storage.db import Database
from storage.errors import InvalidText
from storage.models import Contact, Conversation, Message
from storage.text import MAX_TEXT_CHARS
from tests.store_helpers import dm

FAITHFUL = {
    "emoji": "📦 still not here 😡😡 #fail",
    "rtl": "طلبي لم يصل بعد، أرجو المساعدة",
    "mixed_direction": "order \u202eesrever\u202c and שלום",
    "combining": "cafe\u0301 ñ Z̤͔ͧ̑̓",
    "longest": "a" * MAX_TEXT_CHARS,
    "empty": "",
    "whitespace": "  \n\t ",
}


@pytest.mark.parametrize("name", list(FAITHFUL))
async def test_text_round_trips_exactly(db: Database, name: str) -> None:
    text = FAITHFUL[name]
    rec = await actions.record_inbound(db, dm(text))
    async with db.session() as s:
        stored = await s.get(Message, rec.message_id)
    assert stored is not None and stored.text == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nul \x00 byte", "NUL character"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("a" * (MAX_TEXT_CHARS + 1), "the limit is 100,000"),
    ],
)
async def test_unstorable_text_is_refused_and_nothing_is_half_written(db: Database, text: str, reason: str) -> None:
    with pytest.raises(InvalidText, match=reason):
        await actions.record_inbound(db, dm(text))
    async with db.session() as s:
        for table in (Message, Conversation, Contact):
            assert (await s.execute(select(func.count()).select_from(table))).scalar_one() == 0


async def test_an_empty_agent_reply_is_refused(db: Database) -> None:
    from storage.agents import create_agent

    ada = await create_agent(db, email="ada@brand.example", name="Ada", password="correct horse")
    rec = await actions.record_inbound(db, dm())
    ticket = await actions.escalate(db, rec.conversation_id, queue="support")
    await actions.claim(db, ticket.id, ada.id)
    with pytest.raises(InvalidText, match="empty"):
        await actions.agent_reply(db, ticket.id, ada.id, "   ")
