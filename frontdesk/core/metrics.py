"""Prometheus metrics: every metric Frontdesk exports, defined once, with one small function per event.

Callers never touch the metric objects; they call the helpers (``message_received("x", "support")``,
``with nlu_timer(): ...``), which keep label values to a small known set so a bad value can never blow
up the number of time series.  Each process exposes its own registry:

- the desk mounts ``metrics_app()`` (an ASGI app) at ``/metrics``, or includes ``metrics_router()``;
- a worker, which has no web app, calls ``await serve_metrics(port)`` (``/metrics`` and ``/healthz``).

Gauges that describe the shared store (queue depth, inbox and outbox backlog) are set by
``storage.gauges.run_store_gauges(db)``, a periodic task; every process that runs it reports the same values, so
dashboards should aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    make_asgi_app,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from frontdesk.core.vocabulary import CATEGORIES, QUEUES

if TYPE_CHECKING:
    from aiohttp import web
    from fastapi import APIRouter


log = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = ("x", "telegram")
INBOUND_FIELDS: tuple[str, ...] = ("text", "sender_name", "sender_handle", "ids")
NAMESPACE = "frontdesk"

# One registry per process, separate from prometheus_client's global one, so that tests and libraries
# that register their own metrics cannot collide with ours.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

BUILD_INFO = Info(f"{NAMESPACE}_build", "Frontdesk version running in this process.", registry=REGISTRY)

MESSAGES_IN = Counter(
    f"{NAMESPACE}_messages_received_total",
    "Inbound customer messages recorded (after de-duplication), by channel and NLU category.",
    ["channel", "category"], registry=REGISTRY,
)
MESSAGES_OUT = Counter(
    f"{NAMESPACE}_messages_sent_total",
    "Outbound messages the platform accepted, by channel and the category of the conversation.",
    ["channel", "category"], registry=REGISTRY,
)
NLU_LATENCY = Histogram(
    f"{NAMESPACE}_nlu_parse_seconds",
    "Time for one NLU parse request (Rasa POST /model/parse), including the HTTP round trip.",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), registry=REGISTRY,
)
NLU_ERRORS = Counter(
    f"{NAMESPACE}_nlu_errors_total",
    "NLU parse requests that failed (timeout, connection, bad response); the message routes as 'other'.",
    ["reason"], registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    f"{NAMESPACE}_queue_depth",
    "Open tickets waiting for an agent (status queued), by queue. Same value in every process: use max().",
    ["queue"], registry=REGISTRY,
)
INBOX_BACKLOG = Gauge(
    f"{NAMESPACE}_inbox_backlog",
    "Inbound messages recorded but not yet handled by the router. Same value in every process: use max().",
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    f"{NAMESPACE}_outbox_backlog",
    "Outbox rows not yet delivered, by status (pending, sending, failed). Use max() across processes.",
    ["status"], registry=REGISTRY,
)
TICKETS_OPENED = Counter(
    f"{NAMESPACE}_tickets_opened_total", "Tickets opened (escalations), by queue and category.",
    ["queue", "category"], registry=REGISTRY,
)
TICKETS_CLAIMED = Counter(
    f"{NAMESPACE}_tickets_claimed_total", "Tickets claimed by an agent, by queue.", ["queue"], registry=REGISTRY,
)
TICKETS_RESOLVED = Counter(
    f"{NAMESPACE}_tickets_resolved_total",
    "Tickets closed, by queue and outcome (resolved, or handed_back to the bot).",
    ["queue", "outcome"], registry=REGISTRY,
)
SLA_ALERTS = Counter(
    f"{NAMESPACE}_sla_alerts_total",
    "SLA warnings (80% of a target used) and breaches, once per ticket and metric, by queue, metric and state.",
    ["queue", "metric", "state"], registry=REGISTRY,
)
SPIKE_ALERTS = Counter(
    f"{NAMESPACE}_spike_alerts_total",
    "Spike alerts raised (docs/incidents.md), by kind of key (intent, category, rule).",
    ["kind"], registry=REGISTRY,
)
FIRST_RESPONSE = Histogram(
    f"{NAMESPACE}_first_response_seconds",
    "From a ticket's creation to the first agent message the customer sees, by queue.",
    ["queue"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400),
    registry=REGISTRY,
)
OUTBOX_RETRIES = Counter(
    f"{NAMESPACE}_outbox_retries_total",
    "Deliveries put back for a later attempt, by channel and reason (rate_limited, server_error, network, ...).",
    ["channel", "reason"], registry=REGISTRY,
)
OUTBOX_FAILURES = Counter(
    f"{NAMESPACE}_outbox_failures_total",
    "Deliveries given up for good (the platform refused them), by channel.", ["channel"], registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    f"{NAMESPACE}_poller_rate_limit_waits_total",
    "Times a poller or sender waited for a platform rate-limit window to reset, by channel and endpoint.",
    ["channel", "endpoint"], registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    f"{NAMESPACE}_poller_rate_limit_wait_seconds_total",
    "Seconds spent waiting for rate-limit windows, by channel and endpoint.",
    ["channel", "endpoint"], registry=REGISTRY,
)
INBOUND_REPAIRED = Counter(
    f"{NAMESPACE}_inbound_repaired_total",
    "Inbound messages stored with text the store cannot hold repaired (NUL removed, lone surrogates as "
    "U+FFFD, cut to the length limit), by channel and field (text, sender_name, sender_handle, ids).",
    ["channel", "field"], registry=REGISTRY,
)
INBOUND_SKIPPED = Counter(
    f"{NAMESPACE}_inbound_skipped_total",
    "Webhook items that could not be read as a message (malformed), skipped, by channel and reason.",
    ["channel", "reason"], registry=REGISTRY,
)
LEADER = Gauge(
    f"{NAMESPACE}_poller_leader",
    "1 while this process holds the poller lease for an account (X account or Telegram bot), else 0.",
    ["name"], registry=REGISTRY,
)

X_REQUESTS = Counter(
    f"{NAMESPACE}_x_requests_total",
    "Requests this process made to the X API, by endpoint (method and path, ids as :id) and status class "
    "(2xx, 4xx, 5xx; 'error' when no answer came back).",
    ["endpoint", "status"], registry=REGISTRY,
)
X_ITEMS = Counter(
    f"{NAMESPACE}_x_items_total",
    "What X bills pay-per-use, counted by this process: posts, users and DM events returned, posts and DMs "
    "created (item names as in content/x_prices.yml). Per day: increase(...[1d]) or frontdesk_x_items_today.",
    ["item"], registry=REGISTRY,
)
X_ITEMS_TODAY = Gauge(
    f"{NAMESPACE}_x_items_today",
    "The same items summed over every process for the current UTC day, from the store. Use max().",
    ["item"], registry=REGISTRY,
)
X_REQUEST_LABELS_MAX = 64

_REASON_MAX = 32
_x_endpoints: set[str] = set()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("frontdesk")
    except PackageNotFoundError:
        return "unknown"


def _one_of(value: str | None, allowed: tuple[str, ...], fallback: str) -> str:
    return value if value in allowed else fallback


def _channel(channel: str) -> str:
    return _one_of(getattr(channel, "value", channel), CHANNELS, "other")


def _category(category: str | None) -> str:
    return _one_of(category, CATEGORIES, "other")


def _queue(queue: str | None) -> str:
    return _one_of(getattr(queue, "value", queue), QUEUES, "general")


def _reason(reason: str) -> str:
    """Free-form reasons are cut and normalised; callers should still pass a small fixed set."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in reason.lower())[:_REASON_MAX]
    return cleaned or "unknown"


