"""index raw_receipts by status and arrival: the sender asks each tick which files are still being stored

Revision ID: 0012_receipt_status_index
Revises: 0011_payload_content_last
Create Date: 2026-12-02
"""
from alembic import op


revision = '0012_receipt_status_index'
down_revision = '0011_payload_content_last'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_raw_receipts_status_received', ['status', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('raw_receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_raw_receipts_status_received')
