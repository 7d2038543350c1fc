"""What Frontdesk asked of X, per UTC day, and what that costs under X's pay-per-use price table.

Every process counts its own X traffic (``bot/channels/x/usage.py``) and adds it here every few seconds;
the counts are plain sums per (day, item), so any number of workers and restarts add up to one figure.
Like the channel cursors this is bookkeeping about the platform, not a conversation's state: it has no
audit event and no outbound message, so it is not one of ``storage/actions/``.

The price table is data the brand can edit (``content/x_prices.yml``), dated, because X changes prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from storage.actions._common import dialect_name
from storage.db import Database
from storage.models import XUsageDay, utcnow

# The items X bills (x-limits-and-prices.md): reads per resource returned, writes per request.
POSTS_READ = "posts_read"  # posts returned by an app-auth (bearer) read, or by a read of others' data
POSTS_READ_OWN = "posts_read_own"  # posts returned by a user-auth read of the brand's own mentions/timeline
USERS_READ = "users_read"
# Listening (recent search, docs/listening.md): billed as posts_read / users_read, counted apart so the desk's
# Figures card and /metrics show what listening costs.
POSTS_READ_LISTENING = "posts_read_listening"
USERS_READ_LISTENING = "users_read_listening"
_PRICED_AS = {POSTS_READ_LISTENING: POSTS_READ, USERS_READ_LISTENING: USERS_READ}
DM_EVENTS_READ = "dm_events_read"
POSTS_CREATED = "posts_created"
POSTS_CREATED_URL = "posts_created_url"
POSTS_CREATED_SUMMONED = "posts_created_summoned"
DMS_CREATED = "dms_created"
ITEMS: tuple[str, ...] = (
    POSTS_READ,
    POSTS_READ_OWN,
    USERS_READ,
    POSTS_READ_LISTENING,
    USERS_READ_LISTENING,
    DM_EVENTS_READ,
    POSTS_CREATED,
    POSTS_CREATED_URL,
    POSTS_CREATED_SUMMONED,
    DMS_CREATED,
)
PRICES_FILE = "x_prices.yml"
OWNED_READ = "owned_read"
# The prices the table must give: one per item, except posts_read_own, which is priced as owned_read when
# the brand's account owns the developer app and as posts_read otherwise.
PRICE_KEYS: tuple[str, ...] = (*(i for i in ITEMS if i != POSTS_READ_OWN and i not in _PRICED_AS), OWNED_READ)
PROJECTION_DAYS = 30
WINDOW_DAYS = 7


class PriceTableError(ValueError):
    """The price table file is missing a price or holds something that is not one."""


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, float]  # USD per item; plus "owned_read"
    read_on: str  # the date the prices were read off X's pricing page
    source: str
    brand_owns_app: bool = False  # the brand's X account owns the developer app: own reads at owned_read

    def unit_price(self, item: str) -> float:
        if item == POSTS_READ_OWN:
            return self.prices[OWNED_READ] if self.brand_owns_app else self.prices[POSTS_READ]
        return self.prices.get(_PRICED_AS.get(item, item), 0.0)

    def cost(self, counts: Mapping[str, int]) -> float:
        return sum(self.unit_price(item) * n for item, n in counts.items())


def load_prices(content_dir: Path) -> PriceTable:
    """Read ``x_prices.yml`` from `content_dir`; raise PriceTableError naming the file and the fix."""
    path = content_dir / PRICES_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriceTableError(
            f"{path}: not found; copy content/{PRICES_FILE} from Frontdesk or set FRONTDESK_CONTENT_DIR"
        ) from None
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise PriceTableError(f"{path}: needs a `prices:` mapping of item to USD price")
    prices: dict[str, float] = {}
    for key in PRICE_KEYS:
        value = data["prices"].get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PriceTableError(f"{path}: prices.{key} must be a price in USD (a number >= 0), got {value!r}")
        prices[key] = float(value)
    return PriceTable(
        prices=prices,
        read_on=str(data.get("read_on") or "unknown"),
        source=str(data.get("source") or ""),
        brand_owns_app=bool(data.get("brand_owns_app", False)),
    )


def utc_day(moment: datetime | None = None) -> str:
    return (moment or utcnow()).astimezone(timezone.utc).date().isoformat()


async def add_usage(db: Database, deltas: Mapping[tuple[str, str], int]) -> None:
    """Add `deltas` ({(day, item): n}) to the stored counts, in one transaction (an upsert per key)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    rows = [(day, item, n) for (day, item), n in sorted(deltas.items()) if n]
    if not rows:
        return
    now = utcnow()
    async with db.transaction() as session:
        insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        table = XUsageDay.__table__
        for day, item, n in rows:
            stmt = insert(table).values(day=day, item=item, count=n, updated_at=now)
            stmt = stmt.on_conflict_do_update(
                index_elements=["day", "item"],
                set_={"count": table.c.count + stmt.excluded.count, "updated_at": stmt.excluded.updated_at},
            )
            await session.execute(stmt)


async def usage_by_day(db: Database, *, since_day: str) -> dict[str, dict[str, int]]:
    """{day: {item: count}} for every day from `since_day` (YYYY-MM-DD, inclusive)."""
    out: dict[str, dict[str, int]] = {}
    async with db.session() as session:
        result = await session.execute(
            select(XUsageDay.day, XUsageDay.item, XUsageDay.count).where(XUsageDay.day >= since_day)
        )
        for day, item, n in result.all():
            out.setdefault(day, {})[item] = int(n)
    return out


@dataclass(frozen=True)
class CostEstimate:
    """The desk's figures: today, the last 7 days, and 30 days at the last 7 days' daily rate."""

    prices: PriceTable
    today: dict[str, int] = field(default_factory=dict)
    last_7_days: dict[str, int] = field(default_factory=dict)
    days_observed: int = 0  # of the last 7, how many Frontdesk has counted (fewer on a new install)
    today_usd: float = 0.0
    last_7_days_usd: float = 0.0
    projected_30_days_usd: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per item with a count: item, unit price, today's and the week's counts and cost."""
        items = [i for i in ITEMS if self.today.get(i) or self.last_7_days.get(i)]
        return [
            {
                "item": item,
                "unit_usd": self.prices.unit_price(item),
                "today": self.today.get(item, 0),
                "last_7_days": self.last_7_days.get(item, 0),
                "last_7_days_usd": self.prices.unit_price(item) * self.last_7_days.get(item, 0),
            }
            for item in items
        ]


async def estimate_cost(db: Database, prices: PriceTable, *, now: datetime | None = None) -> CostEstimate:
    today = (now or utcnow()).astimezone(timezone.utc).date()
    first = today - timedelta(days=WINDOW_DAYS - 1)
    by_day = await usage_by_day(db, since_day=first.isoformat())
    week: dict[str, int] = {}
    for counts in by_day.values():
        for item, n in counts.items():
            week[item] = week.get(item, 0) + n
    today_counts = by_day.get(today.isoformat(), {})
    earliest = min((date.fromisoformat(d) for d in by_day), default=today)
    days_observed = (today - earliest).days + 1
    week_usd = prices.cost(week)
    return CostEstimate(
        prices=prices,
        today=today_counts,
        last_7_days=week,
        days_observed=days_observed,
        today_usd=prices.cost(today_counts),
        last_7_days_usd=week_usd,
        projected_30_days_usd=week_usd / days_observed * PROJECTION_DAYS,
    )
