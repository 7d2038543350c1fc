"""Listening: public X posts found by the brand's listening rules (recent search), classified, and their audit trail.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'listening_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform_post_id', sa.String(length=64), nullable=False),
        sa.Column('conversation_ref', sa.String(length=64), nullable=False),
        sa.Column('rule', sa.String(length=32), nullable=False),
        sa.Column('author_id', sa.String(length=64), nullable=False),
        sa.Column('author_handle', sa.String(length=128), nullable=False),
        sa.Column('author_name', sa.String(length=256), nullable=False),
        sa.Column('author_accepts_dms', sa.Boolean(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('category', sa.String(length=16), nullable=True),
        sa.Column('intent', sa.String(length=64), nullable=True),
        sa.Column('confidence', sa.Float(), nullable=True),
        sa.Column('sentiment', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('addressed_brand', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('platform_post_id'),
    )
    op.create_index('ix_listening_items_rule_posted', 'listening_items', ['rule', 'posted_at'], unique=False)
    op.create_index('ix_listening_items_status', 'listening_items', ['status', 'id'], unique=False)
    op.create_index('ix_listening_items_sentiment', 'listening_items', ['sentiment'], unique=False)
    op.create_table(
        'listening_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id']),
        sa.ForeignKeyConstraint(['item_id'], ['listening_items.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_listening_events_item_id', 'listening_events', ['item_id'], unique=False)


def downgrade() -> None:
    op.drop_table('listening_events')
    op.drop_table('listening_items')
