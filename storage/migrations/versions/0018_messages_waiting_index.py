"""Index the waiting inbound messages alone, and store outbound messages as handled.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

The worker leases "conversations with an inbound message not yet handled" on every wake.  Without an
index on just those rows, PostgreSQL and SQLite both read every conversation the brand ever had to find
them: with 100,000 past conversations one lease cost 43 ms of PostgreSQL CPU, and grew with the history.

A partial index holds only the waiting messages.  PostgreSQL uses it only if it knows that few rows have
no `handled_at`: outbound messages had none, which made half the table look "waiting" to the planner
(and it went back to reading every conversation).  So outbound messages are now stored with `handled_at`
set when written (storage.models.Message), and this migration sets it on the old ones.  Nothing reads an
outbound message's `handled_at`: every query of the inbox also asks for `direction = 'in'`.

On a large table the UPDATE rewrites every outbound row once: run it in a quiet hour.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# Spelled out, not imported: a migration keeps meaning what it meant when it was written.
_WAITING = "direction = 'in' AND handled_at IS NULL"


def upgrade() -> None:
    op.execute("UPDATE messages SET handled_at = created_at WHERE direction = 'out' AND handled_at IS NULL")
    op.create_index(
        'ix_messages_waiting', 'messages', ['conversation_id', 'id'], unique=False,
        postgresql_where=text(_WAITING), sqlite_where=text(_WAITING),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ANALYZE messages")  # the planner's statistics learn the new handled_at at once


def downgrade() -> None:
    op.drop_index('ix_messages_waiting', table_name='messages')
    # Outbound rows keep their handled_at: harmless to the earlier code, which never read it.
