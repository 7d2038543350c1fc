"""Mount the Telegram emulator on an aiohttp app, or serve it alone on a port.

Point a bot at it with::

    ApplicationBuilder().token(SANDBOX_TELEGRAM_TOKEN)
        .base_url("http://127.0.0.1:PORT/bot").base_file_url("http://127.0.0.1:PORT/file/bot")

The Bot API (``api.py``) and the sandbox's control API under ``/_sandbox/telegram/`` (``control.py``) both
drive one :class:`TelegramEmulator` (``emulator.py``).  See docs/sandbox-telegram.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from frontdesk.core.settings import SANDBOX_TELEGRAM_TOKEN
from sandbox.telegram.api import add_bot_api_routes
from sandbox.telegram.control import add_control_routes
from sandbox.telegram.emulator import CONTROL_PREFIX, TelegramEmulator

__all__ = [
    "CONTROL_PREFIX",
    "TELEGRAM_EMULATOR_KEY",
    "RunningTelegramSandbox",
    "TelegramEmulator",
    "add_telegram_routes",
    "build_telegram_app",
    "main",
    "run_telegram_sandbox",
]

TELEGRAM_EMULATOR_KEY: web.AppKey[TelegramEmulator] = web.AppKey("telegram_emulator")


def add_telegram_routes(app: web.Application, *, token: str = SANDBOX_TELEGRAM_TOKEN,
                        bot_username: str = "frontdesk_bot") -> TelegramEmulator:
    """Mount the Telegram emulator (Bot API + control API) on ``app`` and return it.

    The webhook deliverer starts with the app and stops with it; long polls in flight are released on
    shutdown so the server stops at once.  The emulator is also reachable as ``app[TELEGRAM_EMULATOR_KEY]``.
    """
    emulator = TelegramEmulator(token=token, bot_username=bot_username)
    add_bot_api_routes(app, emulator)
    add_control_routes(app, emulator)
    app[TELEGRAM_EMULATOR_KEY] = emulator

    async def on_startup(_: web.Application) -> None:
        emulator.state.closing = False
        emulator.webhooks.start()

    async def on_shutdown(_: web.Application) -> None:
        emulator.state.close()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.webhooks.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return emulator


def build_telegram_app(*, token: str = SANDBOX_TELEGRAM_TOKEN, bot_username: str = "frontdesk_bot") -> web.Application:
    """An aiohttp app serving only the Telegram emulator (the emulator is ``app[TELEGRAM_EMULATOR_KEY]``)."""
    app = web.Application()
    add_telegram_routes(app, token=token, bot_username=bot_username)
    return app


@dataclass
class RunningTelegramSandbox:
    """A started standalone emulator: where it listens and the emulator itself."""

    url: str
    emulator: TelegramEmulator

    @property
    def token(self) -> str:
        return self.emulator.token

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    @property
    def control_url(self) -> str:
        return f"{self.url}{CONTROL_PREFIX}"


@contextlib.asynccontextmanager
async def run_telegram_sandbox(host: str = "127.0.0.1", port: int = 0, *, token: str = SANDBOX_TELEGRAM_TOKEN,
                               bot_username: str = "frontdesk_bot") -> AsyncIterator[RunningTelegramSandbox]:
    """Serve the emulator alone on ``host:port`` (0 = a free port) for the duration of the block."""
    app = build_telegram_app(token=token, bot_username=bot_username)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    try:
        yield RunningTelegramSandbox(url=f"http://{bound_host}:{bound_port}", emulator=app[TELEGRAM_EMULATOR_KEY])
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """``python -m sandbox.telegram.app --port 8082``: the Telegram emulator alone, until Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--token", default=SANDBOX_TELEGRAM_TOKEN)
    parser.add_argument("--bot-username", default="frontdesk_bot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    async def serve() -> None:
        async with run_telegram_sandbox(args.host, args.port, token=args.token,
                                        bot_username=args.bot_username) as sandbox:
            print(f"Telegram sandbox on {sandbox.url}  base_url={sandbox.base_url}  token={sandbox.token}")
            print(f"control API: {sandbox.control_url}/messages, /callback, /sent, /faults, /reset")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
