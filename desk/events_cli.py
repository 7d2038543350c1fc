"""`frontdesk events export KEY`: an event's registrations as CSV, on the configured store (docs/outbound.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from desk.cli import run_on_store
from desk.customers_cli import _write_private
from desk.saved_replies import load_event_catalogue
from frontdesk.core.settings import get_settings
from storage.db import Database
from storage.registrations_export import has_registrations, registrations_csv

app = typer.Typer(no_args_is_help=True)


@app.command("export")
def export(
    key: Annotated[str, typer.Argument(metavar="KEY", help="The event's key in content/events.yml.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the CSV to this file (mode 0600) instead of stdout.")
    ] = None,
) -> None:
    """Print the event's registrations as CSV: one row per registration (cancelled ones too), with the
    customer's channel, handle and name. Cells a spreadsheet would run as formulas are quoted with '."""
    catalogue = load_event_catalogue(get_settings().content_dir / "events.yml")

    async def work(db: Database) -> str | None:
        if key not in catalogue and not await has_registrations(db, key):
            return None
        return await registrations_csv(db, key)

    data = run_on_store(work)
    if data is None:
        known = ", ".join(sorted(catalogue)) or "none"
        typer.secho(f"error: no event {key!r} in the catalogue or the store; known events: {known}", fg="red", err=True)
        raise typer.Exit(1)
    if out is None:
        typer.echo(data, nl=False)
        return
    _write_private(out, data)
    typer.echo(f"wrote {data.count(chr(10)) - 1} registration(s) of {key} to {out}", err=True)
