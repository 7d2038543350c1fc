"""Schema migrations (Alembic), run from code so that `frontdesk db upgrade` and start-up share one path.

The embedded SQLite default is upgraded automatically on start: nobody else uses that file.  A shared
PostgreSQL is never changed behind the operator's back: a process that finds it out of date refuses to
start and names the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.errors import SchemaOutOfDate

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def current_revision(db: Database) -> str | None:
    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade(db: Database, revision: str = "head") -> None:
    def _upgrade(connection: Connection) -> None:
        config = alembic_config(db.url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def ensure_schema(db: Database, *, auto_upgrade: bool) -> None:
    """Make sure the schema is at head: upgrade it (embedded SQLite) or refuse to go on (shared databases)."""
    head = head_revision()
    current = await current_revision(db)
    if current == head:
        return
    if auto_upgrade:
        await upgrade(db)
        return
    raise SchemaOutOfDate(current, head)


async def open_database(url: str, *, auto_upgrade: bool | None = None, **engine_kwargs: Any) -> Database:
    """Connect and check the schema.  By default only SQLite is upgraded automatically."""
    db = Database(url, **engine_kwargs)
    try:
        await ensure_schema(db, auto_upgrade=db.dialect == "sqlite" if auto_upgrade is None else auto_upgrade)
    except BaseException:
        await db.dispose()
        raise
    return db
