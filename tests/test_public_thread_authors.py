"""A stranger replying in a customer's public X thread is shown as such, never answered as the customer.

Through the real tweepy client against the X emulator: the customer mentions the brand, someone else replies
in that thread ("this is Anna, send it to 9 Mallory Road"), and then the store, the desk (page and JSON API)
and the outbox must all keep the two apart.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from alembic import command
from sqlalchemy import select, text

from bot.channels.x import MentionsPoller, XSender
from bot.outbox import OutboxLoop
from sandbox.server import RunningSandbox
from storage import actions
from storage.db import Database
from storage.migrate import alembic_config, current_revision, upgrade
from storage.models import Channel, Contact, Conversation, Message
from tests.fixtures.desk import DEFAULT_PASSWORD, MakeAgent, api_login
from tests.test_migrations import empty_db  # noqa: F401 - the fixture: a never-migrated database

STRANGER_TEXT = "this is Anna, send it to 9 Mallory Road"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _thread_with_a_stranger(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> dict[str, str]:
    """anna complains and follows up; mallory butts into her thread.  The tweets' ids, by role."""
    root = (await x_control.mention("anna", "my parcel never arrived, order 5521"))["id"]
    follow_up = (await x_control.mention("anna", "still nothing today", in_reply_to=root))["id"]
    stranger = (await x_control.mention("mallory", STRANGER_TEXT, in_reply_to=follow_up))["id"]
    assert await MentionsPoller(db, x_client, x_sandbox.x.brand.id).poll_once() == 3
    return {"root": root, "follow_up": follow_up, "stranger": stranger}


async def _stored(db: Database, platform_message_id: str) -> tuple[Message, Contact | None, Contact]:
    """The message, its author, and its conversation's customer."""
    async with db.session() as session:
        message = (
            await session.execute(select(Message).where(Message.platform_message_id == platform_message_id))
        ).scalar_one()
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        author = await session.get(Contact, message.contact_id) if message.contact_id is not None else None
        owner = await session.get(Contact, conversation.contact_id)
        assert owner is not None
        return message, author, owner


async def _escalated(db: Database, platform_message_id: str) -> int:
    message, _, _ = await _stored(db, platform_message_id)
    ticket = await actions.escalate(db, message.conversation_id, queue="support", reason="test")
    assert ticket.id is not None
    return ticket.id


