"""`frontdesk run`: everything in one supervised process, with a clean shutdown on Ctrl-C or SIGTERM.

Start order (each step fails with a message that names the fix):

1. the store (`open_database`: SQLite is migrated automatically, an out-of-date PostgreSQL is refused
   with `frontdesk db upgrade`), the content catalogue and business hours (validated);
2. the HTTP app (desk, `/healthz`, webhooks) on `settings.http_port`, so health answers 503 "training"
   while the rest starts;
3. X: real credentials, or sandbox mode (the emulator in-process on `settings.sandbox_port`, or the one
   at FRONTDESK_X_API_BASE), announced loudly with a curl line to play a customer;
4. the NLU server (FRONTDESK_NLU_URL, or Rasa trained on first use and started here);
5. the outbox loop, the router worker and the X channel (pollers or webhook).

Shutdown runs the same steps backwards: channels stop taking messages, loops finish their current item,
Rasa and the emulator are stopped, the store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from bot.content import Content, load_content
from bot.hours import parse_business_hours
from bot.router import RouterConfig
from bot.worker import BotWorker
from frontdesk.core import metrics
from frontdesk.app.http import Readiness, add_routes, create_http_app, flag_check, nlu_check, store_check
from frontdesk.core.settings import Settings
from storage.db import Database
from storage.gauges import run_store_gauges
from storage.migrate import open_database

log = logging.getLogger("frontdesk.app.supervisor")
Say = Callable[[str], None]


class RunError(RuntimeError):
    """`frontdesk run` cannot start; the message says why and what to do."""


def say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Running:
    """What a started Frontdesk consists of (tests and `frontdesk run` look inside)."""

    settings: Settings
    db: Database
    content: Content
    readiness: Readiness
    worker: BotWorker | None = None
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
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def started(
    settings: Settings,
    *,
    say: Say = say_stderr,
    with_http: bool = True,
    with_channels: bool = True,
    with_outbox: bool = True,
    worker_owner: str | None = None,
    with_worker: bool = True,
    start_sandbox: bool | None = None,
    with_webhooks: bool | None = None,
    metrics_port: int | None = None,
) -> AsyncIterator[Running]:
    """Start every part (see the module docstring) and stop them all when the block exits.

    The roles: `frontdesk run` (everything), `frontdesk worker` (``with_http=False``: router, outbox and
    the pollers of the accounts whose leader lease it wins, /metrics on `metrics_port`; never starts an
    emulator), `frontdesk desk` (``with_worker=False, with_outbox=False, with_channels=False``: the desk,
    /metrics, /healthz and the webhooks).  Pollers always run under their account's leader lease
    (bot/channels/leading.py), so any number of these processes can share one database.
    """
    if start_sandbox is None:
        start_sandbox = with_channels
    if with_webhooks is None:
        with_webhooks = with_channels
    async with AsyncExitStack() as stack:
        # Configuration mistakes first: they are cheap to find and need no server.
        settings.check_secrets()
        content = load_content(settings.content_dir)
        hours = parse_business_hours(settings.business_hours, settings.business_timezone)
        db = await _open_store(settings)
        stack.push_async_callback(db.dispose)
        readiness = Readiness()
        readiness.add("store", store_check(db))
        readiness.pending("nlu", "starting")
        if with_channels:
            readiness.pending("channels", "starting")
        running = Running(settings=settings, db=db, content=content, readiness=readiness)
        say(f"frontdesk: store {_redacted(settings.effective_database_url)}; "
            f"{len(content.faq)} FAQ answers, {len(content.events)} events; "
            f"business hours: {settings.business_hours or 'always open'}")

        if with_http:
            await _start_http(stack, running, say)
        if metrics_port:
            await _start_metrics(stack, running, metrics_port, say)
        _spawn(stack, running, "store-gauges", _store_gauges(db))

        uses_x = with_channels or with_outbox or (with_webhooks and settings.x_webhook_enabled)
        if uses_x:
            settings = await _x_mode(stack, running, say, start_sandbox=start_sandbox)
            running.settings = settings

        nlu: Any = None
        if with_worker:
            running.nlu_url = await _start_nlu(stack, settings, say)
        elif settings.nlu_url:
            running.nlu_url = settings.nlu_url.rstrip("/")
        if running.nlu_url:
            nlu = _nlu_client(settings, running.nlu_url)
            stack.push_async_callback(nlu.aclose)
            readiness.add("nlu", nlu_check(nlu))
        else:
            readiness.add("nlu", flag_check(lambda: True, ""))

        owner = worker_owner or f"frontdesk-{uuid.uuid4().hex[:8]}"
        if uses_x:
            await _start_x(stack, running, say, poll=with_channels, webhooks=bool(with_webhooks))
            running.brand_user_id = settings.x_brand_user_id or (running.channel.brand_id or "")
        # Telegram: with a token; in sandbox mode (the emulators started here) on the in-process emulator.
        if (settings.telegram_token is not None or running.sandbox is not None) and (
            with_channels or with_outbox or with_webhooks
        ):
            await _start_telegram(stack, running, say, poll=with_channels, webhooks=bool(with_webhooks))
        if with_outbox:
            running.outbox = _start_outbox(stack, running, owner)
        if not with_worker:
            say("frontdesk: ready" + (f" on {running.http_url}" if running.http_url else ""))
            yield running
            return
        config = RouterConfig(
            confidence_threshold=settings.nlu_confidence_threshold,
            brand_user_id=running.brand_user_id,
            hours=hours,
        )
        worker = BotWorker(
            db, nlu, content, config, owner=owner, concurrency=settings.bot_concurrency,
            lease_s=settings.worker_lease_s,
            on_outbound=running.outbox.wake if running.outbox is not None else None,
        )
        running.worker = worker
        _spawn(stack, running, "worker", worker.run())
        if settings.retention_days:  # docs/privacy.md
            from storage.retention import run_retention

            _spawn(stack, running, "retention", run_retention(
                db, days=settings.retention_days, interval_s=settings.retention_interval_s))
        worker.wake()  # messages recorded while we were starting
        say("frontdesk: ready" + (f" on {running.http_url}" if running.http_url else ""))
        yield running


async def run_forever(settings: Settings, *, say: Say = say_stderr, with_channels: bool = True,
                      with_http: bool = True, with_outbox: bool = True, **roles: Any) -> None:
    """Start everything and run until SIGINT/SIGTERM (or a part fails for good)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with started(
            settings, say=say, with_channels=with_channels, with_http=with_http, with_outbox=with_outbox, **roles
        ) as running:
            failed = asyncio.ensure_future(_first_failure(running))
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (failed, stopping):
                task.cancel()
            if failed in done and not failed.cancelled() and failed.exception() is not None:
                raise failed.exception()  # type: ignore[misc]
            say("frontdesk: shutting down")
    finally:
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


