"""The supervisor: start the parts of one role (frontdesk/app/roles.py) in order, stop them in reverse.

Start order (each step fails with a message that names the fix; a step the role does not run is skipped):

1. the store (`open_database`: SQLite is migrated automatically, an out-of-date PostgreSQL is refused
   with `frontdesk db upgrade`), the content catalogue and business hours (validated);
2. the HTTP app (desk, `/healthz`, webhooks) on `settings.http_port` (frontdesk/app/http.py), so health
   answers 503 "training" while the rest starts; `/metrics` on FRONTDESK_METRICS_PORT when the HTTP app
   does not serve it;
3. X: real credentials, or sandbox mode (frontdesk/app/sandbox_mode.py: the emulator in-process on
   `settings.sandbox_port`, or the one at FRONTDESK_X_API_BASE), announced loudly with a curl line;
4. the NLU server (FRONTDESK_NLU_URL, or Rasa trained on first use and started here);
5. the X and Telegram channels (pollers under their leader lease, webhooks), the outbox loop, the router
   worker, the SLA sweeper (with the router: bot/sla_sweeper.py), the spike alert loop (with the router),
   the assigner (automatic assignment, with the router), the event reminders (bot/event_reminders.py) and the
   retention loop.

Shutdown runs the same steps backwards: channels stop taking messages, loops finish their current item,
Rasa and the emulator are stopped, the store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from bot.content import Content
from bot.content_store import Bundle, ContentStore
from bot.router import RouterConfig
from bot.sla_sweeper import SlaSweeper
from bot.worker import BotWorker
from frontdesk.app import sandbox_mode
from frontdesk.app.errors import RunError
from frontdesk.app.http import (
    Readiness,
    add_routes,
    create_http_app,
    flag_check,
    nlu_check,
    serve_http,
    store_check,
)
from frontdesk.app.roles import ROLE_RUN, Role
from frontdesk.core import metrics
from frontdesk.core.business_hours import BusinessHours, parse_business_hours
from frontdesk.core.settings import Settings
from frontdesk.core.sla import SlaPolicy
from storage.db import Database
from storage.gauges import run_store_gauges
from storage.migrate import open_database

log = logging.getLogger("frontdesk.app.supervisor")
Say = Callable[[str], None]

__all__ = ["Role", "RunError", "Running", "run_forever", "started"]


def say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Running:
    """What a started Frontdesk consists of (tests and `frontdesk run` look inside)."""

    settings: Settings
    db: Database
    content: Content  # as started; `content_store.current` is what is in use after a reload
    readiness: Readiness
    content_store: ContentStore | None = None
    role: Role = ROLE_RUN
    worker: BotWorker | None = None
    assigner: Any = None
    leaders: list[Any] = field(default_factory=list)
    metrics_url: str = ""
    outbox: Any = None
    channel: Any = None
    nlu_url: str = ""
    http_url: str = ""
    sandbox: Any = None
    telegram: Any = None
    brand_user_id: str = ""
    http_app: Any = None
    nlu: Any = None
    event_outreach: Any = None
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def started(
    settings: Settings,
    role: Role = ROLE_RUN,
    *,
    say: Say = say_stderr,
    worker_owner: str | None = None,
) -> AsyncIterator[Running]:
    """Start the parts `role` runs (see the module docstring) and stop them all when the block exits.

    `worker_owner` names this process in the router's and outbox's leases (default: a random one).
    """
    async with AsyncExitStack() as stack:
        # Configuration mistakes first: they are cheap to find and need no server.
        settings.check_secrets()
        content_store = ContentStore(settings.content_dir, settings.effective_taxonomy_path)
        content, taxonomy = content_store.current.content, content_store.current.taxonomy
        hours = parse_business_hours(settings.business_hours, settings.business_timezone)
        db = await _open_store(settings)
        stack.push_async_callback(db.dispose)
        readiness = Readiness()
        readiness.add("store", store_check(db))
        readiness.pending("nlu", "starting")
        if role.pollers:
            readiness.pending("channels", "starting")
        running = Running(settings=settings, db=db, content=content, readiness=readiness, role=role,
                          content_store=content_store)
        if settings.content_reload_s > 0:  # docs/content.md: a changed file is picked up without a restart
            _spawn(stack, running, "content-reload", content_store.watch(settings.content_reload_s))
        say(f"frontdesk: store {_redacted(settings.effective_database_url)}; "
            f"{len(content.faq)} FAQ answers, {len(content.events)} events; "
            f"business hours: {settings.business_hours or '24x7'}"
            + (f"; SLAs from {content.sla.source}" if content.sla.enabled else "; no SLAs (no sla.yml)"))

        if role.http:
            await _start_http(stack, running, say)
        # Prometheus scrapes FRONTDESK_METRICS_PORT wherever the HTTP port hides /metrics (real accounts).
        http_serves_metrics = role.http and settings.effective_public_metrics
        if role.metrics_port and settings.metrics_port and not http_serves_metrics:
            await _start_metrics(stack, running, settings.metrics_port, say)
        _spawn(stack, running, "store-gauges", _store_gauges(db))

        uses_x = role.pollers or role.outbox or (role.webhooks and settings.x_webhook_enabled)
        if uses_x:
            settings, running.sandbox = await sandbox_mode.x_api_base(
                stack, settings, say, may_start_sandbox=role.sandbox, http_url=running.http_url
            )
            running.settings = settings

        nlu: Any = None
        if role.router:
            running.nlu_url = await _start_nlu(stack, settings, say)
        elif settings.nlu_url:
            running.nlu_url = settings.nlu_url.rstrip("/")
        if running.nlu_url:
            nlu = _nlu_client(settings, running.nlu_url)
            stack.push_async_callback(nlu.aclose)
            readiness.add("nlu", nlu_check(nlu))
            running.nlu = nlu
        else:
            readiness.add("nlu", flag_check(lambda: True, ""))

        owner = worker_owner or f"frontdesk-{uuid.uuid4().hex[:8]}"
        if uses_x:
            await _start_x(stack, running, say)
            running.brand_user_id = settings.x_brand_user_id or (running.channel.brand_id or "")
        # Telegram: with a token; in sandbox mode (the emulators started here) on the in-process emulator.
        if (settings.telegram_token is not None or running.sandbox is not None) and role.uses_channels:
            await _start_telegram(stack, running, say)
        if role.outbox:
            running.outbox = _start_outbox(stack, running, owner)
            if running.outbox is not None:
                _start_announcements(stack, running, content_store)
        if role.retention and settings.retention_days:  # docs/privacy.md
            from storage.retention import run_retention

            _spawn(stack, running, "retention", run_retention(
                db, days=settings.retention_days, interval_s=settings.retention_interval_s))
        if not role.router:
            say("frontdesk: ready" + (f" on {running.http_url}" if running.http_url else ""))
            yield running
            return
        config = RouterConfig(
            confidence_threshold=settings.nlu_confidence_threshold,
            margin_threshold=settings.nlu_margin_threshold,
            brand_user_id=running.brand_user_id,
            hours=hours,
            taxonomy=taxonomy,
        )
        running.assigner = _start_assigner(stack, running)
        worker = BotWorker(
            db, nlu, content, config, owner=owner, concurrency=settings.bot_concurrency,
            lease_s=settings.worker_lease_s,
            on_outbound=running.outbox.wake if running.outbox is not None else None,
            on_escalated=running.assigner.wake,
        )
        running.worker = worker
        content_store.subscribe(functools.partial(_use_in_worker, worker))
        _spawn(stack, running, "worker", worker.run())
        if settings.spike_window_s > 0:  # docs/incidents.md
            from bot.spike_alerts import run_spike_alerts, spike_config

            _spawn(stack, running, "spike-alerts",
                   run_spike_alerts(db, spike_config(settings), interval_s=settings.spike_check_s))
        worker.wake()  # messages recorded while we were starting
        _spawn(stack, running, "sla-sweeper", _sla_sweeper(running, hours).run())
        _start_event_outreach(stack, running, content_store)
        say("frontdesk: ready" + (f" on {running.http_url}" if running.http_url else ""))
        yield running


def _sla_sweeper(running: Running, hours: BusinessHours) -> SlaSweeper:
    """The SLA sweeper with the current content's targets (a reload applies at its next pass); what it
    records wakes this process's pager at once rather than at its next poll."""
    store = running.content_store

    def policy() -> SlaPolicy:
        return SlaPolicy(targets=(store.current.content if store else running.content).sla, hours=hours)

    def wake_pager() -> None:
        pager = getattr(running.telegram, "pager", None)
        if pager is not None:
            pager.wake()

    return SlaSweeper(running.db, policy, interval_s=running.settings.sla_sweep_s, on_alert=wake_pager)


