"""Consent to announcements on the contact; announcements and their deliveries.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

The consent columns are plain nullable columns (SQLite adds them without rebuilding `contacts`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('contacts', sa.Column('outreach_opt_in_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('contacts', sa.Column('outreach_opt_out_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'announcements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('audience', sa.String(length=16), nullable=False),
        sa.Column('audience_key', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('sent_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sending_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['agents.id']),
        sa.ForeignKeyConstraint(['sent_by'], ['agents.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_announcements_status', 'announcements', ['status'], unique=False)
    op.create_table(
        'announcement_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('announcement_id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id']),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id']),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('announcement_id', 'contact_id', name='uq_announcement_deliveries_contact'),
        sa.UniqueConstraint('outbox_id'),
    )
    op.create_index('ix_announcement_deliveries_contact_id', 'announcement_deliveries', ['contact_id'], unique=False)
    op.create_index('ix_announcement_deliveries_waiting', 'announcement_deliveries',
                    ['announcement_id', 'status', 'id'], unique=False)
    op.create_index('ix_announcement_deliveries_released', 'announcement_deliveries',
                    ['channel', 'queued_at'], unique=False)


def downgrade() -> None:
    op.drop_table('announcement_deliveries')
    op.drop_index('ix_announcements_status', table_name='announcements')
    op.drop_table('announcements')
    op.execute('ALTER TABLE contacts DROP COLUMN outreach_opt_out_at')
    op.execute('ALTER TABLE contacts DROP COLUMN outreach_opt_in_at')
