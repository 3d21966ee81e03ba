"""officer accounts (region, bureau, email on web_accounts) and the officer actions they record

Revision ID: 0010_officer_accounts
Revises: 0009_receipt_warnings
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import shortage_watch.store.tables


revision = '0010_officer_accounts'
down_revision = '0009_receipt_warnings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('web_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region_code', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('bureau', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('email', sa.Text(), nullable=True))
    op.create_table('officer_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('distributor_code', sa.String(length=64), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('obligation_id', sa.Integer(), nullable=True),
    sa.Column('done_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['web_accounts.id'], ),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligations.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('officer_actions', schema=None) as batch_op:
        batch_op.create_index('ix_officer_actions_distributor', ['distributor_code', 'done_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_officer_actions_obligation_id'), ['obligation_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('officer_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_officer_actions_obligation_id'))
        batch_op.drop_index('ix_officer_actions_distributor')
    op.drop_table('officer_actions')
    with op.batch_alter_table('web_accounts', schema=None) as batch_op:
        batch_op.drop_column('email')
        batch_op.drop_column('bureau')
        batch_op.drop_column('region_code')
