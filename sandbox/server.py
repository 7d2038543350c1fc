"""The sandbox HTTP server: one aiohttp app hosting the local API emulators, on 127.0.0.1.

Used three ways: by tests (``async with running_sandbox() as sb``), by ``frontdesk run`` in sandbox mode,
and in the foreground by ``frontdesk sandbox``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.telegram.app import TELEGRAM_EMULATOR_KEY, TelegramEmulator, add_telegram_routes
from sandbox.x.app import X_STATE, X_WEBHOOKS, add_x_routes
from sandbox.x.state import XConfig, XState


def build_sandbox_app(*, x_config: XConfig | None = None, x_state: XState | None = None) -> web.Application:
    """An app with every emulator mounted; their states are reachable as ``app[X_STATE]`` etc."""
    app = web.Application()
    add_x_routes(app, state=x_state, config=x_config)
    # The Bot API lives under /bot<token>/ and its controls under /_sandbox/telegram/: no clash with X.
    add_telegram_routes(app)
    return app


@dataclass
class RunningSandbox:
    """A sandbox listening on a real port: ``base_url`` (no trailing slash), ``port``, ``x`` (its XState),
    ``telegram`` (the Telegram emulator; python-telegram-bot's base_url is ``telegram_base_url``)."""

    base_url: str
    host: str
    port: int
    x: XState
    telegram: TelegramEmulator
    app: web.Application
    extra: dict[str, Any]

    @property
    def telegram_base_url(self) -> str:
        return f"{self.base_url}/bot"

    @property
    def telegram_base_file_url(self) -> str:
        return f"{self.base_url}/file/bot"

    async def drain_webhooks(self) -> None:
        """Wait until every webhook delivery queued so far has been attempted."""
        await self.app[X_WEBHOOKS].drain()


@asynccontextmanager
async def running_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    x_config: XConfig | None = None,
    x_state: XState | None = None,
) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox on ``host:port`` (0: a free port) for the duration of the ``async with``."""
    app = build_sandbox_app(x_config=x_config, x_state=x_state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound_port = _bound_port(runner, port)
        yield RunningSandbox(
            base_url=f"http://{host}:{bound_port}",
            host=host,
            port=bound_port,
            x=app[X_STATE],
            telegram=app[TELEGRAM_EMULATOR_KEY],
            app=app,
            extra={},
        )
    finally:
        await runner.cleanup()


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
