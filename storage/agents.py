"""Agents: accounts, passwords (argon2) and the Telegram link."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.errors import NotFound, StoreError
from storage.models import Agent, AgentRole, utcnow

_hasher = PasswordHasher()
MIN_PASSWORD_CHARS = 8


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Swap the argon2 parameters (tests use cheap ones); returns the previous hasher to restore.

    Hashes made with other parameters still verify: argon2 stores its parameters in each hash.
    """
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


class AgentExists(StoreError):
    pass


def _validate_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email:
        raise StoreError(f"{email!r} is not an e-mail address")
    return email


async def create_agent(
    db: Database, *, email: str, name: str, password: str, role: AgentRole | str = AgentRole.agent
) -> Agent:
    email = _validate_email(email)
    if len(password) < MIN_PASSWORD_CHARS:
        raise StoreError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if not name.strip():
        raise StoreError("the agent needs a name")
    agent = Agent(
        email=email, name=name.strip(), password_hash=_hasher.hash(password), role=AgentRole(role), created_at=utcnow()
    )
    try:
        async with db.transaction() as session:
            session.add(agent)
    except IntegrityError:
        raise AgentExists(f"an agent with e-mail {email} already exists") from None
    return agent


async def authenticate(db: Database, email: str, password: str) -> Agent | None:
    """The active agent with these credentials, or None (the same answer for every kind of failure)."""
    async with db.session() as session:
        agent = (
            await session.execute(select(Agent).where(Agent.email == email.strip().lower()))
        ).scalar_one_or_none()
    if agent is None:
        _hasher.hash(password)  # spend the same time as a real check, so e-mails cannot be probed
        return None
    try:
        _hasher.verify(agent.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return agent if agent.active else None


async def list_agents(db: Database) -> list[Agent]:
    async with db.session() as session:
        return list((await session.execute(select(Agent).order_by(Agent.id))).scalars().all())


async def get_agent_by_email(db: Database, email: str) -> Agent:
    async with db.session() as session:
        agent = (await session.execute(select(Agent).where(Agent.email == email.strip().lower()))).scalar_one_or_none()
    if agent is None:
        raise NotFound("Agent", email)
    return agent


async def set_active(db: Database, email: str, active: bool) -> Agent:
    async with db.transaction() as session:
        agent = (await session.execute(select(Agent).where(Agent.email == email.strip().lower()))).scalar_one_or_none()
        if agent is None:
            raise NotFound("Agent", email)
        agent.active = active
        return agent


async def link_telegram(db: Database, email: str, telegram_user_id: int | None) -> Agent:
    try:
        async with db.transaction() as session:
            agent = (
                await session.execute(select(Agent).where(Agent.email == email.strip().lower()))
            ).scalar_one_or_none()
            if agent is None:
                raise NotFound("Agent", email)
            agent.telegram_user_id = telegram_user_id
            return agent
    except IntegrityError:
        raise AgentExists(f"Telegram user {telegram_user_id} is already linked to another agent") from None


async def agent_for_telegram_user(db: Database, telegram_user_id: int) -> Agent | None:
    async with db.session() as session:
        return (
            await session.execute(
                select(Agent).where(Agent.telegram_user_id == telegram_user_id, Agent.active.is_(True))  # type: ignore[attr-defined]
            )
        ).scalar_one_or_none()
