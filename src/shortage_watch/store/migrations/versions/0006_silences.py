"""silences: officers hold matching mail until a stated end; alerts remember which silence held them

Revision ID: 0006_silences
Revises: 0005_dashboard_indexes
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import shortage_watch.store.tables


revision = '0006_silences'
down_revision = '0005_dashboard_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('silences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=True),
    sa.Column('distributor_code', sa.String(length=64), nullable=True),
    sa.Column('product_code', sa.String(length=64), nullable=True),
    sa.Column('template', sa.String(length=64), nullable=True),
    sa.Column('starts_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expired_by', sa.String(length=128), nullable=True),
    sa.Column('released_at', shortage_watch.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index('ix_silences_released', ['released_at', 'ends_at'], unique=False)
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('silence_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_alerts_silence_id', 'silences', ['silence_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint('fk_alerts_silence_id', type_='foreignkey')
        batch_op.drop_column('silence_id')
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index('ix_silences_released')
    op.drop_table('silences')
