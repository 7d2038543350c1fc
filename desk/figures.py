"""Figures over time: per UTC day (and per queue) for a chosen period, the same on SQLite and PostgreSQL.

Counts are grouped in SQL by day; durations (first response, resolution) are fetched as the period's rows
and their median and p90 computed here in Python, so both stores give the same numbers to the second (no
engine's percentile function, which SQLite lacks and PostgreSQL interpolates its own way).

What each day counts (all times UTC):

- `messages_in`: customer messages written that day; per queue, those that belong to a ticket of the queue;
- `new_tickets`: tickets opened that day;
- `conversations`, `contained`, `containment`: conversations with a customer message that day, those none of
  whose messages that day belongs to a ticket (the bot handled them alone), and the share (all queues only);
- `first_response_*`: tickets whose first agent reply came that day, seconds from opening to it;
- `resolution_*`: tickets resolved that day, seconds from opening to resolution;
- `sla_breaches`: `ticket_events` rows with action `sla_breach` written that day;
- `csat_average`, `csat_count`: answers to the satisfaction question given that day.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal

from fastapi import Query
from sqlalchemy import case, func, select
from sqlalchemy.sql.elements import ColumnElement

from desk.validation import unprocessable
from frontdesk.core.vocabulary import Queue
from storage.db import Database
from storage.models import Author, CsatResponse, Message, MessageKind, Ticket, TicketEvent

MAX_DAYS = 366  # a period is at most a year (and a day): bounded work for any request
SLA_BREACH_ACTION = "sla_breach"
QUEUE_NAMES = tuple(q.value for q in Queue)


class PeriodError(ValueError):
    """The period asked for is not one we answer; the message says what to send instead."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @classmethod
    def checked(cls, start: date, end: date) -> Period:
        if start > end:
            raise PeriodError(f"`from` ({start}) is after `to` ({end}); send from ≤ to")
        if (end - start).days + 1 > MAX_DAYS:
            raise PeriodError(f"the period has {(end - start).days + 1} days; ask for at most {MAX_DAYS}")
        return cls(start, end)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=timezone.utc)

    @property
    def until(self) -> datetime:  # exclusive
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=timezone.utc)


@dataclass
class Figures:
    """One day's figures, for all queues or for one (`conversations`, `contained`: all queues only)."""

    messages_in: int = 0
    new_tickets: int = 0
    conversations: int | None = None
    contained: int | None = None
    first_response_median_s: float | None = None
    first_response_p90_s: float | None = None
    resolution_median_s: float | None = None
    resolution_p90_s: float | None = None
    sla_breaches: int = 0
    csat_average: float | None = None
    csat_count: int = 0

    @property
    def containment(self) -> float | None:
        if not self.conversations or self.contained is None:
            return None
        return self.contained / self.conversations

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["containment"] = self.containment
        return out


@dataclass
class Day:
    day: date
    figures: Figures
    by_queue: dict[str, Figures] = field(default_factory=dict)


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def p90(values: list[float]) -> float | None:
    """The 90th percentile by nearest rank: the smallest value at least 90% of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)])


async def daily(db: Database, period: Period, *, queue: str | None = None) -> list[Day]:
    """Every day of `period`, oldest first; with `queue`, the top figures are that queue's alone."""
    if queue is not None and queue not in QUEUE_NAMES:
        raise PeriodError(f"unknown queue {queue!r}; use one of {', '.join(QUEUE_NAMES)}")
    days = {d: Day(d, Figures(), {q: Figures() for q in QUEUE_NAMES}) for d in period.days}
    since, until = period.since, period.until
    async with db.session() as session:
        day_of = _day_sql(db.dialect)

        def grouped(column: Any) -> ColumnElement[Any]:
            return day_of(column).label("day")

        customer = (Message.author == Author.customer, Message.kind == MessageKind.message,
                    Message.created_at >= since, Message.created_at < until)
        for day, q, n in await _rows(session, select(grouped(Message.created_at), Ticket.queue, func.count())
                                     .select_from(Message).outerjoin(Ticket, Ticket.id == Message.ticket_id)
                                     .where(*customer).group_by("day", Ticket.queue)):
            _bump(days, day, q, "messages_in", n)
        for day, q, n in await _rows(session, select(grouped(Ticket.created_at), Ticket.queue, func.count())
                                     .where(Ticket.created_at >= since, Ticket.created_at < until)
                                     .group_by("day", Ticket.queue)):
            _bump(days, day, q, "new_tickets", n)
        escalated = func.count(func.distinct(case((Message.ticket_id.is_not(None), Message.conversation_id))))  # type: ignore[union-attr]
        for day, conversations, with_ticket in await _rows(
            session, select(grouped(Message.created_at), func.count(func.distinct(Message.conversation_id)), escalated)
            .where(*customer).group_by("day")
        ):
            entry = days.get(_as_date(day))
            if entry is not None:
                entry.figures.conversations = int(conversations)
                entry.figures.contained = int(conversations) - int(with_ticket)
        for day, q, n in await _rows(session, select(grouped(TicketEvent.created_at), Ticket.queue, func.count())
                                     .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                                     .where(TicketEvent.action == SLA_BREACH_ACTION, TicketEvent.created_at >= since,
                                            TicketEvent.created_at < until)
                                     .group_by("day", Ticket.queue)):
            _bump(days, day, q, "sla_breaches", n)
        csat: dict[tuple[date, str], tuple[int, int]] = {}
        for day, q, n, total in await _rows(
            session, select(grouped(CsatResponse.answered_at), Ticket.queue, func.count(), func.sum(CsatResponse.score))
            .join(Ticket, Ticket.id == CsatResponse.ticket_id)
            .where(CsatResponse.score.is_not(None), CsatResponse.answered_at >= since,  # type: ignore[union-attr]
                   CsatResponse.answered_at < until)
            .group_by("day", Ticket.queue)
        ):
            csat[(_as_date(day), _queue(q))] = (int(n), int(total))
        first = await _rows(session, select(Ticket.created_at, Ticket.first_response_at, Ticket.queue).where(
            Ticket.first_response_at >= since, Ticket.first_response_at < until))  # type: ignore[operator]
        resolved = await _rows(session, select(Ticket.created_at, Ticket.resolved_at, Ticket.queue).where(
            Ticket.resolved_at >= since, Ticket.resolved_at < until))  # type: ignore[operator]
    _durations(days, first, "first_response")
    _durations(days, resolved, "resolution")
    _csat(days, csat)
    out = [days[d] for d in period.days]
    if queue is not None:
        for entry in out:
            entry.figures = entry.by_queue[queue]
            entry.by_queue = {queue: entry.figures}
    return out


