"""Every inbound message names its author (a contact): a stranger in a customer's thread is not the customer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


_FK = 'fk_messages_contact_id_contacts'

# Before this revision a message's author was always taken to be its conversation's customer: that is the
# best anyone can say about the messages already stored, so they keep it (the same statement on SQLite
# and PostgreSQL).
_BACKFILL = """
UPDATE messages
SET contact_id = (
    SELECT conversations.contact_id FROM conversations WHERE conversations.id = messages.conversation_id
)
WHERE direction = 'in' AND contact_id IS NULL
"""


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.create_foreign_key(_FK, 'contacts', ['contact_id'], ['id'])
    op.execute(_BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_messages_contact_id'))
        batch_op.drop_column('contact_id')
