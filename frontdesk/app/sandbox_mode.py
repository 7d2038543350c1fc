"""Sandbox mode: without real credentials, the bot talks to the local X and Telegram emulators.

`x_api_base` decides where X is: the real X API (credentials set), a running emulator
(FRONTDESK_X_API_BASE), or the emulators started here in-process on FRONTDESK_SANDBOX_PORT (only a role
that may start them: `frontdesk run`).  `telegram_settings` points Telegram at the same in-process
emulator when no FRONTDESK_TELEGRAM_TOKEN is set.  Both announce it loudly, with curl lines to play a
customer, so nobody mistakes the sandbox for production (docs/sandbox.md).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Callable

from frontdesk.app.errors import RunError
from frontdesk.core.settings import Settings

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox

Say = Callable[[str], None]


async def x_api_base(
    stack: AsyncExitStack, settings: Settings, say: Say, *, may_start_sandbox: bool, http_url: str
) -> tuple[Settings, RunningSandbox | None]:
    """The settings X is reached with, and the in-process emulators when they were started here.

    The emulators stop when `stack` unwinds.
    """
    if settings.has_x_credentials:
        say("frontdesk: X credentials configured: talking to the real X API" +
            (f" via {settings.x_api_base}" if settings.x_api_base else ""))
        return settings, None
    sandbox: RunningSandbox | None = None
    if settings.x_api_base:
        base = settings.x_api_base.rstrip("/")
    elif not may_start_sandbox:
        raise RunError(
            "no X credentials and no FRONTDESK_X_API_BASE: `frontdesk worker` does not start an emulator; "
            "set the X credentials, or FRONTDESK_X_API_BASE to the sandbox of a running `frontdesk run`"
        )
    else:
        from sandbox.server import running_sandbox

        try:
            sandbox = await stack.enter_async_context(running_sandbox("127.0.0.1", settings.sandbox_port))
        except OSError as exc:
            raise RunError(
                f"sandbox mode: cannot start the X emulator on 127.0.0.1:{settings.sandbox_port} ({exc}); "
                "set FRONTDESK_SANDBOX_PORT to a free port, or FRONTDESK_X_API_BASE to a running `frontdesk sandbox`"
            ) from None
        base = sandbox.base_url
    say(x_banner(base, http_url))
    return settings.model_copy(update={"x_api_base": base}), sandbox


def telegram_settings(settings: Settings, sandbox: RunningSandbox, say: Say) -> Settings:
    """Telegram on the in-process emulator: its token, its base URL, and an agents' group registered."""
    from pydantic import SecretStr

    from frontdesk.core.settings import SANDBOX_TELEGRAM_AGENTS_CHAT, SANDBOX_TELEGRAM_TOKEN

    agents_chat = settings.telegram_agents_chat or SANDBOX_TELEGRAM_AGENTS_CHAT
    sandbox.telegram.add_chat(chat_id=agents_chat, chat_type="supergroup", title="Frontdesk agents (sandbox)")
    say(telegram_banner(sandbox.base_url, agents_chat))
    return settings.model_copy(update={
        "telegram_token": SecretStr(SANDBOX_TELEGRAM_TOKEN),
        "telegram_api_base": sandbox.base_url,
        "telegram_agents_chat": agents_chat,
    })


def x_banner(base: str, http_url: str) -> str:
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


def telegram_banner(base: str, agents_chat: int) -> str:
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
