"""installation: a random id per ledger, used in every Message-ID and thread root

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
import secrets

from alembic import op
import sqlalchemy as sa
import shortage_watch.store.tables
from shortage_watch.clock import utc_now


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('installation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('installation_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # A ledger upgraded from 0001 gets its id here too: its old mail used the bare
    # ids, so from now on its Message-IDs cannot collide with them either.
    op.bulk_insert(table, [{"id": 1, "installation_id": secrets.token_hex(8), "created_at": utc_now()}])


def downgrade() -> None:
    op.drop_table('installation')
