"""Figures over time (`/api/stats?from=&to=&by=day`, `/api/stats.csv`, the figures page), SQLite and PostgreSQL.

The rows are real: written by the store's actions, then moved to fixed UTC days, so that every figure of
every day is known in advance and both stores must give the same numbers.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from bot.content import csat_policy
from desk import figures
from frontdesk.core.settings import Settings
from storage import actions
from storage.db import Database
from storage.models import CsatResponse, Message, Ticket, TicketEvent
from tests.fixtures.desk import api_login, inbound

PERIOD = "from=2026-11-01&to=2026-11-03&by=day"


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc)


async def _ticket(db: Database, agent_id: int, sender: str, queue: str, opened: datetime,
                  first_response: datetime | None = None, resolved: datetime | None = None,
                  score: tuple[int, datetime] | None = None) -> int:
    recorded = await actions.record_inbound(db, inbound("my order never arrived", sender=sender, handle=f"c{sender}"))
    ticket = await actions.escalate(db, recorded.conversation_id, queue=queue, category="support", subject="late")
    assert ticket.id is not None
    await actions.claim(db, ticket.id, agent_id)
    if first_response is not None:
        await actions.agent_reply(db, ticket.id, agent_id, "On it")
    if resolved is not None:
        await actions.resolve(db, ticket.id, agent_id, csat=csat_policy(Settings(_env_file=None)))  # type: ignore[call-arg]
    async with db.transaction() as session:
        await session.execute(update(Message).where(Message.conversation_id == recorded.conversation_id)
                              .values(created_at=opened))
        await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(
            created_at=opened, first_response_at=first_response, resolved_at=resolved))
        if score is not None:
            await session.execute(update(CsatResponse).where(CsatResponse.ticket_id == ticket.id).values(
                score=score[0], answered_at=score[1], comment="=HYPERLINK(\"http://evil\")"))
    return ticket.id


async def _bot_only_conversation(db: Database, sender: str, at: datetime) -> None:
    recorded = await actions.record_inbound(db, inbound("hello", sender=sender, handle=f"c{sender}"))
    async with db.transaction() as session:
        await session.execute(update(Message).where(Message.id == recorded.message_id).values(created_at=at))


async def _breach(db: Database, ticket_id: int, at: datetime) -> None:
    """The SLA helper's contract: a `ticket_events` row with action `sla_breach`."""
    async with db.transaction() as session:
        session.add(TicketEvent(ticket_id=ticket_id, actor="system", action="sla_breach", detail={}, created_at=at))


@pytest.fixture
async def three_days(db: Database, make_agent):  # type: ignore[no-untyped-def]
    """1 Nov: two support tickets and one bot-only conversation; 2 Nov: a sales ticket; 3 Nov: nothing."""
    agent = await make_agent("ann@example.com", "Ann")
    a = await _ticket(db, agent.id, "7001", "support", _at(1, 8), _at(1, 8, 10), _at(1, 9), score=(4, _at(2, 9)))
    await _ticket(db, agent.id, "7002", "support", _at(1, 10), _at(1, 10, 30), _at(2, 10), score=(2, _at(2, 11)))
    d = await _ticket(db, agent.id, "7003", "sales", _at(2, 12), _at(2, 12, 1))
    await _bot_only_conversation(db, "7004", _at(1, 15))
    await _breach(db, a, _at(1, 9, 30))
    await _breach(db, d, _at(2, 13))
    await _ticket(db, agent.id, "7005", "general", _at(4, 1))  # outside the period: counted nowhere
    return agent


