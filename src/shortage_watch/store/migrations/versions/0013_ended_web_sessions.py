"""ended_web_sessions: a session cookie ended by logging out opens nothing, while the account's other sessions go on

Revision ID: 0013_ended_web_sessions
Revises: 0012_receipt_status_index
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import shortage_watch.store.tables


revision = '0013_ended_web_sessions'
down_revision = '0012_receipt_status_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ended_web_sessions',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('ended_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['web_accounts.id'], ),
    sa.PrimaryKeyConstraint('session_id')
    )
    with op.batch_alter_table('ended_web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ended_web_sessions_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ended_web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ended_web_sessions_expires_at'))
    op.drop_table('ended_web_sessions')
