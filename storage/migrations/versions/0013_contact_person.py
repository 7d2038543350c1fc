"""Contacts an agent linked as one person (the same customer on X and on Telegram).

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

_FK = 'fk_contacts_person_id_contacts'


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_contacts_person_id'), ['person_id'], unique=False)
        batch_op.create_foreign_key(_FK, 'contacts', ['person_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_contacts_person_id'))
        batch_op.drop_column('person_id')
