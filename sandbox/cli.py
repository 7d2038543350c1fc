"""`frontdesk sandbox`: run the local API emulators in the foreground, for demos and manual testing."""

from __future__ import annotations

import asyncio
import contextlib

import typer

from frontdesk.app.event_loop import run_event_loop
from frontdesk.core.settings import (
    SANDBOX_TELEGRAM_TOKEN,
    SANDBOX_X_ACCESS_TOKEN,
    SANDBOX_X_ACCESS_TOKEN_SECRET,
    SANDBOX_X_BEARER_TOKEN,
    SANDBOX_X_CONSUMER_KEY,
    SANDBOX_X_CONSUMER_SECRET,
    get_settings,
)


def banner(base_url: str, brand: str, brand_id: str) -> str:
    """What to paste where: the env for the bot and curl lines for playing the customers."""
    ctl = f"{base_url}/_sandbox"
    json_header = "-H 'Content-Type: application/json'"
    return f"""Frontdesk sandbox running at {base_url}   (Ctrl-C to stop)

X API v2 emulator: {base_url}/2/...   brand account @{brand} (id {brand_id})
  Point the bot at it:
    export FRONTDESK_X_API_BASE={base_url}
  Sandbox credentials (accepted by the emulator, used by the bot when no X keys are set):
    consumer key        {SANDBOX_X_CONSUMER_KEY}
    consumer secret     {SANDBOX_X_CONSUMER_SECRET}
    access token        {SANDBOX_X_ACCESS_TOKEN}
    access token secret {SANDBOX_X_ACCESS_TOKEN_SECRET}
    bearer token        {SANDBOX_X_BEARER_TOKEN}

Play a customer:
  curl -s {json_header} -d '{{"author": "alice", "text": "my order never arrived"}}' {ctl}/mentions
  curl -s {json_header} -d '{{"sender": "alice", "text": "can you help me?"}}' {ctl}/dms
Read the brand's mentions as the bot does (app-only bearer auth):
  curl -s -H 'Authorization: Bearer {SANDBOX_X_BEARER_TOKEN}' '{base_url}/2/users/{brand_id}/mentions?expansions=author_id'
See what the brand posted:
  curl -s {ctl}/sent
Break things:
  curl -s {json_header} -d '{{"status": 503, "count": 3, "path_prefix": "/2/users"}}' {ctl}/faults
  curl -s {json_header} -d '{{"rate_limit_profile": "x", "rate_limit_window_s": 60}}' {ctl}/config
  curl -s -X POST {ctl}/reset

Telegram Bot API emulator: {base_url}/bot<token>/<method>   token {SANDBOX_TELEGRAM_TOKEN}
  Point the bot at it:
    export FRONTDESK_TELEGRAM_API_BASE={base_url}/bot FRONTDESK_TELEGRAM_TOKEN={SANDBOX_TELEGRAM_TOKEN}
  Play a Telegram customer:
    curl -s {json_header} -d '{{"chat_id": 5001, "from": {{"id": 5001, "username": "dana"}}, "text": "hi"}}' {ctl}/telegram/messages
  See what the bot sent:
    curl -s {ctl}/telegram/sent
"""


async def _serve(host: str, port: int, brand: str) -> None:
    from sandbox.server import running_sandbox
    from sandbox.x.state import XConfig

    async with running_sandbox(host, port, x_config=XConfig(brand_username=brand)) as sandbox:
        typer.echo(banner(sandbox.base_url, sandbox.x.brand.username, sandbox.x.brand.id), nl=False)
        await asyncio.Event().wait()


def sandbox_command(
    port: int = typer.Option(
        None, "--port", "-p", help="Port to listen on (default: FRONTDESK_SANDBOX_PORT, 8081)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep loopback unless you mean it."),
    brand: str = typer.Option("frontdesk", help="The brand's X handle in the emulator."),
) -> None:
    """Run the local X and Telegram API emulators in the foreground (for demos and manual tests)."""
    chosen = port if port is not None else get_settings().sandbox_port
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(_serve(host, chosen, brand))
