"""`frontdesk x webhook register URL | status | remove`: X's Account Activity webhook for the brand.

The calls are in ``bot/channels/x/account_activity.py``; this module reads the settings, builds the
channel's tweepy client and prints what X said.  Exit status: 0 done, 1 X refused (the message says why
and what to change), 2 a URL X would refuse (checked before asking X).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from bot.channels.x.account_activity import (
    AccountActivity,
    AccountActivityError,
    WebhookUrlError,
    check_webhook_url,
)
from bot.channels.x.client import XClientConfigError, close_x_client, make_x_client
from frontdesk.core.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, help="The X channel: its webhook with X's Account Activity API.")
webhook_app = typer.Typer(no_args_is_help=True, help="Register, check and remove the brand's X webhook.")
app.add_typer(webhook_app, name="webhook")

T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"frontdesk x webhook: {message}", err=True)
    return typer.Exit(1)


def _with_x(work: Callable[[AccountActivity], Awaitable[T]]) -> T:
    settings = get_settings()
    try:
        client = make_x_client(settings)
    except XClientConfigError as exc:
        raise _fail(str(exc)) from None

    async def _run() -> T:
        try:
            return await work(AccountActivity(client))
        finally:
            await close_x_client(client)

    try:
        return asyncio.run(_run())
    except AccountActivityError as exc:
        raise _fail(str(exc)) from None


def _sandbox(settings: Settings) -> bool:
    return bool(settings.x_api_base.strip())


@webhook_app.command("register")
def register(url: str = typer.Argument(..., help="The desk's public URL for X, e.g. https://desk.example.com/webhooks/x")) -> None:
    """Register URL with X (X checks it with a CRC request first) and subscribe the brand's account."""
    settings = get_settings()
    try:
        url = check_webhook_url(url, sandbox=_sandbox(settings))
    except WebhookUrlError as exc:
        raise typer.BadParameter(str(exc), param_hint="URL") from None
    status = _with_x(lambda aa: aa.register(url))
    typer.echo("Registered and subscribed: X now sends the brand's mentions and DMs to the desk.")
    typer.echo(status.describe())
    if not settings.x_webhook_enabled:
        typer.echo("Note: set FRONTDESK_X_WEBHOOK_ENABLED=true on the desk, or X's hourly CRC check will fail.")


@webhook_app.command("status")
def status(
    check: bool = typer.Option(False, "--check", help="Ask X to run its CRC check now (PUT /2/webhooks/:id)."),
) -> None:
    """The app's webhooks: URL, CRC validity, and whether the brand's account is subscribed."""
    found = _with_x(lambda aa: aa.status(check=check))
    if not found:
        typer.echo("No webhook is registered for this app: frontdesk x webhook register https://<desk>/webhooks/x")
        return
    for item in found:
        typer.echo(item.describe())
    if not all(s.valid and s.subscribed for s in found):
        raise typer.Exit(1)


@webhook_app.command("remove")
def remove(
    webhook_id: str = typer.Option(None, "--id", help="Only this webhook (default: every webhook of the app)."),
) -> None:
    """Unsubscribe the brand's account and delete the webhook (Frontdesk falls back to polling X)."""
    removed = _with_x(lambda aa: aa.remove(webhook_id))
    if not removed:
        typer.echo("No webhook was registered; nothing to remove.")
        return
    typer.echo(f"Removed webhook {', '.join(removed)}. Set FRONTDESK_X_WEBHOOK_ENABLED=false so the bot polls X.")
