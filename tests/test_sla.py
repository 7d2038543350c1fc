"""SLAs: targets from content/sla.yml, clocks from a ticket's timestamps, the sweeper's once-only alerts
(SQLite and PostgreSQL), and what the desk's JSON API and figures say about them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.content import ContentError, load_sla
from bot.sla_sweeper import SlaSweeper
from frontdesk.core.business_hours import parse_business_hours
from frontdesk.core.sla import Metric, SlaPolicy, SlaState, TicketTimes, clocks, current, parse_duration
from storage import actions
from storage.db import Database
from storage.models import Ticket, TicketEvent, utcnow
from tests.fixtures.desk import api_login, inbound

SLA_YML = """\
default:
  first_response: 4h
  resolution: 2d
queues:
  support:
    urgent: {first_response: 30m, next_response: 1h}
    default: {next_response: 2h}
"""


def _targets(tmp_path: Path, text: str = SLA_YML):  # type: ignore[no-untyped-def]
    path = tmp_path / "sla.yml"
    path.write_text(text)
    return load_sla(path)


def _times(created: datetime, **overrides: object) -> TicketTimes:
    values: dict[str, object] = {"queue": "support", "priority": "urgent", "is_open": True, "created_at": created,
                                 "first_response_at": None, "waiting_since": None}
    return TicketTimes(**{**values, **overrides})  # type: ignore[arg-type]


# --- targets and clocks (pure) ---------------------------------------------------------------------------------


def test_targets_fall_back_from_the_priority_to_the_queue_default_to_the_file_default(tmp_path: Path) -> None:
    targets = _targets(tmp_path)
    assert targets.targets_for("support", "urgent") == {
        Metric.first_response: 1800, Metric.next_response: 3600, Metric.resolution: 2 * 86400}
    assert targets.targets_for("support", "low") == {
        Metric.first_response: 4 * 3600, Metric.next_response: 7200, Metric.resolution: 2 * 86400}
    assert targets.targets_for("sales", "low") == {Metric.first_response: 4 * 3600, Metric.resolution: 2 * 86400}


def test_a_clock_is_ok_then_amber_at_80_percent_then_breached(tmp_path: Path) -> None:
    policy = SlaPolicy(targets=_targets(tmp_path))
    created = datetime(2026, 12, 1, 9, tzinfo=UTC)
    at = lambda minutes: current(_times(created), policy, created + timedelta(minutes=minutes))
    ok, amber, red = at(10), at(24), at(31)
    assert ok is not None and ok.metric == Metric.first_response and ok.state == SlaState.ok
    assert ok.remaining_s == 20 * 60 and ok.due_at == created + timedelta(minutes=30)
    assert amber is not None and amber.state == SlaState.warning and amber.remaining_s == 6 * 60
    assert red is not None and red.state == SlaState.breached and red.remaining_s == -60


def test_after_the_first_reply_the_next_response_clock_runs_from_the_unanswered_message(tmp_path: Path) -> None:
    policy = SlaPolicy(targets=_targets(tmp_path))
    created = datetime(2026, 12, 1, 9, tzinfo=UTC)
    answered = _times(created, first_response_at=created + timedelta(minutes=5))
    assert [c.metric for c in clocks(answered, policy, created + timedelta(hours=1))] == [Metric.resolution]
    asked_again = _times(created, first_response_at=created + timedelta(minutes=5),
                         waiting_since=created + timedelta(minutes=50))
    clock = current(asked_again, policy, created + timedelta(hours=1))
    assert clock is not None and clock.metric == Metric.next_response and clock.remaining_s == 50 * 60
    assert current(_times(created, is_open=False), policy, created) is None


def test_clocks_count_business_hours_only(tmp_path: Path) -> None:
    policy = SlaPolicy(targets=_targets(tmp_path), hours=parse_business_hours("Mon-Fri 09:00-17:00 Europe/London"))
    friday_late = datetime(2026, 12, 4, 16, 50, tzinfo=UTC)  # Friday 16:50 in London (GMT)
    clock = current(_times(friday_late), policy, datetime(2026, 12, 6, 12, tzinfo=UTC))  # Sunday
    assert clock is not None and clock.state == SlaState.ok and clock.remaining_s == 20 * 60
    assert clock.due_at == datetime(2026, 12, 7, 9, 20, tzinfo=UTC)  # Monday 09:20


def test_without_a_file_there_are_no_slas(tmp_path: Path) -> None:
    targets = load_sla(tmp_path / "sla.yml")
    assert not targets.enabled
    assert current(_times(datetime(2026, 1, 1, tzinfo=UTC)), SlaPolicy(targets=targets), utcnow()) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("default:\n  first_response: soon\n", ("sla.yml:2: `default.first_response`: 'soon' is not a duration; "
                                                 "write e.g. 30m, 4h, 2d or 1h30m")),
        ("default:\n  first_respons: 1h\n", "unknown key 'first_respons'; did you mean 'first_response'?"),
        ("queues:\n  suport:\n    urgent: {first_response: 1h}\n", "did you mean 'support'?"),
        ("queues:\n  support:\n    critical: {first_response: 1h}\n",
         "priorities of queue `support` are low, normal, high, urgent, default"),
        ("default:\n  resolution: 0m\n", "a target must be longer than nothing"),
        ("defaults:\n  resolution: 1h\n", "top-level keys are default, queues"),
        ("- 1h\n", "expected a mapping"),
    ],
)
def test_a_bad_targets_file_is_refused_naming_the_line_and_the_fix(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ContentError) as refused:
        _targets(tmp_path, text)
    assert says in str(refused.value)


def test_durations() -> None:
    assert [parse_duration(d) for d in ("30m", "4h", "2d", "1h30m", "45s")] == [1800, 14400, 172800, 5400, 45]
    with pytest.raises(ValueError, match="write e.g. 30m"):
        parse_duration("30")


async def test_content_check_refuses_a_bad_targets_file(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from frontdesk.core.settings import PROJECT_ROOT

    folder = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", folder)
    good = await cli("content", "check", str(folder))
    assert good.exit_code == 0 and "sla.yml       default first_response 4h" in good.output
    (folder / "sla.yml").write_text("default:\n  first_response: 4 hours\n")
    bad = await cli("content", "check", str(folder))
    assert bad.exit_code == 1 and "sla.yml:2" in bad.output and "write e.g. 30m" in bad.output


# --- the store: once-only alerts -------------------------------------------------------------------------------


async def _ticket(db: Database, sender: str, *, queue: str = "support", priority: str = "urgent",
                  age: timedelta = timedelta(0)) -> Ticket:
    recorded = await actions.record_inbound(db, inbound("where is my parcel", sender=sender, handle=f"c{sender}"))
    ticket = await actions.escalate(db, recorded.conversation_id, queue=queue, priority=priority, reason="test")
    if age:  # the ticket was opened `age` ago
        async with db.transaction() as session:
            await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(created_at=utcnow() - age))
    return ticket


async def _sla_events(db: Database) -> list[tuple[int, str, dict[str, object]]]:
    async with db.session() as session:
        rows = (await session.execute(
            select(TicketEvent.ticket_id, TicketEvent.action, TicketEvent.detail)
            .where(TicketEvent.action.in_(("sla_warning", "sla_breach")))  # type: ignore[attr-defined]
            .order_by(TicketEvent.id)
        )).all()
    return [(t, a, dict(d)) for t, a, d in rows]


async def test_the_sweeper_records_a_warning_and_a_breach_once_each(db: Database, tmp_path: Path, make_agent) -> None:  # type: ignore[no-untyped-def]
    policy = SlaPolicy(targets=_targets(tmp_path))
    sweeper = SlaSweeper(db, lambda: policy)
    fresh = await _ticket(db, "1001")
    amber = await _ticket(db, "1002", age=timedelta(minutes=25))
    late = await _ticket(db, "1003", age=timedelta(minutes=40))

    assert await sweeper.sweep() == 2
    assert await sweeper.sweep() == 0  # a second pass (or another process, or a restart) writes nothing new
    assert await SlaSweeper(db, lambda: policy).sweep() == 0
    assert await _sla_events(db) == [
        (amber.id, "sla_warning", {"metric": "first_response"}),
        (late.id, "sla_breach", {"metric": "first_response"}),
    ]
    # Later the amber one breaches too; the fresh one turns amber.
    assert await sweeper.sweep(now=utcnow() + timedelta(minutes=25)) == 2
    assert (amber.id, "sla_breach", {"metric": "first_response"}) in await _sla_events(db)
    assert (fresh.id, "sla_warning", {"metric": "first_response"}) in await _sla_events(db)
    # An answered ticket's first-response clock has stopped: nothing more for it.
    agent = await make_agent()
    await actions.claim(db, fresh.id, agent.id)  # type: ignore[arg-type]
    await actions.agent_reply(db, fresh.id, agent.id, "On it!")  # type: ignore[arg-type]
    assert not await actions.record_sla_alert(db, fresh.id, "first_response", "breached")  # type: ignore[arg-type]
    assert await sweeper.sweep(now=utcnow() + timedelta(minutes=35)) == 0


async def test_concurrent_sweepers_write_one_alert(db: Database) -> None:
    ticket = await _ticket(db, "1101", age=timedelta(hours=1))
    assert ticket.id is not None
    results = await asyncio.gather(
        *(actions.record_sla_alert(db, ticket.id, Metric.first_response, SlaState.breached) for _ in range(6))
    )
    assert sorted(results) == [False] * 5 + [True]
    assert await _sla_events(db) == [(ticket.id, "sla_breach", {"metric": "first_response"})]


async def test_two_sweepers_at_once_share_the_work(db: Database, tmp_path: Path) -> None:
    policy = SlaPolicy(targets=_targets(tmp_path))
    tickets = [await _ticket(db, str(1150 + n), age=timedelta(minutes=40)) for n in range(4)]
    written = await asyncio.gather(*(SlaSweeper(db, lambda: policy).sweep() for _ in range(3)))
    assert sum(written) == 4
    assert sorted(t for t, _, _ in await _sla_events(db)) == sorted(t.id for t in tickets)


async def test_a_closed_ticket_gets_no_alert(db: Database, make_agent) -> None:  # type: ignore[no-untyped-def]
    ticket = await _ticket(db, "1201", age=timedelta(hours=1))
    await actions.resolve(db, ticket.id, None)  # type: ignore[arg-type]
    assert not await actions.record_sla_alert(db, ticket.id, "resolution", "breached")  # type: ignore[arg-type]
    assert not await actions.record_sla_alert(db, 999_999, "resolution", "breached")
    with pytest.raises(ValueError, match="only warning, breached"):
        await actions.record_sla_alert(db, ticket.id, "resolution", "ok")  # type: ignore[arg-type]
    assert await _sla_events(db) == []


# --- the desk's API ------------------------------------------------------------------------------------------


async def test_ticket_json_carries_the_sla_and_queues_sort_by_time_left(  # type: ignore[no-untyped-def]
    db: Database, desk_app, desk_client, make_agent, tmp_path: Path
) -> None:
    desk_app.state.desk.sla = SlaPolicy(targets=_targets(tmp_path))
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    low = await _ticket(db, "1301", priority="low")  # 4h first response
    amber = await _ticket(db, "1302", age=timedelta(minutes=25))  # urgent: 30m
    late = await _ticket(db, "1303", priority="high", age=timedelta(hours=5))  # 4h, overdue by an hour
    sales = await _ticket(db, "1304", queue="sales", priority="normal", age=timedelta(minutes=1))

    body = (await desk_client.get(f"/api/tickets/{amber.id}", headers=headers)).json()
    assert body["sla"]["metric"] == "first_response" and body["sla"]["state"] == "warning"
    assert 4 * 60 < body["sla"]["remaining_s"] <= 5 * 60
    due = datetime.fromisoformat(body["sla"]["due_at"])
    assert abs((due - (utcnow() + timedelta(seconds=body["sla"]["remaining_s"]))).total_seconds()) < 5

    by_priority = (await desk_client.get("/api/tickets", headers=headers)).json()
    assert [t["id"] for t in by_priority] == [amber.id, late.id, sales.id, low.id]
    by_sla = (await desk_client.get("/api/tickets?sort=sla", headers=headers)).json()
    assert [t["id"] for t in by_sla] == [late.id, amber.id, sales.id, low.id]
    assert [t["sla"]["state"] for t in by_sla] == ["breached", "warning", "ok", "ok"]
    page = await desk_client.get("/api/tickets?sort=sla&limit=2&offset=1", headers=headers)
    assert [t["id"] for t in page.json()] == [amber.id, sales.id] and page.headers["X-Total-Count"] == "4"

    await actions.resolve(db, late.id, None)  # type: ignore[arg-type]
    closed = (await desk_client.get(f"/api/tickets/{late.id}", headers=headers)).json()
    assert closed["sla"] is None


async def test_an_unknown_sort_is_422(desk_client, make_agent) -> None:  # type: ignore[no-untyped-def]
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    response = await desk_client.get("/api/tickets?sort=urgency", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "sort"]


async def test_without_targets_the_sla_is_null(db: Database, desk_app, desk_client, make_agent) -> None:  # type: ignore[no-untyped-def]
    desk_app.state.desk.sla = SlaPolicy()
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    ticket = await _ticket(db, "1401", age=timedelta(days=3))
    assert (await desk_client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()["sla"] is None


async def test_figures_count_breaches_per_queue(db: Database, desk_client, make_agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agent = await make_agent()
    headers = await api_login(desk_client, agent.email)
    one = await _ticket(db, "1501", age=timedelta(hours=1))
    two = await _ticket(db, "1502", queue="sales", age=timedelta(hours=1))
    for ticket in (one, two):
        await actions.record_sla_alert(db, ticket.id, "first_response", "breached")  # type: ignore[arg-type]
    await actions.record_sla_alert(db, one.id, "first_response", "warning")  # type: ignore[arg-type]
    stats = (await desk_client.get("/api/stats", headers=headers)).json()
    assert stats["sla_breaches"] == {"support": 1, "sales": 1, "events": 0, "general": 0}


def test_a_file_with_only_a_default_block_applies_it_everywhere(tmp_path: Path) -> None:
    targets = _targets(tmp_path, "default:\n  resolution: 1d\n")
    assert targets.enabled and targets.targets_for("events", "low") == {Metric.resolution: 86400}


# --- the sweeper in the running process, and the desk's live feed ----------------------------------------------


async def test_the_router_process_runs_the_sweeper_and_the_desk_does_not(  # type: ignore[no-untyped-def]
    db: Database, database_url: str, tmp_path: Path
) -> None:
    import shutil
    from dataclasses import replace

    from frontdesk.app.roles import ROLE_DESK, ROLE_WORKER
    from frontdesk.app.supervisor import started
    from frontdesk.core.settings import PROJECT_ROOT, Settings

    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content)
    (content / "sla.yml").write_text("default:\n  first_response: 10m\n")
    ticket = await _ticket(db, "1601", age=timedelta(minutes=11))
    settings = Settings(database_url=database_url, var_dir=tmp_path / "var", content_dir=content,
                        nlu_url="http://127.0.0.1:9", sla_sweep_s=0.2, content_reload_s=0)
    desk_role = replace(ROLE_DESK, http=False, webhooks=False, metrics_port=False)
    async with started(settings, desk_role, say=lambda _m: None) as running:
        assert "sla-sweeper" not in running.tasks
    worker_role = replace(ROLE_WORKER, pollers=False, outbox=False, metrics_port=False)
    async with started(settings, worker_role, say=lambda _m: None) as running:
        assert "sla-sweeper" in running.tasks
        for _ in range(100):
            if await _sla_events(db):
                break
            await asyncio.sleep(0.1)
    assert await _sla_events(db) == [(ticket.id, "sla_breach", {"metric": "first_response"})]


async def test_the_live_feed_announces_new_alerts_once(db: Database) -> None:
    from desk.live import LiveFeed

    ticket = await _ticket(db, "1701", age=timedelta(hours=1))
    await actions.record_sla_alert(db, ticket.id, "first_response", "warning")  # type: ignore[arg-type]
    feed = LiveFeed(db)
    assert await feed.poll() == []  # the first look takes the picture: old alerts are not news
    await actions.record_sla_alert(db, ticket.id, "first_response", "breached")  # type: ignore[arg-type]
    events = dict(await feed.poll())
    assert events["sla"] == {"alerts": [
        {"ticket_id": ticket.id, "metric": "first_response", "state": "breached", "subject": ticket.subject}]}
    assert ticket.id in events["tickets"]["ids"]
    assert "sla" not in dict(await feed.poll())


async def test_the_queue_page_colours_rows_and_sorts_by_time_left(  # type: ignore[no-untyped-def]
    db: Database, desk_app, desk_client, make_agent, tmp_path: Path
) -> None:
    import re

    from tests.test_desk_pages import _sign_in

    desk_app.state.desk.sla = SlaPolicy(targets=_targets(tmp_path))
    agent = await make_agent()
    await _sign_in(desk_client, agent.email)
    low = await _ticket(db, "1801", priority="low")
    late = await _ticket(db, "1802", priority="high", age=timedelta(hours=5))
    amber = await _ticket(db, "1803", age=timedelta(minutes=25))

    def order(html: str) -> list[int]:
        return [int(i) for i in re.findall(r'<tr class="[^"]*" data-ticket-id="(\d+)"', html)]

    page = (await desk_client.get("/queues/all")).text
    assert order(page) == [amber.id, late.id, low.id] and "SLA time left" in page
    assert f'class="prio-high sla-breached" data-ticket-id="{late.id}"' in page
    assert f'class="prio-urgent sla-warning" data-ticket-id="{amber.id}"' in page
    assert re.search(r'class="sla-clock breached"[^>]*>overdue 1h 00m<', page)
    assert order((await desk_client.get("/queues/all?sort=sla")).text) == [late.id, amber.id, low.id]
    rows = await desk_client.get("/queues/all/rows?sort=sla")
    assert order(rows.text) == [late.id, amber.id, low.id]
    bogus = await desk_client.get("/queues/all?sort=whatever")  # like other bad filters: the usual order
    assert bogus.status_code == 200 and order(bogus.text) == [amber.id, late.id, low.id]
    ticket_page = (await desk_client.get(f"/tickets/{amber.id}")).text
    assert re.search(r'data-sla="warning"[^>]*>SLA first response: 4m left<', ticket_page)