# --- the instrumentation API -------------------------------------------------------------------------


def set_build_info(version: str, **extra: str) -> None:
    BUILD_INFO.info({"version": version, **extra})


def message_received(channel: str, category: str | None) -> None:
    MESSAGES_IN.labels(_channel(channel), _category(category)).inc()


def message_sent(channel: str, category: str | None = None) -> None:
    MESSAGES_OUT.labels(_channel(channel), _category(category)).inc()


def observe_nlu(seconds: float) -> None:
    NLU_LATENCY.observe(seconds)


def nlu_error(reason: str) -> None:
    NLU_ERRORS.labels(_reason(reason)).inc()


@contextlib.contextmanager
def nlu_timer() -> Iterator[None]:
    """Time one parse; an exception is counted as an NLU error (reason: its class name) and re-raised."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        nlu_error(type(exc).__name__)
        raise
    finally:
        observe_nlu(time.perf_counter() - start)


def ticket_opened(queue: str, category: str | None = None) -> None:
    TICKETS_OPENED.labels(_queue(queue), _category(category)).inc()


def ticket_claimed(queue: str) -> None:
    TICKETS_CLAIMED.labels(_queue(queue)).inc()


def ticket_resolved(queue: str, outcome: str = "resolved") -> None:
    TICKETS_RESOLVED.labels(_queue(queue), _one_of(outcome, ("resolved", "handed_back"), "resolved")).inc()


def sla_alert(queue: str, metric: str, state: str) -> None:
    SLA_ALERTS.labels(
        _queue(queue),
        _one_of(metric, ("first_response", "next_response", "resolution"), "resolution"),
        _one_of(state, ("warning", "breached"), "breached"),
    ).inc()


def spike_alert_raised(kind: str) -> None:
    SPIKE_ALERTS.labels(_one_of(kind, ("intent", "category", "rule"), "other")).inc()


def first_response(queue: str, seconds: float) -> None:
    FIRST_RESPONSE.labels(_queue(queue)).observe(max(0.0, seconds))


def outbox_retry(channel: str, reason: str) -> None:
    OUTBOX_RETRIES.labels(_channel(channel), _reason(reason)).inc()


def outbox_failed(channel: str) -> None:
    OUTBOX_FAILURES.labels(_channel(channel)).inc()


def rate_limit_wait(channel: str, endpoint: str, seconds: float) -> None:
    """A poller (or sender) is about to sleep `seconds` until a rate-limit window resets."""
    labels = (_channel(channel), _reason(endpoint))
    RATE_LIMIT_WAITS.labels(*labels).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(*labels).inc(max(0.0, seconds))


def inbound_repaired(channel: str, field: str) -> None:
    """An inbound message's `field` held text the store cannot hold; it was stored repaired."""
    INBOUND_REPAIRED.labels(_channel(channel), _one_of(field, INBOUND_FIELDS, "other")).inc()


