"""`frontdesk agents …`: the desk's accounts, on the store FRONTDESK_DATABASE_URL names.

Passwords never go on the command line (where shell history and `ps` would keep them): they come from
a hidden prompt, asked twice, or from standard input with --password-stdin for scripts.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from frontdesk.core.settings import get_settings
from storage import agents as store_agents
from storage.db import Database
from storage.errors import NotFound, StoreError
from storage.migrate import open_database
from storage.models import AgentRole

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")


def run_on_store(work: Callable[[Database], Awaitable[T]], *, not_found_hint: str = "") -> T:
    """Run `work` on the configured store (the embedded SQLite file is created and migrated on first use).

    A store error ends the command with exit code 1 and the error on stderr (a NotFound with the hint).
    """

    async def _main() -> T:
        db = await open_database(get_settings().effective_database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(_main())
    except NotFound as exc:
        typer.secho(f"error: {exc}{not_found_hint}", fg="red", err=True)
        raise typer.Exit(1) from None
    except StoreError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    return run_on_store(work, not_found_hint="; `frontdesk agents list` shows who exists")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            typer.secho("error: --password-stdin got an empty line; pipe the password in", fg="red", err=True)
            raise typer.Exit(2)
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def add(
    email: str = typer.Option(..., "--email", help="The agent's e-mail (their sign-in name)."),
    name: str = typer.Option(..., "--name", help="The name customers' tickets show for this agent."),
    admin: bool = typer.Option(False, "--admin", help="May reassign tickets to other agents."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of standard input."
    ),
) -> None:
    """Create an agent account (the password is asked for twice, hidden)."""
    password = _read_password(password_stdin)
    role = AgentRole.admin if admin else AgentRole.agent
    agent = _run(lambda db: store_agents.create_agent(db, email=email, name=name, password=password, role=role))
    typer.echo(f"added {agent.role.value} {agent.name} <{agent.email}> (id {agent.id})")


@app.command("list")
def list_() -> None:
    """Show every agent: id, e-mail, name, role, whether active, linked Telegram user."""
    agents = _run(store_agents.list_agents)
    if not agents:
        typer.echo("no agents yet: frontdesk agents add --email you@example.com --name 'Your Name' --admin")
        return
    rows = [("ID", "EMAIL", "NAME", "ROLE", "ACTIVE", "TELEGRAM")] + [
        (str(a.id), a.email, a.name, a.role.value, "yes" if a.active else "no", str(a.telegram_user_id or "-"))
        for a in agents
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _sessions(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'}"


@app.command("disable")
def disable(email: str = typer.Argument(..., help="The agent's e-mail.")) -> None:
    """Lock an agent out at once: all their desk sessions and API tokens end; tickets stay as they are."""
    change = _run(lambda db: store_agents.set_active(db, email, False))
    agent = change.agent
    typer.echo(f"disabled {agent.name} <{agent.email}>; ended {_sessions(change.sessions_ended)}")


@app.command("enable")
def enable(email: str = typer.Argument(..., help="The agent's e-mail.")) -> None:
    """Let a disabled agent sign in again (what they held before the disable stays ended)."""
    change = _run(lambda db: store_agents.set_active(db, email, True))
    typer.echo(f"enabled {change.agent.name} <{change.agent.email}>")


@app.command("set-password")
def set_password(
    email: str = typer.Argument(..., help="The agent's e-mail."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the new password from the first line of standard input."
    ),
) -> None:
    """Give an agent a new password (asked for twice, hidden); all their sessions and API tokens end."""
    password = _read_password(password_stdin)
    change = _run(lambda db: store_agents.set_password(db, email, password))
    typer.echo(
        f"changed the password of {change.agent.name} <{change.agent.email}>; "
        f"ended {_sessions(change.sessions_ended)}"
    )


@app.command("end-sessions")
def end_sessions(email: str = typer.Argument(..., help="The agent's e-mail.")) -> None:
    """Sign an agent out everywhere (a lost laptop, a leaked token) without disabling the account."""
    change = _run(lambda db: store_agents.end_sessions(db, email))
    agent = change.agent
    typer.echo(f"signed {agent.name} <{agent.email}> out; ended {_sessions(change.sessions_ended)}")


@app.command("link-telegram")
def link_telegram(
    email: str = typer.Argument(..., help="The agent's e-mail."),
    telegram_user_id: int = typer.Argument(..., help="Their numeric Telegram user id (not the @username)."),
) -> None:
    """Link an agent to their Telegram account, so they can work tickets from the agents' chat."""
    agent = _run(lambda db: store_agents.link_telegram(db, email, telegram_user_id))
    typer.echo(f"linked {agent.name} <{agent.email}> to Telegram user {agent.telegram_user_id}")
