"""Agents' ticket actions with their metrics: `storage.actions` plus the counters the issue asks for.

The desk and the Telegram pager call these instead of `storage.actions.claim/agent_reply/hand_back/
resolve`, so tickets claimed/resolved and first-response time are counted wherever an agent acts, while
the store stays free of any metrics dependency.
"""

from __future__ import annotations

from frontdesk import metrics
from storage import actions
from storage.db import Database
from storage.models import Message, Ticket


def _queue(ticket: Ticket) -> str:
    return str(getattr(ticket.queue, "value", ticket.queue))


async def claim(db: Database, ticket_id: int, agent_id: int) -> Ticket:
    ticket = await actions.claim(db, ticket_id, agent_id)
    metrics.ticket_claimed(_queue(ticket))
    return ticket


async def agent_reply(db: Database, ticket_id: int, agent_id: int, text: str) -> Message:
    async with db.session() as session:
        before = await session.get(Ticket, ticket_id)
        first = before is not None and before.first_response_at is None
    message = await actions.agent_reply(db, ticket_id, agent_id, text)
    if first:
        async with db.session() as session:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is not None and ticket.first_response_at is not None:
                waited = (ticket.first_response_at - ticket.created_at).total_seconds()
                metrics.first_response(_queue(ticket), waited)
    return message


async def hand_back(db: Database, ticket_id: int, agent_id: int) -> Ticket:
    ticket = await actions.hand_back(db, ticket_id, agent_id)
    metrics.ticket_resolved(_queue(ticket), "handed_back")
    return ticket


async def resolve(db: Database, ticket_id: int, agent_id: int | None) -> Ticket:
    ticket = await actions.resolve(db, ticket_id, agent_id)
    metrics.ticket_resolved(_queue(ticket), "resolved")
    return ticket
