"""X usage per UTC day and item, so the desk's cost estimate survives restarts and counts every worker.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('x_usage_days',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('item', sa.String(length=40), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', 'item')
    )


def downgrade() -> None:
    op.drop_table('x_usage_days')