async def test_every_day_of_the_period_with_its_figures(desk_client, three_days) -> None:
    headers = await api_login(desk_client, "ann@example.com")
    body = (await desk_client.get(f"/api/stats?{PERIOD}", headers=headers)).json()
    assert "open_by_queue" in body and "median_first_response_s" in body  # the old figures stay
    first, second, third = body["days"]
    assert [first["date"], second["date"], third["date"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]

    assert (first["messages_in"], first["new_tickets"]) == (3, 2)
    assert (first["conversations"], first["contained"], first["containment"]) == (3, 1, pytest.approx(1 / 3))
    assert (first["first_response_median_s"], first["first_response_p90_s"]) == (1200.0, 1800.0)
    assert (first["resolution_median_s"], first["resolution_p90_s"]) == (3600.0, 3600.0)
    assert first["sla_breaches"] == 1 and first["csat_count"] == 0 and first["csat_average"] is None

    assert (second["messages_in"], second["new_tickets"], second["contained"]) == (1, 1, 0)
    assert second["first_response_median_s"] == 60.0 and second["resolution_median_s"] == 86400.0
    assert second["sla_breaches"] == 1 and (second["csat_count"], second["csat_average"]) == (2, 3.0)
    assert second["by_queue"]["sales"]["new_tickets"] == 1 and second["by_queue"]["sales"]["csat_count"] == 0
    assert second["by_queue"]["support"]["resolution_median_s"] == 86400.0
    assert second["by_queue"]["support"]["csat_average"] == 3.0

    assert third["messages_in"] == 0 and third["first_response_median_s"] is None and third["containment"] is None
    assert set(first["by_queue"]) == {"support", "sales", "events", "general"}


async def test_one_queue_alone(desk_client, three_days) -> None:
    headers = await api_login(desk_client, "ann@example.com")
    days = (await desk_client.get(f"/api/stats?{PERIOD}&queue=sales", headers=headers)).json()["days"]
    assert [d["new_tickets"] for d in days] == [0, 1, 0]
    assert [d["sla_breaches"] for d in days] == [0, 1, 0]
    assert days[1]["conversations"] is None  # containment has no queue: a contained conversation has no ticket
    assert set(days[1]["by_queue"]) == {"sales"}


async def test_without_a_period_there_are_no_days_and_csat_is_summed(desk_client, db, three_days) -> None:
    headers = await api_login(desk_client, "ann@example.com")
    body = (await desk_client.get("/api/stats", headers=headers)).json()
    assert body["days"] is None
    # The questions were asked now (resolve time), within the default 30 days: 2 answered of 2 asked.
    assert (body["csat_asked"], body["csat_count"], body["csat_average"], body["csat_response_rate"]) == (2, 2, 3.0, 1.0)


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("from=2026-11-01", "to"),
        ("to=2026-11-01", "from"),
        ("from=2026-11-03&to=2026-11-01", "to"),
        ("from=2025-01-01&to=2026-01-02", "to"),  # 367 days
        ("from=2026-02-30&to=2026-03-01", "from"),
        ("from=yesterday&to=2026-03-01", "from"),
        ("from=2026-11-01&to=2026-11-03&by=week", "by"),
        ("from=2026-11-01&to=2026-11-03&queue=billing", "queue"),
    ],
)
async def test_a_bad_period_is_a_422_naming_the_parameter(desk_client, make_agent, query, loc) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    for path in ("/api/stats", "/api/stats.csv"):
        response = await desk_client.get(f"{path}?{query}", headers=headers)
        assert response.status_code == 422, (path, query)
        assert response.json()["detail"][0]["loc"] == ["query", loc]


async def test_a_year_and_a_day_is_the_longest_period(desk_client, make_agent) -> None:
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    body = (await desk_client.get("/api/stats?from=2025-01-01&to=2026-01-01", headers=headers)).json()
    assert len(body["days"]) == 366


async def test_csv_has_a_row_per_day_and_queue_and_no_formula(desk_client, three_days) -> None:
    headers = await api_login(desk_client, "ann@example.com")
    response = await desk_client.get(f"/api/stats.csv?{PERIOD}", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="figures-2026-11-01-2026-11-03.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3 * 5  # all queues + four queues, each day
    all_first = next(r for r in rows if r["date"] == "2026-11-01" and r["queue"] == "all")
    assert (all_first["messages_in"], all_first["first_response_median_s"], all_first["containment"]) == ("3", "1200", "0.333")
    sales = next(r for r in rows if r["date"] == "2026-11-02" and r["queue"] == "sales")
    assert sales["new_tickets"] == "1" and sales["csat_average"] == ""
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    one_queue = await desk_client.get(f"/api/stats.csv?{PERIOD}&queue=support", headers=headers)
    assert len(list(csv.DictReader(io.StringIO(one_queue.text)))) == 3


async def test_csv_needs_a_period_and_a_token(desk_client, make_agent) -> None:
    assert (await desk_client.get(f"/api/stats.csv?{PERIOD}")).status_code == 401
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    response = await desk_client.get("/api/stats.csv", headers=headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "from"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    assert [figures.csv_cell(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "\t=x", "support", None, 0.5, 3)] == [
        "'=1+1", "'+1", "'-2", "'@SUM(A1)", "'\t=x", "support", "", "0.5", "3",
    ]


def test_percentiles_are_computed_the_same_way_for_both_stores() -> None:
    assert figures.p90([float(n) for n in range(1, 11)]) == 9.0  # nearest rank
    assert figures.p90([5.0]) == 5.0 and figures.p90([]) is None
    assert figures.median([1.0, 2.0, 3.0, 10.0]) == 2.5


async def test_the_page_draws_the_chosen_period(desk_client, three_days) -> None:
    from tests.test_desk_pages import _sign_in

    await _sign_in(desk_client, "ann@example.com")
    page = await desk_client.get("/stats?from=2026-11-01&to=2026-11-03&queue=support")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 6 and "2026-11-01 to 2026-11-03" in page.text
    assert 'value="support" selected' in page.text
    tabs = page.text.split('id="queue-tabs"', 1)[1].split("</nav>", 1)[0]
    assert 'aria-current="page"' not in tabs  # the chosen queue is not the Support tab
    assert "style=" not in page.text.split('<div class="charts">', 1)[1]  # the CSP allows no inline style
    assert 'href="/stats.csv?from=2026-11-01&amp;to=2026-11-03&amp;by=day&amp;queue=support"' in page.text
    download = await desk_client.get("/stats.csv?from=2026-11-01&to=2026-11-03&by=day")
    assert download.status_code == 200 and download.text.startswith("date,queue,messages_in")

    bad = await desk_client.get("/stats?from=2026-11-05&to=2026-11-01")
    assert bad.status_code == 200 and "That period cannot be shown" in bad.text


async def test_the_routes_are_documented(desk_client) -> None:
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    assert paths["/api/stats.csv"]["get"]["summary"].startswith("The figures of every day")
    assert {"from", "to", "by", "queue", "days"} <= {p["name"] for p in paths["/api/stats"]["get"]["parameters"]}
