"""Index the outbox by conversation: leasing looks for a conversation's earlier and later undelivered rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_conversation', 'outbox', ['conversation_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_conversation', table_name='outbox')
