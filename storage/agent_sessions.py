"""Agents' sign-ins, kept server-side so they can be ended: desk cookies and API bearer tokens.

A sign-in is named by a random secret that only its holder has (inside the session cookie, or inside the
bearer token); the store keeps the secret's SHA-256, so a copy of the database opens no desk. A sign-in
counts while it is unrevoked, unexpired and its agent is active. Each function is one transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import Agent, AgentSession, SessionKind, utcnow

SECRET_BYTES = 32
# Rows are kept a while after they expire or are revoked (what happened stays visible), then purged.
KEEP_ENDED_FOR = timedelta(days=7)
ADDRESS_CHARS = 64


@dataclass(frozen=True)
class SignedIn:
    """Who holds a sign-in, and until when it lasts."""

    agent: Agent
    session_id: int
    expires_at: datetime


def _hash(secret: str) -> str:
    # surrogatepass: whatever a client sends must hash (and then simply not match), never raise.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def create(
    db: Database, agent_id: int, kind: SessionKind, *, ttl_s: int, address: str | None = None
) -> str:
    """Start a sign-in for `agent_id`; returns its secret (the only copy: hand it to the client)."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    now = utcnow()
    async with db.transaction() as session:
        session.add(AgentSession(
            secret_hash=_hash(secret), agent_id=agent_id, kind=kind, created_at=now,
            expires_at=now + timedelta(seconds=ttl_s), address=(address or None) and address[:ADDRESS_CHARS],
        ))
        # Each script run may ask for a token: purge long-ended rows here, so the table stays small.
        await session.execute(delete(AgentSession).where(AgentSession.expires_at < now - KEEP_ENDED_FOR))
    return secret


async def find(db: Database, secret: str, kind: SessionKind) -> SignedIn | None:
    """The live sign-in this secret names: unrevoked, unexpired, of this kind, of an active agent."""
    now = utcnow()
    query = (
        select(Agent, AgentSession.id, AgentSession.expires_at)
        .join(AgentSession, AgentSession.agent_id == Agent.id)  # type: ignore[arg-type]
        .where(
            AgentSession.secret_hash == _hash(secret),
            AgentSession.kind == kind,
            AgentSession.revoked_at.is_(None),  # type: ignore[union-attr]
            AgentSession.expires_at > now,
            Agent.active.is_(True),  # type: ignore[attr-defined]
        )
    )
    async with db.session() as session:
        row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    agent, session_id, expires_at = row
    return SignedIn(agent=agent, session_id=session_id, expires_at=_aware(expires_at))


async def extend(db: Database, session_id: int, *, ttl_s: int) -> None:
    """Push a live sign-in's expiry to `ttl_s` from now (a desk session renewed while it is used)."""
    async with db.transaction() as session:
        await session.execute(
            update(AgentSession)
            .where(AgentSession.id == session_id)  # type: ignore[arg-type]
            .where(AgentSession.revoked_at.is_(None))  # type: ignore[union-attr]
            .values(expires_at=utcnow() + timedelta(seconds=ttl_s))
        )


async def revoke(db: Database, secret: str) -> bool:
    """End the sign-in this secret names; False if it was not live (unknown, already ended)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(AgentSession)
            .where(AgentSession.secret_hash == _hash(secret))
            .where(AgentSession.revoked_at.is_(None))  # type: ignore[union-attr]
            .values(revoked_at=utcnow())
        )
    return result.rowcount > 0  # type: ignore[attr-defined]


async def revoke_all(db: Database, agent_id: int) -> int:
    """End every live sign-in of this agent (cookies and tokens); how many there were."""
    async with db.transaction() as session:
        return await revoke_all_in(session, agent_id)


async def revoke_all_in(session: AsyncSession, agent_id: int) -> int:
    """`revoke_all` inside the caller's transaction (disabling an agent, changing a password)."""
    now = utcnow()
    result = await session.execute(
        update(AgentSession)
        .where(
            AgentSession.agent_id == agent_id,  # type: ignore[arg-type]
            AgentSession.revoked_at.is_(None),  # type: ignore[union-attr]
            AgentSession.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]

