"""Full-text search over message text: a GIN index on PostgreSQL, an FTS5 table on SQLite.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

PostgreSQL indexes the expression the desk's search queries (`to_tsvector('simple', text)`): no extra
column to keep in step, and an erased message leaves nothing behind.  The 'simple' configuration neither
stems nor drops stop words, so an order number or a handle is found exactly as typed.

SQLite has no expression index for text search; FTS5 keeps its own index ("external content": it stores no
copy of the text, only the index) which three triggers keep in step with `messages`.  unicode61 with
`remove_diacritics 2` matches "cafe" with "café" as PostgreSQL's 'simple' parser does not; the search module
documents that difference.
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


_SQLITE_UP = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5("
    "text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    # Only a change of text touches the index: the worker's handled/delivered marks stay cheap.
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
]
_PG_UP = ["CREATE INDEX ix_messages_text_search ON messages USING GIN (to_tsvector('simple', text))"]
_PG_DOWN = ["DROP INDEX IF EXISTS ix_messages_text_search"]


def upgrade() -> None:
    for statement in _SQLITE_UP if op.get_bind().dialect.name == 'sqlite' else _PG_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _SQLITE_DOWN if op.get_bind().dialect.name == 'sqlite' else _PG_DOWN:
        op.execute(statement)
