"""Every inbound X post records whether it summoned the brand (@mentioned it or quoted one of its posts).

Since 2026-02-23 X accepts the brand's reply only under such a post (self-serve tiers), so the store picks a
public reply's target among them and refuses a reply where there is none, instead of letting X refuse it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: not known (stored before this revision, or a channel without the notion); treated as allowed.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('summons_brand', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('summons_brand')
