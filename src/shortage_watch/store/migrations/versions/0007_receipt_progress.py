"""receipts: chunk progress, where an inbox file was moved, why it could not be moved

Revision ID: 0007_receipt_progress
Revises: 0006_silences
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_receipt_progress'
down_revision = '0006_silences'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rows_done', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('moved_to', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('move_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('raw_receipts', schema=None) as batch_op:
        batch_op.drop_column('move_error')
        batch_op.drop_column('moved_to')
        batch_op.drop_column('rows_done')