def _start_assigner(stack: AsyncExitStack, running: Running) -> Any:
    """Automatic assignment (docs/desk.md, "Assignment"): one loop per router process, safe side by side."""
    from bot.assigner import Assigner

    assigner = Assigner(running.db, online_window_s=running.settings.assign_online_window_s,
                        sweep_s=running.settings.assign_sweep_s)
    _spawn(stack, running, "assigner", assigner.run())
    return assigner


def _start_event_outreach(stack: AsyncExitStack, running: Running, content_store: ContentStore) -> None:
    """Reminders before events and notices of changed ones (bot/event_reminders.py), with the router:
    every worker runs it; the outbox's idempotency keys keep the messages single."""
    from bot.event_reminders import EventOutreach
    from storage.outreach import opted_out_in

    outreach = EventOutreach(
        running.db, lambda: content_store.current.content,
        default_offsets=running.settings.event_reminder_offsets,
        interval_s=running.settings.event_reminder_interval_s,
        opted_out=opted_out_in,  # "stop" (docs/outbound.md "Consent"): no reminders either
        on_queued=running.outbox.wake if running.outbox is not None else None,
    )
    running.event_outreach = outreach
    content_store.subscribe(lambda _bundle: outreach.wake())
    _spawn(stack, running, "event-outreach", outreach.run())


