"""raw_receipts.warnings: accepted rows naming a distributor or hospital the directory does not list

Revision ID: 0009_receipt_warnings
Revises: 0008_web_accounts
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_receipt_warnings'
down_revision = '0008_web_accounts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warnings', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('raw_receipts', schema=None) as batch_op:
        batch_op.drop_column('warnings')
