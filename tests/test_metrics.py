"""Metrics: what Prometheus scrapes from /metrics moves when the instrumented events happen."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from frontdesk.core import metrics
from storage import actions
from storage.db import Database
from storage.gauges import refresh_store_gauges
from tests.store_helpers import dm

EXPECTED_FAMILIES = {
    "frontdesk_messages_received",
    "frontdesk_messages_sent",
    "frontdesk_nlu_parse_seconds",
    "frontdesk_nlu_errors",
    "frontdesk_queue_depth",
    "frontdesk_inbox_backlog",
    "frontdesk_outbox_backlog",
    "frontdesk_tickets_opened",
    "frontdesk_tickets_claimed",
    "frontdesk_tickets_resolved",
    "frontdesk_sla_alerts",
    "frontdesk_first_response_seconds",
    "frontdesk_outbox_retries",
    "frontdesk_outbox_failures",
    "frontdesk_poller_rate_limit_waits",
    "frontdesk_poller_rate_limit_wait_seconds",
    "frontdesk_poller_leader",
    "frontdesk_build_info",
}


def _samples(exposition: str, /) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def _value(exposition: str, metric: str, /, **labels: str) -> float:
    return _samples(exposition).get((metric, frozenset(labels.items())), 0.0)


async def _scrape_fastapi(app: FastAPI) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
        return await client.get("/metrics")


@pytest.fixture
async def worker_metrics_url() -> str:  # type: ignore[misc]
    runner = await metrics.serve_metrics(0, host="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{metrics.bound_port(runner)}"
    finally:
        await runner.cleanup()


async def test_worker_metrics_server_exposes_every_family_in_prometheus_format(worker_metrics_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{worker_metrics_url}/metrics")
        health = await client.get(f"{worker_metrics_url}/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert EXPECTED_FAMILIES <= families, EXPECTED_FAMILIES - families
    assert "process_resident_memory_bytes" in response.text
    assert health.status_code == 200 and health.json() == {"status": "ok"}


@pytest.mark.parametrize("style", ["mounted app", "router"])
async def test_desk_can_serve_metrics_as_a_mount_or_a_route(style: str) -> None:
    app = FastAPI()
    if style == "mounted app":
        app.mount("/metrics", metrics.metrics_app())
    else:
        app.include_router(metrics.metrics_router())
    response = await _scrape_fastapi(app)
    if response.status_code in (307, 308):  # the ASGI mount redirects /metrics to /metrics/
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
            response = await client.get("/metrics/")
    assert response.status_code == 200
    assert "frontdesk_messages_received_total" in response.text


async def test_counters_move_when_events_are_reported() -> None:
    before = metrics.render()[0].decode()
    metrics.message_received("x", "support")
    metrics.message_received("telegram", "sales")
    metrics.message_sent("x", "support")
    metrics.ticket_opened("support", "support")
    metrics.ticket_claimed("support")
    metrics.ticket_resolved("support", "handed_back")
    metrics.outbox_retry("telegram", "rate_limited")
    metrics.outbox_failed("x")
    metrics.rate_limit_wait("x", "mentions", 12.5)
    after = metrics.render()[0].decode()

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("frontdesk_messages_received_total", channel="x", category="support") == 1
    assert delta("frontdesk_messages_received_total", channel="telegram", category="sales") == 1
    assert delta("frontdesk_messages_sent_total", channel="x", category="support") == 1
    assert delta("frontdesk_tickets_opened_total", queue="support", category="support") == 1
    assert delta("frontdesk_tickets_claimed_total", queue="support") == 1
    assert delta("frontdesk_tickets_resolved_total", queue="support", outcome="handed_back") == 1
    assert delta("frontdesk_outbox_retries_total", channel="telegram", reason="rate_limited") == 1
    assert delta("frontdesk_outbox_failures_total", channel="x") == 1
    assert delta("frontdesk_poller_rate_limit_waits_total", channel="x", endpoint="mentions") == 1
    # other tests in this process really wait for X rate limits now, so the sum is not a round number
    assert delta("frontdesk_poller_rate_limit_wait_seconds_total", channel="x", endpoint="mentions") == pytest.approx(12.5)


async def test_nlu_timer_records_latency_and_counts_failures() -> None:
    before = metrics.render()[0].decode()
    with metrics.nlu_timer():
        pass
    with pytest.raises(TimeoutError):
        with metrics.nlu_timer():
            raise TimeoutError("rasa did not answer")
    after = metrics.render()[0].decode()
    assert _value(after, "frontdesk_nlu_parse_seconds_count") - _value(before, "frontdesk_nlu_parse_seconds_count") == 2
    assert _value(after, "frontdesk_nlu_errors_total", reason="timeouterror") - _value(
        before, "frontdesk_nlu_errors_total", reason="timeouterror"
    ) == 1


async def test_first_response_histogram_buckets_by_queue() -> None:
    before = metrics.render()[0].decode()
    metrics.first_response("sales", 90.0)
    after = metrics.render()[0].decode()
    assert _value(after, "frontdesk_first_response_seconds_bucket", queue="sales", le="120.0") - _value(
        before, "frontdesk_first_response_seconds_bucket", queue="sales", le="120.0"
    ) == 1
    assert _value(after, "frontdesk_first_response_seconds_bucket", queue="sales", le="60.0") == _value(
        before, "frontdesk_first_response_seconds_bucket", queue="sales", le="60.0"
    )


async def test_unknown_label_values_fold_into_a_fixed_set() -> None:
    """A typo or a hostile value must not create new time series."""
    metrics.message_received("whatsapp", "free text from a customer")
    text = metrics.render()[0].decode()
    assert 'channel="whatsapp"' not in text and "free text" not in text
    assert _value(text, "frontdesk_messages_received_total", channel="other", category="other") >= 1


async def test_leader_gauge_follows_on_change() -> None:
    metrics.set_leader("x:brand", True)
    assert _value(metrics.render()[0].decode(), "frontdesk_poller_leader", name="x:brand") == 1
    metrics.set_leader("x:brand", False)
    assert _value(metrics.render()[0].decode(), "frontdesk_poller_leader", name="x:brand") == 0


async def test_store_gauges_read_queue_depth_and_inbox_backlog(db: Database) -> None:
    first = await actions.record_inbound(db, dm("where is my order", sender="1"))
    await actions.record_inbound(db, dm("hello?", sender="2"))
    await actions.escalate(db, first.conversation_id, queue="support")
    await refresh_store_gauges(db)
    text = metrics.render()[0].decode()
    assert _value(text, "frontdesk_queue_depth", queue="support") == 1
    assert _value(text, "frontdesk_queue_depth", queue="sales") == 0
    assert _value(text, "frontdesk_inbox_backlog") == 2

    await actions.mark_handled(db, first.message_id)
    await refresh_store_gauges(db)
    assert _value(metrics.render()[0].decode(), "frontdesk_inbox_backlog") == 1
