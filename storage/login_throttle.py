"""Login throttling per account and per client address, kept in the store so every desk process shares it.

An account (or address) with `limit` failures inside the window is locked until the oldest of those
failures leaves the window; while locked, no password is even checked, right or wrong. An attempt is
recorded as failed *before* its password is checked (and cleared by a success), so a burst of concurrent
guesses cannot all slip in under the limit while the slow hashes run. A success clears its account's
failures; an address's failures only age out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.errors import StoreError
from storage.models import LoginFailure, utcnow

ADDRESS_CHARS = 64


@dataclass(frozen=True)
class ThrottlePolicy:
    per_account: int  # failures per account inside the window before it locks
    per_address: int  # failures from one client address (any accounts) before it locks
    window_s: int


class LoginThrottled(StoreError):
    """Too many failed sign-ins for this account or from this address; `retry_after_s` until one more try."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed sign-ins for this account or from this address: try again in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


def account_key(email: str) -> str:
    """What the throttle stores for an e-mail: its SHA-256, so failed sign-ins keep no personal data."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


def address_key(address: str | None) -> str | None:
    """IPv6 clients count per /64 (one subscriber's whole range); IPv4 and anything else as given."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:ADDRESS_CHARS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


async def begin_attempt(db: Database, email: str, address: str | None, policy: ThrottlePolicy) -> int:
    """Refuse (LoginThrottled) a locked account or address; otherwise record this attempt as a failure.

    Returns the recorded row's id. Call `succeeded` when the password turns out right.
    """
    now = utcnow()
    window = timedelta(seconds=policy.window_s)
    account, where_from = account_key(email), address_key(address)
    async with db.transaction() as session:
        await _one_at_a_time(session, [account] + ([where_from] if where_from else []))
        waits = [await _locked_for(session, LoginFailure.account == account, policy.per_account, now, window)]
        if where_from is not None:
            by_address = LoginFailure.address == where_from
            waits.append(await _locked_for(session, by_address, policy.per_address, now, window))
        longest = max((w for w in waits if w is not None), default=None)
        if longest is not None:
            raise LoginThrottled(longest)
        row = LoginFailure(account=account, address=where_from, failed_at=now)
        session.add(row)
        await session.flush()
        # Rows older than the window count for nothing: drop them as we go.
        stale = LoginFailure.failed_at < now - window
        await session.execute(delete(LoginFailure).where(stale))  # type: ignore[arg-type]
        assert row.id is not None
        return row.id


async def succeeded(db: Database, email: str) -> None:
    """The password was right: this account's failures (this attempt's included) no longer count."""
    async with db.transaction() as session:
        this_account = LoginFailure.account == account_key(email)
        await session.execute(delete(LoginFailure).where(this_account))  # type: ignore[arg-type]


async def _locked_for(
    session: AsyncSession, which: ColumnElement[bool], limit: int, now: datetime, window: timedelta
) -> int | None:
    """Seconds until fewer than `limit` failures remain in the window, or None if that is already so."""
    oldest_counted = (
        await session.execute(
            select(LoginFailure.failed_at)
            .where(which, LoginFailure.failed_at > now - window)  # type: ignore[arg-type]
            .order_by(LoginFailure.failed_at.desc())  # type: ignore[attr-defined]
            .offset(max(limit, 1) - 1)
            .limit(1)
        )
    ).scalar_one_or_none()
    if oldest_counted is None:
        return None
    if oldest_counted.tzinfo is None:  # SQLite hands timestamps back without their zone; they are UTC
        oldest_counted = oldest_counted.replace(tzinfo=UTC)
    return max(1, math.ceil((oldest_counted + window - now).total_seconds()))


async def _one_at_a_time(session: AsyncSession, keys: list[str]) -> None:
    """Serialise attempts on the same account or address, so two cannot both pass a limit of one left.

    SQLite's BEGIN IMMEDIATE already runs writers one at a time; PostgreSQL takes transaction-scoped
    advisory locks (in a fixed order, so two attempts never wait for each other).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        digest = hashlib.sha256(f"frontdesk.login:{key}".encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
