"""Contacts an agent linked as one person (the same customer on X and on Telegram).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

A plain indexed column, no foreign key (see `Contact.person_id`): on SQLite, adding one would rebuild
`contacts`, which every stored conversation and ticket references.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('contacts', sa.Column('person_id', sa.Integer(), nullable=True))
    op.create_index('ix_contacts_person_id', 'contacts', ['person_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_contacts_person_id', table_name='contacts')
    op.execute('ALTER TABLE contacts DROP COLUMN person_id')