def _day_sql(dialect: str) -> Any:
    """The UTC day of a timestamp column as 'YYYY-MM-DD', spelled for the store."""
    if dialect == "postgresql":
        return lambda column: func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    # SQLite keeps these timestamps as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff' (the store writes UTC only).
    return lambda column: func.substr(column, 1, 10)


async def _rows(session: Any, statement: Any) -> list[Any]:
    return list((await session.execute(statement)).all())


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _queue(value: Any) -> str:
    return str(getattr(value, "value", value))


def _bump(days: dict[date, Day], day: Any, queue: Any, name: str, n: int) -> None:
    entry = days.get(_as_date(day))
    if entry is None:
        return
    setattr(entry.figures, name, getattr(entry.figures, name) + int(n))
    if queue is not None:
        per_queue = entry.by_queue[_queue(queue)]
        setattr(per_queue, name, getattr(per_queue, name) + int(n))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC


def _durations(days: dict[date, Day], rows: Iterable[Any], name: str) -> None:
    samples: dict[date, list[float]] = defaultdict(list)
    per_queue: dict[tuple[date, str], list[float]] = defaultdict(list)
    for created, at, queue in rows:
        day = _aware(at).date()
        seconds = max(0.0, (_aware(at) - _aware(created)).total_seconds())
        samples[day].append(seconds)
        per_queue[(day, _queue(queue))].append(seconds)
    for day, values in samples.items():
        if day in days:
            _set_durations(days[day].figures, name, values)
    for (day, queue), values in per_queue.items():
        if day in days:
            _set_durations(days[day].by_queue[queue], name, values)


def _set_durations(figures: Figures, name: str, values: list[float]) -> None:
    setattr(figures, f"{name}_median_s", median(values))
    setattr(figures, f"{name}_p90_s", p90(values))


def _csat(days: dict[date, Day], csat: dict[tuple[date, str], tuple[int, int]]) -> None:
    totals: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for (day, queue), (n, total) in csat.items():
        if day not in days:
            continue
        days[day].by_queue[queue].csat_count = n
        days[day].by_queue[queue].csat_average = total / n
        totals[day][0] += n
        totals[day][1] += total
    for day, (n, total) in totals.items():
        days[day].figures.csat_count = n
        days[day].figures.csat_average = total / n if n else None


CSV_COLUMNS = (
    "date", "queue", "messages_in", "new_tickets", "conversations", "contained", "containment",
    "first_response_median_s", "first_response_p90_s", "resolution_median_s", "resolution_p90_s",
    "sla_breaches", "csat_average", "csat_count",
)
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (a formula) gets a leading '."""
    text = "" if value is None else f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return f"'{text}" if text.startswith(_FORMULA_LEAD) else text


def csv_rows(days: list[Day], *, queue: str | None = None) -> list[list[str]]:
    """The header, then per day one row for all queues (`queue` "all") and one per queue."""
    rows = [list(CSV_COLUMNS)]
    for entry in days:
        scopes = [(queue, entry.figures)] if queue is not None else [("all", entry.figures), *entry.by_queue.items()]
        for name, figures in scopes:
            values = figures.as_dict()
            rows.append([csv_cell(entry.day.isoformat()), csv_cell(name),
                         *(csv_cell(values[c]) for c in CSV_COLUMNS[2:])])
    return rows


# --- the request's period: shared by /api/stats, /api/stats.csv and the figures page ---------------------


@dataclass(frozen=True)
class PeriodQuery:
    period: Period | None  # None: no `from`/`to` given
    queue: str | None


def period_query(
    from_: Annotated[date | None, Query(alias="from", description="first UTC day, YYYY-MM-DD")] = None,
    to: Annotated[date | None, Query(description="last UTC day (included), YYYY-MM-DD")] = None,
    by: Annotated[Literal["day"], Query(description="the step; only `day` so far")] = "day",
    queue: Annotated[str | None, Query(max_length=16, description="support, sales, events or general")] = None,
) -> PeriodQuery:
    """`from`/`to` both or neither, from ≤ to, at most MAX_DAYS days, a known queue: else 422."""
    if (from_ is None) != (to is None):
        missing = "to" if to is None else "from"
        raise unprocessable(["query", missing], "send both `from` and `to` (YYYY-MM-DD), or neither")
    if queue is not None and queue not in QUEUE_NAMES:
        raise unprocessable(["query", "queue"], f"unknown queue; use one of {', '.join(QUEUE_NAMES)}")
    if from_ is None or to is None:
        return PeriodQuery(None, queue)
    try:
        return PeriodQuery(Period.checked(from_, to), queue)
    except PeriodError as exc:
        raise unprocessable(["query", "to"], str(exc)) from None
