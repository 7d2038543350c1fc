"""Automatic assignment: per-queue settings and agents' presence (online, away, last assigned).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'queue_assignment',
        sa.Column('queue', sa.String(length=16), nullable=False),
        sa.Column('auto_assign', sa.Boolean(), nullable=False),
        sa.Column('capacity', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['updated_by'], ['agents.id']),
        sa.PrimaryKeyConstraint('queue'),
    )
    op.create_table(
        'agent_presence',
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('away', sa.Boolean(), nullable=False),
        sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id']),
        sa.PrimaryKeyConstraint('agent_id'),
    )


def downgrade() -> None:
    op.drop_table('agent_presence')
    op.drop_table('queue_assignment')
