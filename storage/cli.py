"""`frontdesk db …`: the schema, on the database FRONTDESK_DATABASE_URL names (SQLite file by default)."""

from __future__ import annotations

import asyncio

import typer

from frontdesk.core.settings import get_settings
from storage.db import Database
from storage.migrate import current_revision, head_revision
from storage.migrate import upgrade as upgrade_schema

app = typer.Typer(no_args_is_help=True)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision (default: the newest).")) -> None:
    """Bring the database schema up to date (safe to run repeatedly)."""
    url = get_settings().effective_database_url

    async def _run() -> tuple[str | None, str | None]:
        db = Database(url)
        try:
            before = await current_revision(db)
            await upgrade_schema(db, revision)
            return before, await current_revision(db)
        finally:
            await db.dispose()

    before, after = asyncio.run(_run())
    typer.echo(f"{_redacted(url)}: {before or '(empty)'} -> {after}")


@app.command()
def current() -> None:
    """Show the schema revision of the database and whether it is up to date."""
    url = get_settings().effective_database_url

    async def _run() -> str | None:
        db = Database(url)
        try:
            return await current_revision(db)
        finally:
            await db.dispose()

    rev, head = asyncio.run(_run()), head_revision()
    state = "up to date" if rev == head else "out of date: run `frontdesk db upgrade`"
    typer.echo(f"{_redacted(url)}: revision {rev or '(empty)'}, newest {head} ({state})")
    if rev != head:
        raise typer.Exit(1)