def _use_in_worker(worker: BotWorker, bundle: Bundle) -> None:
    """A reloaded content folder: the next message is routed with it (one message sees one version)."""
    worker.content = bundle.content
    worker.config = dataclasses.replace(worker.config, taxonomy=bundle.taxonomy)


def _use_in_desk(desk_app: Any, bundle: Bundle) -> None:
    state = desk_app.state.desk
    state.taxonomy = bundle.taxonomy  # the intents offered for corrections
    state.sla = dataclasses.replace(state.sla, targets=bundle.content.sla)  # the clocks the queues show
    state.listening = bundle.content.listening  # the Listening page's rules


def install_reload_signal(store: ContentStore) -> Callable[[], None]:
    """SIGHUP reloads the content (docs/content.md); returns how to remove the handler."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, store.reload, "SIGHUP")
    except (NotImplementedError, RuntimeError, AttributeError):  # not the main thread, or no SIGHUP here
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGHUP)


async def run_forever(settings: Settings, role: Role = ROLE_RUN, *, say: Say = say_stderr) -> None:
    """Start `role`'s parts and run until SIGINT/SIGTERM (or a part fails for good); SIGHUP reloads content."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    remove_reload_signal: Callable[[], None] = lambda: None
    try:
        async with started(settings, role, say=say) as running:
            assert running.content_store is not None
            remove_reload_signal = install_reload_signal(running.content_store)
            failed = asyncio.ensure_future(_first_failure(running))
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (failed, stopping):
                task.cancel()
            if failed in done and not failed.cancelled() and failed.exception() is not None:
                raise failed.exception()  # type: ignore[misc]
            say("frontdesk: shutting down")
    finally:
        remove_reload_signal()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    say("frontdesk: stopped")


async def _first_failure(running: Running) -> None:
    """Wait until a supervised part ends on its own: that is a failure of the whole process."""
    while True:
        tasks = list(running.tasks.items())
        if not tasks:
            await asyncio.sleep(3600)
            continue
        done, _ = await asyncio.wait([t for _, t in tasks], return_when=asyncio.FIRST_COMPLETED)
        for name, task in tasks:
            if task in done:
                exc = task.exception() if not task.cancelled() else None
                raise RunError(f"{name} stopped unexpectedly: {exc!r}" if exc else f"{name} stopped unexpectedly")