def inbound_skipped(channel: str, reason: str) -> None:
    """A webhook item was not a readable message and was skipped (the rest of its payload was kept)."""
    INBOUND_SKIPPED.labels(_channel(channel), _reason(reason)).inc()


def x_request(endpoint: str, status: int | None) -> None:
    """One request to X answered with `status` (None: no answer, e.g. a timeout or a refused connection)."""
    if endpoint not in _x_endpoints:
        if len(_x_endpoints) >= X_REQUEST_LABELS_MAX:
            endpoint = "other"
        else:
            _x_endpoints.add(endpoint)
    status_class = "error" if status is None else f"{max(1, min(5, status // 100))}xx"
    X_REQUESTS.labels(endpoint, status_class).inc()


def x_items(item: str, count: int) -> None:
    """`count` billable items of kind `item` (posts_read, dms_created, ...) in one answer from X."""
    if count > 0:
        X_ITEMS.labels(_reason(item)).inc(count)


def set_x_items_today(counts: Mapping[str, int]) -> None:
    for item, n in counts.items():
        X_ITEMS_TODAY.labels(_reason(item)).set(n)


def set_leader(name: str, held: bool) -> None:
    LEADER.labels(name).set(1 if held else 0)


def set_queue_depths(depths: Mapping[str, int]) -> None:
    """Set every queue's depth; queues missing from `depths` are 0 (so an emptied queue drops to 0)."""
    for queue in QUEUES:
        QUEUE_DEPTH.labels(queue).set(depths.get(queue, 0))


set_build_info(_package_version())


# --- exposition --------------------------------------------------------------------------------------


def render() -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_app() -> Any:
    """An ASGI app serving the registry; mount it: ``app.mount("/metrics", metrics_app())``."""
    return make_asgi_app(registry=REGISTRY)


def metrics_router() -> APIRouter:
    """A FastAPI router with ``GET /metrics``, for apps that prefer routes to mounts."""
    from fastapi import APIRouter, Response

    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def _metrics() -> Response:
        body, content_type = render()
        return Response(content=body, media_type=content_type)

    return router


def _metrics_web_app() -> web.Application:
    from aiohttp import web

    async def _metrics(_request: web.Request) -> web.Response:
        body, content_type = render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(_request: web.Request) -> web.Response:
        # Answering at all proves the event loop is alive, which is what a liveness probe asks.
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


async def serve_metrics(port: int, host: str = "0.0.0.0") -> web.AppRunner:
    """Serve ``/metrics`` and ``/healthz`` on `port` from the running event loop (for workers).

    Returns the runner; ``await runner.cleanup()`` stops it.  Port 0 picks a free port (see
    ``bound_port(runner)``).
    """
    from aiohttp import web

    runner = web.AppRunner(_metrics_web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("metrics: serving /metrics and /healthz on %s:%s", host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the metrics server is not listening; call serve_metrics() first")
