"""Migrations build the schema from nothing, agree with the models, and guard shared databases."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel
from typer.testing import CliRunner

from storage.db import Database
from storage.errors import SchemaOutOfDate
from storage.migrate import current_revision, head_revision, open_database, upgrade
from storage.search import include_in_autogenerate


async def _diff(db: Database) -> list:
    def _compare(connection):  # type: ignore[no-untyped-def]
        opts = {"compare_type": True, "include_object": include_in_autogenerate}
        context = MigrationContext.configure(connection, opts=opts)
        return compare_metadata(context, SQLModel.metadata)

    async with db.engine.connect() as connection:
        return await connection.run_sync(_compare)


@pytest.fixture
async def empty_db(database_url: str):  # type: ignore[no-untyped-def]
    """A brand-new, never-migrated database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if database_url.startswith("sqlite"):
        import tempfile

        path = f"{tempfile.mkdtemp()}/empty.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        yield db
        await db.dispose()
        return
    schema = f"s_{uuid.uuid4().hex[:10]}"
    admin = Database(database_url)
    async with admin.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    db = Database(database_url, connect_args={"server_settings": {"search_path": schema}})
    yield db
    await db.dispose()
    async with admin.engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    await admin.dispose()


async def test_upgrade_from_empty_to_head_and_models_match(empty_db: Database) -> None:
    assert await current_revision(empty_db) is None
    await upgrade(empty_db)
    assert await current_revision(empty_db) == head_revision()
    assert await _diff(empty_db) == []
    await upgrade(empty_db)  # running it again changes nothing
    assert await current_revision(empty_db) == head_revision()


async def test_0018_stores_old_outbound_messages_as_handled_and_leaves_waiting_ones(empty_db: Database) -> None:
    """Rows written before 0018 (outbound without handled_at) are brought in line; waiting inbound stay waiting."""
    await upgrade(empty_db, "0017")
    async with empty_db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO contacts (id, channel, platform_user_id, handle, display_name, created_at) "
            "VALUES (1, 'x', '42', 'alice', 'Alice', '2026-01-01 00:00:00')")
        await conn.exec_driver_sql(
            "INSERT INTO conversations (id, contact_id, channel, kind, platform_ref, status, bot_state, created_at, "
            "updated_at) VALUES (1, 1, 'x', 'dm', '42', 'bot', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
        for id_, direction, author in ((1, "in", "customer"), (2, "out", "bot")):
            await conn.exec_driver_sql(
                "INSERT INTO messages (id, conversation_id, channel, direction, author, kind, text, entities, "
                f"created_at) VALUES ({id_}, 1, 'x', '{direction}', '{author}', 'message', 'hi', '[]', "
                "'2026-01-01 00:00:00')")
    await upgrade(empty_db)
    async with empty_db.engine.connect() as conn:
        rows = dict((await conn.exec_driver_sql("SELECT id, handled_at FROM messages ORDER BY id")).all())
    assert rows[1] is None  # the customer's message still waits for the bot
    assert rows[2] is not None  # the bot's answer is stored handled, as new ones are


async def test_a_shared_database_out_of_date_refuses_to_start_and_names_the_fix(
    empty_db: Database, database_url: str
) -> None:
    with pytest.raises(SchemaOutOfDate, match="run `frontdesk db upgrade`"):
        # auto_upgrade=False is what PostgreSQL gets by default; the embedded SQLite file upgrades itself.
        from storage.migrate import ensure_schema

        await ensure_schema(empty_db, auto_upgrade=False)


async def test_the_embedded_sqlite_file_is_migrated_on_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()


def test_db_cli_upgrades_and_reports(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from frontdesk.app.cli import app
    from frontdesk.core.settings import get_settings

    monkeypatch.setenv("FRONTDESK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 1 and "out of date: run `frontdesk db upgrade`" in before.output
    done = runner.invoke(app, ["db", "upgrade"])
    assert done.exit_code == 0, done.output
    assert f"(empty) -> {head_revision()}" in done.output
    after = runner.invoke(app, ["db", "current"])
    assert after.exit_code == 0 and "up to date" in after.output
    get_settings.cache_clear()
