"""An agent's public reply that holds personal data is held with a warning, on both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from frontdesk.core.personal_text import personal_data_in
from storage import actions
from storage.models import OutboxItem
from tests.fixtures.desk import api_login, inbound


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Please confirm at sam.lee@northwind.example", ["an e-mail address"]),
        ("We'll call you on +44 20 7946 0958 today", ["a phone number"]),
        ("Your order A-10293 ships tomorrow", ["an order number"]),
        ("Order #88231 is on its way", ["an order number"]),
        ("The courier will come to 12 Elm Street", ["a street address"]),
        ("Sent to Rheinsberger Str. 76, 10115 Berlin", ["a street address"]),
        ("Your parcel is at the depot near SW1A 1AA", ["a postcode"]),
        ("Mail sam@northwind.example about order QX-55120", ["an e-mail address", "an order number"]),
    ],
)
def test_personal_data_is_recognised(text: str, kinds: list[str]) -> None:
    assert personal_data_in(text) == kinds


@pytest.mark.parametrize(
    "text",
    [
        "So sorry about this! Please send us a DM: https://x.com/messages/compose?recipient_id=1712345678901",
        "Thanks for your patience, we're on it and will update you within 2 hours.",
        "Our 24/7 team is here for you. Have a great weekend!",
        "The 2026 spring launch is on 18 February.",
    ],
)
def test_an_ordinary_public_reply_is_not_held(text: str) -> None:
    assert personal_data_in(text) == []


@pytest.fixture
async def public_ticket(db, make_agent, desk_client):  # type: ignore[no-untyped-def]
    """A public mention escalated and claimed by Ann; returns (ticket id, Ann's API headers)."""
    agent = await make_agent("ann@example.com", "Ann")
    headers = await api_login(desk_client, "ann@example.com")
    recorded = await actions.record_inbound(db, inbound("@brand my order is late", sender="501", handle="zoe", kind="public"))
    ticket = await actions.escalate(db, recorded.conversation_id, queue="support", reason="test")
    await actions.claim(db, ticket.id, agent.id)  # type: ignore[arg-type]
    return ticket.id, headers


async def _outbox(db) -> int:  # type: ignore[no-untyped-def]
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(OutboxItem))).scalar_one()


async def test_a_public_reply_with_an_email_is_held_until_confirmed(desk_client, db, public_ticket) -> None:
    ticket_id, headers = public_ticket
    before = await _outbox(db)
    text = {"text": "@zoe write to returns@shop.example with A-10293"}
    held = await desk_client.post(f"/api/tickets/{ticket_id}/reply", headers=headers, json=text)
    assert held.status_code == 409
    assert "public on X" in held.json()["detail"] and "an e-mail address and an order number" in held.json()["detail"]
    assert await _outbox(db) == before  # nothing queued, nothing posted
    sent = await desk_client.post(
        f"/api/tickets/{ticket_id}/reply", headers=headers, json={**text, "confirm_public": True}
    )
    assert sent.status_code == 202
    assert await _outbox(db) == before + 1


async def test_the_same_details_in_a_dm_are_sent(desk_client, db, make_agent, make_ticket) -> None:
    agent = await make_agent("bob@example.com", "Bob")
    headers = await api_login(desk_client, "bob@example.com")
    ticket = await make_ticket("where is my parcel")  # an X DM
    await actions.claim(db, ticket.id, agent.id)  # type: ignore[arg-type]
    response = await desk_client.post(
        f"/api/tickets/{ticket.id}/reply", headers=headers, json={"text": "Order A-10293 left today"}
    )
    assert response.status_code == 202


async def test_the_desk_page_holds_it_and_says_why(desk_client, db, public_ticket, make_agent) -> None:
    from tests.test_desk_pages import _sign_in

    ticket_id, _ = public_ticket
    csrf = await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get(f"/tickets/{ticket_id}")
    assert 'name="confirm_public"' in page.text
    before = await _outbox(db)
    held = await desk_client.post(
        f"/tickets/{ticket_id}/reply", data={"text": "Call us on +44 20 7946 0958", "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert held.status_code == 200 and "Not sent: this reply is public on X" in held.text
    assert await _outbox(db) == before
    sent = await desk_client.post(
        f"/tickets/{ticket_id}/reply",
        data={"text": "Call us on +44 20 7946 0958", "csrf_token": csrf, "confirm_public": "1"},
        headers={"HX-Request": "true"},
    )
    assert sent.status_code == 200 and sent.headers.get("X-Desk-Ok") == "1"
    assert await _outbox(db) == before + 1
