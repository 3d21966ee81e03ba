"""dashboard indexes: obligations by state/region/deadline and region/due date, reports by region, notices by region

Revision ID: 0005_dashboard_indexes
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op


revision = '0005_dashboard_indexes'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('obligations', schema=None) as batch_op:
        batch_op.create_index('ix_obligations_state_region_due', ['state', 'region_code', 'due_at'], unique=False)
        batch_op.create_index('ix_obligations_region_due_on', ['region_code', 'due_on', 'state', 'kind', 'due_at'], unique=False)
        batch_op.create_index('ix_obligations_state_region_fulfilled', ['state', 'region_code', 'fulfilled_at'], unique=False)
    with op.batch_alter_table('shortage_reports', schema=None) as batch_op:
        batch_op.create_index('ix_shortage_reports_region_case', ['region_code', 'case_id'], unique=False)
    with op.batch_alter_table('stoppage_notices', schema=None) as batch_op:
        batch_op.create_index('ix_stoppage_notices_region_notified', ['region_code', 'notified_on'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stoppage_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_stoppage_notices_region_notified')
    with op.batch_alter_table('shortage_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_shortage_reports_region_case')
    with op.batch_alter_table('obligations', schema=None) as batch_op:
        batch_op.drop_index('ix_obligations_state_region_fulfilled')
        batch_op.drop_index('ix_obligations_region_due_on')
        batch_op.drop_index('ix_obligations_state_region_due')