def _spawn(stack: AsyncExitStack, running: Running, name: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    running.tasks[name] = task

    async def _stop() -> None:
        running.tasks.pop(name, None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(_stop)
    return task


# --- the store ------------------------------------------------------------------------------------------------


async def _open_store(settings: Settings) -> Database:
    from storage.errors import SchemaOutOfDate

    engine_kwargs: dict[str, int] = {}
    if not settings.is_sqlite:
        # A connection per conversation being handled plus ingest, outbox and desk, kept open: a pool smaller
        # than the work opened and closed a connection (TLS probe, statement cache lost) many times a second.
        engine_kwargs["pool_size"] = max(10, settings.bot_concurrency + 10)
    try:
        return await open_database(settings.effective_database_url, **engine_kwargs)
    except SchemaOutOfDate as exc:
        raise RunError(str(exc)) from None
    except (OSError, ConnectionError) as exc:
        raise RunError(
            f"cannot reach the database {_redacted(settings.effective_database_url)}: {exc}; "
            "check FRONTDESK_DATABASE_URL (empty means the embedded SQLite file)"
        ) from None


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(unparseable URL)"


# --- HTTP -------------------------------------------------------------------------------------------------------


async def _start_http(stack: AsyncExitStack, running: Running, say: Say) -> None:
    settings = running.settings
    desk_app = _desk_app(running.db, settings, say, running.content_store)
    app = create_http_app(running.readiness, desk_app=desk_app, extra={"running": running}, settings=settings)
    add_routes(app, metrics.metrics_router())
    running.http_app = app
    server = await serve_http(app, settings.http_host, settings.http_port)
    running.http_url = server.url
    running.tasks["http"] = server.task

    async def _stop() -> None:
        running.tasks.pop("http", None)
        await server.stop()

    stack.push_async_callback(_stop)


async def _start_metrics(stack: AsyncExitStack, running: Running, port: int, say: Say) -> None:
    """/metrics and /healthz on the metrics port: a worker (no HTTP app), or a desk hiding /metrics."""
    try:
        runner = await metrics.serve_metrics(port, host=running.settings.http_host)
    except OSError as exc:
        raise RunError(
            f"cannot serve /metrics on {running.settings.http_host}:{port} ({exc}); "
            "set FRONTDESK_METRICS_PORT to a free port (0 turns it off)"
        ) from None
    stack.push_async_callback(runner.cleanup)
    running.metrics_url = f"http://{running.settings.http_host}:{metrics.bound_port(runner)}"
    say(f"frontdesk: metrics on {running.metrics_url}/metrics")


async def _store_gauges(db: Database) -> None:
    await run_store_gauges(db, interval_s=15.0)


def _desk_app(db: Database, settings: Settings, say: Say, store: ContentStore | None) -> Any | None:
    try:
        from desk.app import create_desk_app  # type: ignore[attr-defined]
    except ImportError:
        say("frontdesk: the desk is not installed in this build (desk/app.py missing); serving /healthz only")
        return None
    if store is None:
        return create_desk_app(db, settings)
    app = create_desk_app(db, settings, taxonomy=store.current.taxonomy)
    store.subscribe(functools.partial(_use_in_desk, app))
    return app


# --- NLU ---------------------------------------------------------------------------------------------------------


async def _start_nlu(stack: AsyncExitStack, settings: Settings, say: Say) -> str:
    if settings.nlu_url:
        say(f"frontdesk: using the NLU server at {settings.nlu_url}")
        return settings.nlu_url.rstrip("/")
    from nlu.rasa_process import RasaRuntimeError
    from nlu.serving import running_nlu_server

    say("frontdesk: starting the NLU server (first run: building Rasa's virtualenv takes ~5 min and "
        "training ~1-3 min; later runs reuse both)")
    try:
        return await stack.enter_async_context(running_nlu_server(settings, port=settings.nlu_port))
    except RasaRuntimeError as exc:
        raise RunError(f"the NLU server did not start: {exc}") from None


def _nlu_client(settings: Settings, url: str) -> Any:
    from nlu.client import NLUClient

    return NLUClient.from_settings(settings, url)


# --- the channels (bot/channels/x/, bot/channels/telegram/) and the outbox (bot/outbox.py) --------------------


async def _start_x(stack: AsyncExitStack, running: Running, say: Say) -> None:
    """The X channel: resolves the brand account, owns the sender, runs the pollers under the account's
    leader lease (roles with pollers), and serves the webhook when enabled (roles with webhooks)."""
    from bot.channels.x import XChannel, XStartError

    channel = XChannel(running.db, running.settings, wake=_waker(running), poll=False)
    await _start_channel(stack, channel, XStartError)
    running.channel = channel
    store = running.content_store
    if channel.sender is not None and store is not None:
        # A public reply X calls a duplicate goes out in the brand's next wording (bot/texts.py).
        channel.sender.alternatives = lambda text: store.current.content.texts.alternatives(text)
    if running.role.pollers and store is not None:
        # Listening (docs/listening.md): the rules and words in use follow reloads; polled under the lease.
        from bot.listening import ListeningClassifier

        classifier = ListeningClassifier(
            running.nlu, lambda: store.current, confidence_threshold=running.settings.nlu_confidence_threshold
        )
        channel.listening = (lambda: store.current.content.listening, classifier.classify)
    if running.role.pollers:
        await _poll_under_lease(stack, running, channel, f"x:{channel.brand_id}",
                                check="channels", starting="the X channel is starting")
    if running.role.webhooks and running.settings.x_webhook_enabled and running.http_app is not None:
        add_routes(running.http_app, channel.webhook_router())
        say(f"frontdesk: X webhooks accepted at {running.http_url}/webhooks/x (pollers run as a backstop)")


async def _start_telegram(stack: AsyncExitStack, running: Running, say: Say) -> None:
    """Telegram: customers in, the agents' pager, the sender (bot/channels/telegram, docs/telegram.md).

    With FRONTDESK_TELEGRAM_TOKEN: the real Bot API (or FRONTDESK_TELEGRAM_API_BASE).  Without it, in sandbox
    mode: the in-process Telegram emulator with `SANDBOX_TELEGRAM_TOKEN` and an agents' group registered.
    """
    try:
        from bot.channels.telegram import TelegramChannel, TelegramStartError
    except ImportError:
        say("frontdesk: FRONTDESK_TELEGRAM_TOKEN is set but the Telegram channel is not installed in this build")
        return

    settings = running.settings
    if settings.telegram_token is None:
        settings = sandbox_mode.telegram_settings(settings, running.sandbox, say)
    try:
        channel = TelegramChannel(running.db, settings, wake=_waker(running), poll=False)
    except TelegramStartError as exc:
        raise RunError(str(exc)) from None
    await _start_channel(stack, channel, TelegramStartError)
    running.telegram = channel
    poll = running.role.pollers
    if poll:
        try:
            await channel.register_webhook()
        except TelegramStartError as exc:
            raise RunError(str(exc)) from None
        await _poll_under_lease(stack, running, channel, f"telegram:{channel.bot.id}",
                                check="telegram", starting="the Telegram channel is starting")
    if running.role.webhooks and channel.webhook_mode and running.http_app is not None:
        add_routes(running.http_app, channel.webhook_router())
    say(f"frontdesk: Telegram bot @{channel.bot.username} "
        + ("(sender only)" if not poll else "takes updates by webhook" if channel.webhook_mode
           else "polls for updates")
        + (f"; escalations are posted to chat {settings.telegram_agents_chat}"
           if poll and settings.telegram_agents_chat is not None else ""))


async def _start_channel(stack: AsyncExitStack, channel: Any, start_error: type[Exception]) -> None:
    """Start a channel (its client, the brand account, the sender) and stop it when the stack unwinds.

    A channel that fails half-way is stopped at once: its HTTP sessions must not outlive the error.
    """
    try:
        await channel.start()
    except start_error as exc:
        await channel.stop()
        raise RunError(str(exc)) from None
    stack.push_async_callback(channel.stop)


async def _poll_under_lease(
    stack: AsyncExitStack, running: Running, channel: Any, lease: str, *, check: str, starting: str
) -> None:
    """Run the channel's pollers while this process holds the leader lease `lease`; readiness `check`
    answers `starting` until the channel is ready.  Waits for the first try at the lease."""
    from bot.channels.leading import PollingLeader

    leader = PollingLeader(running.db, lease, channel.start_polling, channel.stop_polling,
                           lease_s=running.settings.leader_lease_s)
    running.leaders.append(leader)
    _spawn(stack, running, f"leader:{lease}", leader.run())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(leader.first_attempt.wait(), 30)
    running.readiness.add(check, flag_check(lambda: channel.ready, starting))


def _waker(running: Running) -> Callable[[], None]:
    """What a channel calls after recording a message: wake this process's router, if it runs one."""

    def wake() -> None:
        if running.worker is not None:
            running.worker.wake()

    return wake


def _start_announcements(stack: AsyncExitStack, running: Running, content_store: ContentStore) -> None:
    """The pacer that releases announcements to the outbox (docs/outbound.md), beside the outbox loop."""
    from bot.announcements import AnnouncementPacer
    from storage.announcements import pace_from

    pacer = AnnouncementPacer(
        running.db, lambda: content_store.current.content, pace_from(running.settings),
        tick_s=running.settings.announce_tick_s, on_released=running.outbox.wake,
    )
    _spawn(stack, running, "announcements", pacer.run())


def _start_outbox(stack: AsyncExitStack, running: Running, owner: str) -> Any:
    """One outbox loop for every channel that has a sender (X, and Telegram when configured)."""
    from bot.outbox import OutboxLoop
    from storage.models import Channel

    senders: dict[Channel, Any] = {}
    if running.channel is not None and running.channel.sender is not None:
        senders[Channel.x] = running.channel.sender
    if running.telegram is not None:
        senders[Channel.telegram] = running.telegram.sender
    if not senders:
        return None
    outbox = OutboxLoop(running.db, senders, owner, lease_s=running.settings.worker_lease_s)
    _spawn(stack, running, "outbox", outbox.run())
    return outbox