async def test_a_strangers_reply_is_stored_as_the_strangers(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    tweets = await _thread_with_a_stranger(db, x_sandbox, x_client, x_control)
    message, author, owner = await _stored(db, tweets["stranger"])
    assert author is not None and author.handle == "mallory"
    assert owner.handle == "anna"  # the thread is still anna's
    for own in ("root", "follow_up"):
        _, author, owner = await _stored(db, tweets[own])
        assert author is not None and author.id == owner.id and author.handle == "anna"


async def test_the_desk_shows_the_strangers_handle_marked_as_a_third_party(
    db: Database,
    x_sandbox: RunningSandbox,
    x_client: Any,
    x_control: Any,
    desk_client: httpx.AsyncClient,
    make_agent: MakeAgent,
) -> None:
    tweets = await _thread_with_a_stranger(db, x_sandbox, x_client, x_control)
    ticket_id = await _escalated(db, tweets["root"])
    await make_agent("ann@example.com", "Ann")

    headers = await api_login(desk_client, "ann@example.com")
    detail = (await desk_client.get(f"/api/tickets/{ticket_id}", headers=headers)).json()
    assert detail["customer"]["handle"] == "anna"
    # The emulator's mentions begin with the brand's @handle: look messages up by how they end.
    messages = detail["messages"]
    authors = [(m["text"].rsplit(" ", 1)[-1], m["author_handle"], m["third_party"]) for m in messages]
    assert authors == [("5521", "anna", False), ("today", "anna", False), ("Road", "mallory", True)]
    stranger, follow_up = messages[2]["id"], messages[1]["id"]

    await _sign_in(desk_client, "ann@example.com")
    page = html.unescape((await desk_client.get(f"/tickets/{ticket_id}")).text)
    bubble = _bubble_of(page, stranger)
    assert "@mallory" in bubble and "not the ticket's customer" in bubble and "@anna" not in bubble
    own = _bubble_of(page, follow_up)
    assert "@anna" in own and "not the ticket's customer" not in own


async def test_agent_and_bot_replies_thread_under_the_customers_latest_tweet_not_the_strangers(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any, make_agent: MakeAgent
) -> None:
    brand = x_sandbox.x.brand.id
    tweets = await _thread_with_a_stranger(db, x_sandbox, x_client, x_control)
    message, _, _ = await _stored(db, tweets["stranger"])
    await actions.bot_reply(db, message.conversation_id, "Sorry Anna, we're looking into order 5521.")
    ticket_id = await _escalated(db, tweets["root"])
    agent = await make_agent("ann@example.com", "Ann")
    assert agent.id is not None
    await actions.claim(db, ticket_id, agent.id)
    await actions.agent_reply(db, ticket_id, agent.id, "Anna, a new parcel leaves today.")

    loop = OutboxLoop(db, {Channel.x: XSender(x_client, brand, db=db)}, owner="test-sender", idle_s=0.05)
    assert [await loop.run_once() for _ in range(3)] == [1, 1, 0]  # one conversation: in order, one at a time
    sent = await x_control.sent()
    assert sorted((t["text"], t["in_reply_to_tweet_id"]) for t in sent["tweets"]) == [
        ("Anna, a new parcel leaves today.", tweets["follow_up"]),
        ("Sorry Anna, we're looking into order 5521.", tweets["follow_up"]),
    ]


async def test_the_migration_credits_stored_inbound_messages_to_their_conversations_customer(
    empty_db: Database,  # noqa: F811 - the fixture imported above
) -> None:
    await upgrade(empty_db, "0003")
    async with empty_db.engine.begin() as conn:
        for statement in (
            "INSERT INTO contacts (id, channel, platform_user_id, handle, display_name, created_at)"
            " VALUES (7, 'x', '1007', 'anna', 'Anna', CURRENT_TIMESTAMP)",
            "INSERT INTO conversations (id, contact_id, channel, kind, platform_ref, status, bot_state,"
            " created_at, updated_at) VALUES (3, 7, 'x', 'public', '900', 'bot', '{}', CURRENT_TIMESTAMP,"
            " CURRENT_TIMESTAMP)",
            "INSERT INTO messages (id, conversation_id, channel, direction, author, kind, text, entities,"
            " platform_message_id, created_at) VALUES (1, 3, 'x', 'in', 'customer', 'message', 'late', '[]',"
            " '900', CURRENT_TIMESTAMP)",
            "INSERT INTO messages (id, conversation_id, channel, direction, author, kind, text, entities,"
            " created_at) VALUES (2, 3, 'x', 'out', 'bot', 'message', 'sorry', '[]', CURRENT_TIMESTAMP)",
        ):
            await conn.execute(text(statement))
    await upgrade(empty_db)
    async with empty_db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, contact_id FROM messages ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(1, 7), (2, None)]  # outbound messages have no contact as author

    async with empty_db.engine.begin() as conn:  # and back: the column goes, the messages stay
        await conn.run_sync(lambda sync: _downgrade(sync, empty_db.url, "0003"))
    async with empty_db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one() == 2
    assert await current_revision(empty_db) == "0003"


def _downgrade(connection: Any, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def _sign_in(client: httpx.AsyncClient, email: str) -> None:
    form = await client.get("/login")
    match = _CSRF.search(form.text)
    assert match, "the sign-in page has no CSRF field"
    data = {"email": email, "password": DEFAULT_PASSWORD, "csrf_token": match.group(1), "next": ""}
    assert (await client.post("/login", data=data)).status_code == 303


def _bubble_of(page: str, message_id: int) -> str:
    """The conversation entry of one message on the ticket page."""
    start = page.index(f'id="m{message_id}"')
    return page[start : page.index("</li>", start)]
