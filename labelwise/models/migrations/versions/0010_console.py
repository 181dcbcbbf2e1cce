"""console: sessions, drafts, previews, evaluations; who made each label-set version

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('label_set_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by', sa.String(length=100), nullable=True))
    op.create_table(
        'console_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_console_sessions_tenant_id', 'console_sessions', ['tenant_id'])
    op.create_table(
        'console_drafts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('document', JSONType, nullable=False),
        sa.Column('base_version', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'name'),
    )
    op.create_table(
        'previews',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('label_set', sa.String(length=64), nullable=True),
        sa.Column('document', JSONType, nullable=True),
        sa.Column('texts', JSONType, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('result', JSONType, nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_previews_tenant_created', 'previews', ['tenant_id', 'created_at'])
    op.create_table(
        'evaluations',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('label_set', sa.String(length=64), nullable=False),
        sa.Column('document', JSONType, nullable=True),
        sa.Column('current_version', sa.Integer(), nullable=True),
        sa.Column('current_document', JSONType, nullable=True),
        sa.Column('rows', JSONType, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('result', JSONType, nullable=True),
        sa.Column('figure_draft', sa.LargeBinary(), nullable=True),
        sa.Column('figure_current', sa.LargeBinary(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_evaluations_tenant_created', 'evaluations', ['tenant_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_evaluations_tenant_created', table_name='evaluations')
    op.drop_table('evaluations')
    op.drop_index('ix_previews_tenant_created', table_name='previews')
    op.drop_table('previews')
    op.drop_table('console_drafts')
    op.drop_index('ix_console_sessions_tenant_id', table_name='console_sessions')
    op.drop_table('console_sessions')
    with op.batch_alter_table('label_set_versions', schema=None) as batch_op:
        batch_op.drop_column('created_by')
