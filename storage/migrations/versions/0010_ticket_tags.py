"""Ticket tags: words agents and bot rules put on tickets, which queues filter by.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ticket_tags',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('tag', sa.String(length=32), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('ticket_id', 'tag', name='uq_ticket_tags_ticket_tag'),
    )
    op.create_index('ix_ticket_tags_tag', 'ticket_tags', ['tag'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ticket_tags_tag', table_name='ticket_tags')
    op.drop_table('ticket_tags')