class _Uvicorn:
    """uvicorn without its own signal handling: `frontdesk run` owns SIGINT/SIGTERM for every part."""

    @staticmethod
    def server(app: Any, host: str, port: int) -> Any:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def,override]
                yield

            def install_signal_handlers(self) -> None:  # older uvicorn
                return None

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                                log_config=None)  # its lines go through configure_logging's handler
        return _Server(config)


async def _start_http(stack: AsyncExitStack, running: Running, say: Say) -> None:
    settings = running.settings
    desk_app = _desk_app(running.db, settings, say)
    app = create_http_app(running.readiness, desk_app=desk_app, extra={"running": running})
    add_routes(app, metrics.metrics_router())
    running.http_app = app
    server = _Uvicorn.server(app, settings.http_host, settings.http_port)
    task = asyncio.ensure_future(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if task.done() or not server.started:
        task.cancel()
        raise RunError(
            f"the HTTP server could not listen on {settings.http_host}:{settings.http_port} "
            "(port in use?); set FRONTDESK_HTTP_PORT to a free port"
        )
    port = settings.http_port
    with contextlib.suppress(Exception):
        port = server.servers[0].sockets[0].getsockname()[1]
    running.http_url = f"http://{settings.http_host}:{port}"
    running.tasks["http"] = task

    async def _stop() -> None:
        running.tasks.pop("http", None)
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            task.cancel()

    stack.push_async_callback(_stop)


async def _start_metrics(stack: AsyncExitStack, running: Running, port: int, say: Say) -> None:
    """/metrics and /healthz for a process without the HTTP app (`frontdesk worker`)."""
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


async def _lead_polling(stack: AsyncExitStack, running: Running, name: str, start: Any, stop: Any) -> None:
    """Run `start`/`stop` (a channel's pollers) under the leader lease `name`; wait for the first try."""
    from bot.channels.leading import PollingLeader

    leader = PollingLeader(running.db, name, start, stop, lease_s=running.settings.leader_lease_s)
    running.leaders.append(leader)
    _spawn(stack, running, f"leader:{name}", leader.run())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(leader.first_attempt.wait(), 30)


def _desk_app(db: Database, settings: Settings, say: Say) -> Any | None:
    try:
        from desk.app import create_desk_app  # type: ignore[attr-defined]
    except ImportError:
        say("frontdesk: the desk is not installed in this build (desk/app.py missing); serving /healthz only")
        return None
    return create_desk_app(db, settings)


# --- X: real or sandbox -------------------------------------------------------------------------------------


async def _x_mode(stack: AsyncExitStack, running: Running, say: Say, *, start_sandbox: bool) -> Settings:
    settings = running.settings
    if settings.has_x_credentials:
        say("frontdesk: X credentials configured: talking to the real X API" +
            (f" via {settings.x_api_base}" if settings.x_api_base else ""))
        return settings
    if settings.x_api_base:
        base = settings.x_api_base.rstrip("/")
    elif not start_sandbox:
        raise RunError(
            "no X credentials and no FRONTDESK_X_API_BASE: `frontdesk worker` does not start an emulator; "
            "set the X credentials, or FRONTDESK_X_API_BASE to the sandbox of a running `frontdesk run`"
        )
    else:
        from sandbox.server import running_sandbox

        try:
            running.sandbox = await stack.enter_async_context(
                running_sandbox("127.0.0.1", settings.sandbox_port)
            )
        except OSError as exc:
            raise RunError(
                f"sandbox mode: cannot start the X emulator on 127.0.0.1:{settings.sandbox_port} ({exc}); "
                "set FRONTDESK_SANDBOX_PORT to a free port, or FRONTDESK_X_API_BASE to a running `frontdesk sandbox`"
            ) from None
        base = running.sandbox.base_url
    say(_sandbox_banner(base, running.http_url))
    return settings.model_copy(update={"x_api_base": base})


def _sandbox_banner(base: str, http_url: str) -> str:
    desk = http_url or "(HTTP disabled)"
    bar = "=" * 78
    return f"""
{bar}
  SANDBOX MODE: no X credentials are configured, so Frontdesk talks to the local X
  emulator at {base}. Nothing is posted to the real X.
{bar}
  Play a customer writing a DM:
    curl -s -X POST {base}/_sandbox/dms -H 'content-type: application/json' \\
         -d '{{"sender": "alice", "text": "where is my order?"}}'
  ... or a public mention:
    curl -s -X POST {base}/_sandbox/mentions -H 'content-type: application/json' \\
         -d '{{"author": "bob", "text": "@frontdesk my order is late, terrible service"}}'
  See what the brand account sent back:
    curl -s {base}/_sandbox/sent
  The desk: {desk}/   (create an agent first: frontdesk agents add)
  Health:   {desk}/healthz
  Real X: set FRONTDESK_X_CONSUMER_KEY, _CONSUMER_SECRET, _ACCESS_TOKEN, _ACCESS_TOKEN_SECRET.
{bar}
"""


# --- NLU ---------------------------------------------------------------------------------------------------------


async def _start_nlu(stack: AsyncExitStack, settings: Settings, say: Say) -> str:
    if settings.nlu_url:
        say(f"frontdesk: using the NLU server at {settings.nlu_url}")
        return settings.nlu_url.rstrip("/")
    from nlu.runtime import RasaRuntimeError, running_nlu_server

    say("frontdesk: starting the NLU server (first run: building Rasa's virtualenv takes ~5 min and "
        "training ~1-3 min; later runs reuse both)")
    try:
        return await stack.enter_async_context(running_nlu_server(settings, port=settings.nlu_port))
    except RasaRuntimeError as exc:
        raise RunError(f"the NLU server did not start: {exc}") from None


def _nlu_client(settings: Settings, url: str) -> Any:
    from nlu.client import NLUClient

    return NLUClient.from_settings(settings, url)


# --- outbox and X channel (bot/outbox.py, bot/channels/x/) ------------------------------------------------------


async def _start_x(stack: AsyncExitStack, running: Running, say: Say, *, poll: bool, webhooks: bool) -> None:
    """The X channel: resolves the brand account, runs the pollers under the account's leader lease
    (unless `poll` is off), owns the sender, and serves the webhook when enabled and `webhooks`."""
    from bot.channels.x import XChannel, XStartError

    def wake() -> None:
        if running.worker is not None:
            running.worker.wake()

    channel = XChannel(running.db, running.settings, wake=wake, poll=False)
    try:
        await channel.start()
    except XStartError as exc:
        await channel.stop()
        raise RunError(str(exc)) from None
    stack.push_async_callback(channel.stop)
    running.channel = channel
    if poll:
        await _lead_polling(stack, running, f"x:{channel.brand_id}", channel.start_polling, channel.stop_polling)
        running.readiness.add("channels", flag_check(lambda: channel.ready, "the X channel is starting"))
    if webhooks and running.settings.x_webhook_enabled and running.http_app is not None:
        add_routes(running.http_app, channel.webhook_router())
        say(f"frontdesk: X webhooks accepted at {running.http_url}/webhooks/x (pollers run as a backstop)")


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


async def _start_telegram(
    stack: AsyncExitStack, running: Running, say: Say, *, poll: bool, webhooks: bool = True
) -> None:
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
        settings = _telegram_sandbox_settings(running, say)

    def wake() -> None:
        if running.worker is not None:
            running.worker.wake()

    try:
        channel = TelegramChannel(running.db, settings, wake=wake, poll=False)
    except TelegramStartError as exc:
        raise RunError(str(exc)) from None
    try:
        await channel.start()
    except TelegramStartError as exc:
        await channel.stop()
        raise RunError(str(exc)) from None
    stack.push_async_callback(channel.stop)
    running.telegram = channel
    if poll:
        try:
            await channel.register_webhook()
        except TelegramStartError as exc:
            raise RunError(str(exc)) from None
        await _lead_polling(stack, running, f"telegram:{channel.bot.id}", channel.start_polling, channel.stop_polling)
        running.readiness.add("telegram", flag_check(lambda: channel.ready, "the Telegram channel is starting"))
    if webhooks and channel.webhook_mode and running.http_app is not None:
        add_routes(running.http_app, channel.webhook_router())
    say(f"frontdesk: Telegram bot @{channel.bot.username} "
        + ("(sender only)" if not poll else "takes updates by webhook" if channel.webhook_mode
           else "polls for updates")
        + (f"; escalations are posted to chat {settings.telegram_agents_chat}"
           if poll and settings.telegram_agents_chat is not None else ""))


def _telegram_sandbox_settings(running: Running, say: Say) -> Settings:
    from pydantic import SecretStr

    from frontdesk.core.settings import SANDBOX_TELEGRAM_AGENTS_CHAT, SANDBOX_TELEGRAM_TOKEN

    sandbox = running.sandbox
    agents_chat = running.settings.telegram_agents_chat or SANDBOX_TELEGRAM_AGENTS_CHAT
    sandbox.telegram.add_chat(chat_id=agents_chat, chat_type="supergroup", title="Frontdesk agents (sandbox)")
    say(_telegram_sandbox_banner(sandbox.base_url, agents_chat))
    return running.settings.model_copy(update={
        "telegram_token": SecretStr(SANDBOX_TELEGRAM_TOKEN),
        "telegram_api_base": sandbox.base_url,
        "telegram_agents_chat": agents_chat,
    })


def _telegram_sandbox_banner(base: str, agents_chat: int) -> str:
    return f"""
  SANDBOX MODE (Telegram): no FRONTDESK_TELEGRAM_TOKEN, so the bot talks to the local Telegram
  emulator at {base}. Play a customer:
    curl -s {base}/_sandbox/telegram/messages \\
         -d '{{"chat_id": 42, "from": {{"id": 42, "username": "alice"}}, "text": "Where is my order?"}}'
  The agents' group is chat {agents_chat}; link yourself: frontdesk agents link-telegram EMAIL 7001,
  then press Claim: curl -s {base}/_sandbox/telegram/callback -d '{{"chat_id": {agents_chat},
  "message_id": CARD_ID, "from": {{"id": 7001, "username": "me"}}, "data": "claim:TICKET_ID"}}'
  What the bot sent: curl -s {base}/_sandbox/telegram/sent
"""
