"""The desk says why X will not take a public reply, and why a reply failed (issue 21; SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from storage import actions
from storage.actions import InboundMessage
from storage.db import Database
from storage.models import Channel, ConversationKind, OutboxItem
from storage.outbox import lease_due, mark_failed
from tests.fixtures.desk import api_login
from tests.test_desk_pages import _sign_in


async def _public_ticket(db: Database, *, summons: bool) -> int:
    """Nora's public post (answering a brand post, with or without @mentioning it) escalated with a public notice."""
    recorded = await actions.record_inbound(db, InboundMessage(
        channel=Channel.x, conversation_kind=ConversationKind.public, conversation_ref="9000", sender_id="77",
        sender_handle="nora", text="my order never arrived", platform_message_id="9001", summons_brand=summons,
    ))
    ticket = await actions.escalate(
        db, recorded.conversation_id, queue="support", reason="public mention: invited to DM",
        notice_text="Sorry about that! Please DM us.",
    )
    assert ticket.id is not None
    return ticket.id


async def _outbox_count(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(OutboxItem))).scalar_one()


async def test_a_withheld_public_reply_and_a_refused_agent_reply_are_explained(
    desk_client, make_agent, db
) -> None:
    ticket_id = await _public_ticket(db, summons=False)
    assert await _outbox_count(db) == 0  # the notice was withheld, not queued to fail
    await make_agent("ann@example.com", "Ann")
    csrf = await _sign_in(desk_client, "ann@example.com")
    page = (await desk_client.get(f"/tickets/{ticket_id}")).text
    assert "public reply withheld" in page and "@mentions it or quotes one of its posts" in page
    await desk_client.post(f"/tickets/{ticket_id}/claim", data={"csrf_token": csrf})

    htmx = await desk_client.post(
        f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "text": "Sorry, Nora"}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 200 and htmx.headers["hx-retarget"] == "#flash"
    assert "Cannot reply in public" in htmx.text and "no post of @nora in this thread" in htmx.text
    api = await desk_client.post(
        f"/api/tickets/{ticket_id}/reply", headers=await api_login(desk_client, "ann@example.com"),
        json={"text": "Sorry, Nora"},
    )
    assert api.status_code == 403 and "X lets the brand reply only under a post" in api.json()["detail"]
    assert await _outbox_count(db) == 0


async def test_a_permanent_delivery_failure_is_on_the_ticket(desk_client, make_agent, db) -> None:
    ticket_id = await _public_ticket(db, summons=True)
    [delivery] = await lease_due(db, "test")
    await mark_failed(db, delivery.id, "The customer's post this replies to was deleted (or is no longer visible)")
    await make_agent("ann@example.com", "Ann")
    await _sign_in(desk_client, "ann@example.com")
    page = (await desk_client.get(f"/tickets/{ticket_id}")).text
    assert "delivery failed" in page
    assert len(re.findall(r"this replies to was deleted", page)) >= 2  # on the message and in the audit trail
