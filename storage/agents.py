"""Agents: accounts, passwords (argon2) and the Telegram link.

argon2 is slow on purpose (~0.1 s and 64 MiB per check): it runs in a small thread pool, never on the
event loop, so sign-ins cannot stall every other request, and at most `HASH_THREADS` hashes hold memory
at once however many sign-ins arrive. Disabling an agent or changing their password ends all their
sign-ins (storage/agent_sessions.py) in the same transaction.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import agent_sessions
from storage.db import Database
from storage.errors import NotFound, StoreError
from storage.models import Agent, AgentRole, utcnow

_hasher = PasswordHasher()
MIN_PASSWORD_CHARS = 8
# Each argon2 check already runs its 4 lanes on threads of its own: half the cores' worth of checks at a
# time keeps the machine (and the event loop's thread) from drowning in hashing.
HASH_THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
_hash_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
_T = TypeVar("_T")


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Swap the argon2 parameters (tests use cheap ones); returns the previous hasher to restore.

    Hashes made with other parameters still verify: argon2 stores its parameters in each hash.
    """
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


class AgentExists(StoreError):
    pass


@dataclass(frozen=True)
class AccountChange:
    """An agent after a change to their account, and how many of their live sign-ins it ended."""

    agent: Agent
    sessions_ended: int


async def _off_loop(work: Callable[..., _T], *args: object) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, functools.partial(work, *args))


def _password_bytes(password: str) -> bytes:
    # surrogatepass: a password no UTF-8 can spell (a lone surrogate) simply never matches, never raises.
    return password.encode("utf-8", "surrogatepass")


async def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise StoreError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    return await _off_loop(_hasher.hash, _password_bytes(password))


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, _password_bytes(password))
    except (VerificationError, InvalidHashError):
        return False


def _storable(email: str) -> bool:
    """Whether the store can even look this e-mail up (PostgreSQL refuses NUL and lone surrogates)."""
    try:
        email.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in email


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
    if not name.strip():
        raise StoreError("the agent needs a name")
    password_hash = await _hash_password(password)
    agent = Agent(
        email=email, name=name.strip(), password_hash=password_hash, role=AgentRole(role), created_at=utcnow()
    )
    try:
        async with db.transaction() as session:
            session.add(agent)
    except IntegrityError:
        raise AgentExists(f"an agent with e-mail {email} already exists") from None
    return agent


async def authenticate(db: Database, email: str, password: str) -> Agent | None:
    """The active agent with these credentials, or None (the same answer for every kind of failure).

    Callers facing the network throttle attempts first (storage/login_throttle.py).
    """
    agent = None
    if _storable(email):
        async with db.session() as session:
            agent = (
                await session.execute(select(Agent).where(Agent.email == email.strip().lower()))
            ).scalar_one_or_none()
    if agent is None:
        # Spend the same time as a real check, so e-mails cannot be probed.
        await _off_loop(_hasher.hash, _password_bytes(password))
        return None
    if not await _off_loop(_matches, agent.password_hash, password):
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


async def _agent_for_update(session: AsyncSession, email: str) -> Agent:
    by_email = select(Agent).where(Agent.email == email.strip().lower())
    agent = (await session.execute(by_email)).scalar_one_or_none()
    if agent is None:
        raise NotFound("Agent", email)
    return agent


async def set_active(db: Database, email: str, active: bool) -> AccountChange:
    """Enable or disable an agent; disabling ends all their sign-ins, so re-enabling revives none."""
    async with db.transaction() as session:
        agent = await _agent_for_update(session, email)
        agent.active = active
        assert agent.id is not None
        ended = 0 if active else await agent_sessions.revoke_all_in(session, agent.id)
        return AccountChange(agent, ended)


async def set_password(db: Database, email: str, password: str) -> AccountChange:
    """A new password for the agent; every sign-in made with the old one ends with it."""
    password_hash = await _hash_password(password)
    async with db.transaction() as session:
        agent = await _agent_for_update(session, email)
        agent.password_hash = password_hash
        assert agent.id is not None
        return AccountChange(agent, await agent_sessions.revoke_all_in(session, agent.id))


async def end_sessions(db: Database, email: str) -> AccountChange:
    """Sign an agent out everywhere (a lost laptop) without disabling the account."""
    async with db.transaction() as session:
        agent = await _agent_for_update(session, email)
        assert agent.id is not None
        return AccountChange(agent, await agent_sessions.revoke_all_in(session, agent.id))


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
