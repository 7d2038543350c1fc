"""The customer panel: one person's contacts, tickets, registrations and leads across channels.

Reads only.  A person is a contact plus every contact an agent linked with it (`storage/customers.py`);
their tickets are listed oldest first, as the story happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from desk.queries import CustomerRef, aware, customer_ref
from storage.customers import person_of
from storage.db import Database
from storage.errors import NotFound
from storage.models import Contact, Conversation, EventRegistration, Ticket


@dataclass(frozen=True)
class CustomerTicket:
    id: int
    queue: str
    status: str
    category: str
    subject: str
    channel: str
    conversation_kind: str  # dm | public | telegram
    created_at: datetime
    resolved_at: datetime | None
    lead: dict[str, Any] | None


@dataclass(frozen=True)
class CustomerProfile:
    contact: CustomerRef
    linked: list[CustomerRef]  # the same person's other contacts
    tickets: list[CustomerTicket]
    registrations: list[dict[str, Any]]
    conversations: int


async def customer_profile(db: Database, contact_id: int) -> CustomerProfile:
    async with db.session() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            raise NotFound("Customer", contact_id)
        ids = await person_of(session, contact_id)
        contacts = {c.id: c for c in (await session.execute(select(Contact).where(col(Contact.id).in_(ids)))).scalars()}
        rows = (
            await session.execute(
                select(Ticket, Conversation.kind, Contact.channel)
                .join(Conversation, Conversation.id == Ticket.conversation_id)
                .join(Contact, Contact.id == Ticket.contact_id)
                .where(col(Ticket.contact_id).in_(ids))
                .order_by(Ticket.created_at, Ticket.id)
            )
        ).all()
        registrations = (
            await session.execute(
                select(EventRegistration)
                .where(col(EventRegistration.contact_id).in_(ids))
                .order_by(EventRegistration.created_at, EventRegistration.id)
            )
        ).scalars().all()
        conversations = (
            await session.execute(select(func.count()).where(col(Conversation.contact_id).in_(ids)))
        ).scalar_one()
    tickets = [
        CustomerTicket(
            id=t.id,  # type: ignore[arg-type]
            queue=t.queue.value,
            status=t.status.value,
            category=t.category,
            subject=t.subject,
            channel=channel.value,
            conversation_kind=kind.value,
            created_at=aware(t.created_at),  # type: ignore[arg-type]
            resolved_at=aware(t.resolved_at),
            lead=(t.data or {}).get("lead") or None,
        )
        for t, kind, channel in rows
    ]
    return CustomerProfile(
        contact=customer_ref(contact),
        linked=[customer_ref(c) for i, c in sorted(contacts.items()) if i != contact_id],
        tickets=tickets,
        registrations=[
            {"event": r.event_key, "status": r.status, "since": aware(r.created_at), "contact_id": r.contact_id}
            for r in registrations
        ],
        conversations=conversations,
    )
