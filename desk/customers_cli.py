"""`frontdesk customers …`: a person's data exported or erased, and retention, on the configured store.

A person is named by their handle (`alice`, `@alice`) or their platform user id; every contact that
matches, on X and Telegram, is included unless `--channel` narrows it.  See docs/privacy.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from desk.cli import run_on_store
from frontdesk.core.settings import get_settings
from storage.actions.privacy import Erasure, erase_contacts, erase_expired
from storage.db import Database
from storage.models import Channel, Contact
from storage.personal_data import export_personal_data, find_contacts

app = typer.Typer(no_args_is_help=True)

WhoArgument = Annotated[
    str, typer.Argument(metavar="HANDLE", help="The person's handle (with or without @) or platform user id.")
]
ChannelOption = Annotated[
    Channel | None,
    typer.Option("--channel", help="Only this channel's contacts (a handle may exist on both)."),
]


async def _matching(db: Database, who: str, channel: Channel | None) -> list[Contact]:
    contacts = await find_contacts(db, who, channel=channel)
    if not contacts:
        where = f" on {channel.value}" if channel else ""
        typer.secho(f"error: no contact with the handle or user id {who!r}{where}", fg="red", err=True)
        raise typer.Exit(1)
    return contacts


def _describe(contact: Contact) -> str:
    handle = f"@{contact.handle}" if contact.handle else ""
    names = " ".join(part for part in (handle, contact.display_name) if part)
    who = f"{contact.channel.value} user {contact.platform_user_id} {names}".rstrip()
    return f"{who} (contact {contact.id})"


@app.command("export")
def export(
    who: WhoArgument,
    channel: ChannelOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON to this file (mode 0600) instead of stdout.")
    ] = None,
) -> None:
    """Print everything stored about a person as JSON: contacts, conversations, messages, tickets and
    their notes and audit trail, leads, event registrations, intent corrections."""

    async def work(db: Database) -> dict[str, Any]:
        return await export_personal_data(db, await _matching(db, who, channel))

    data = json.dumps(run_on_store(work), ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(data, nl=False)
        return
    _write_private(out, data)
    typer.echo(f"wrote the data of {who} to {out}", err=True)


def _write_private(path: Path, data: str) -> None:
    """Readable by the operator only: the file is a copy of someone's personal data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)
    tmp.replace(path)


@app.command("erase")
def erase(
    who: WhoArgument,
    channel: ChannelOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (scripts).")] = False,
) -> None:
    """Erase a person's personal data: message texts, tickets' text, leads, registrations, corrections,
    names (replaced by `erased-<id>`); unsent replies to them are cancelled.  Cannot be undone."""

    async def work(db: Database) -> Erasure:
        contacts = await _matching(db, who, channel)
        typer.echo("to erase:\n" + "\n".join(f"  {_describe(c)}" for c in contacts))
        question = f"Erase the data of {len(contacts)} contact(s)? This cannot be undone"
        if not yes and not typer.confirm(question):
            raise typer.Abort()
        return await erase_contacts(db, [c.id for c in contacts if c.id is not None], actor="cli")

    erased = run_on_store(work)
    typer.echo(f"erased: {erased.describe()}")


@app.command("purge-expired")
def purge_expired(
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Default: FRONTDESK_RETENTION_DAYS.")
    ] = None,
) -> None:
    """Erase what was finished more than FRONTDESK_RETENTION_DAYS days ago, now (workers also do it every
    FRONTDESK_RETENTION_INTERVAL_S seconds)."""
    days = days or get_settings().retention_days
    if not days:
        typer.secho(
            "error: FRONTDESK_RETENTION_DAYS is 0 (keep everything): set it, or pass --days N",
            fg="red", err=True,
        )
        raise typer.Exit(2)
    erased = run_on_store(lambda db: erase_expired(db, older_than_days=days))
    typer.echo(f"erased what was finished more than {days} days ago: {erased.describe()}")
