"""Spike alerts and incidents: alerts, incidents, the tickets linked to them and the updates sent.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('intent', sa.String(length=64), nullable=False),
        sa.Column('keywords', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('opened_by', sa.Integer(), nullable=True),
        sa.Column('resolved_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['opened_by'], ['agents.id']),
        sa.ForeignKeyConstraint(['resolved_by'], ['agents.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_incidents_status', 'incidents', ['status'], unique=False)
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=96), nullable=False),
        sa.Column('parent_key', sa.String(length=96), nullable=True),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('baseline', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key', 'window_start', name='uq_alerts_key_window'),
    )
    op.create_index('ix_alerts_created_at', 'alerts', ['created_at'], unique=False)
    op.create_index('ix_alerts_key_created', 'alerts', ['key', 'created_at'], unique=False)
    op.create_index('ix_alerts_parent_created', 'alerts', ['parent_key', 'created_at'], unique=False)
    op.create_table(
        'incident_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('linked_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id']),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id']),
        sa.ForeignKeyConstraint(['linked_by'], ['agents.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('incident_id', 'ticket_id', name='uq_incident_links_ticket'),
    )
    op.create_index('ix_incident_links_incident_id', 'incident_links', ['incident_id'], unique=False)
    op.create_index('ix_incident_links_ticket_id', 'incident_links', ['ticket_id'], unique=False)
    op.create_table(
        'incident_updates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('final', sa.Boolean(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('sent_to', sa.Integer(), nullable=False),
        sa.Column('withheld', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id']),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_incident_updates_incident_id', 'incident_updates', ['incident_id'], unique=False)


def downgrade() -> None:
    op.drop_table('incident_updates')
    op.drop_table('incident_links')
    op.drop_table('alerts')
    op.drop_table('incidents')
