"""Where each event registration was made, so reminders go back to that channel (docs/outbound.md).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

A plain column, no foreign key (see `EventRegistration.conversation_id`): on SQLite a foreign key would
rebuild the table.  Rows from before stay NULL; their reminders use the contact's latest conversation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('event_registrations', sa.Column('conversation_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE event_registrations DROP COLUMN conversation_id')
