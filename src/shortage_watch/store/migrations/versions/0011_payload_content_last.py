"""raw_payloads.content last on SQLite: a payload is archived as a zeroblob, then written in pieces

Revision ID: 0011_payload_content_last
Revises: 0010_officer_accounts
Create Date: 2026-12-01
"""
from alembic import op


revision = '0011_payload_content_last'
down_revision = '0010_officer_accounts'
branch_labels = None
depends_on = None

# SQLite keeps a zeroblob as a count of zeros only in the last column of a row; anywhere else the
# insert builds the whole row, zeros and all, in memory, and `archive_payload` would gain nothing.
# PostgreSQL has no zeroblob; it takes the bytes in pieces by COPY, whatever the column's place,
# so its tables keep their order (rewriting raw_payloads there would buy nothing).
CONTENT_LAST = ('id', 'sha256', 'size', 'first_seen_at', 'content')
CONTENT_FOURTH = ('id', 'sha256', 'size', 'content', 'first_seen_at')


def _reorder_on_sqlite(order: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    # Copies the rows (ids kept) into a new table in this order; raw_receipts names the table, not
    # its columns' places, and env.py turns foreign keys off while SQLite drops the old table.
    with op.batch_alter_table('raw_payloads', schema=None, recreate='always',
                              partial_reordering=[order]):
        pass


def upgrade() -> None:
    _reorder_on_sqlite(CONTENT_LAST)


def downgrade() -> None:
    _reorder_on_sqlite(CONTENT_FOURTH)
