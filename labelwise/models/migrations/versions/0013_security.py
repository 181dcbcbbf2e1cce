"""security: integrations.inbound_key routes a Slack event without ?integration= to exactly one integration

Revision ID: 0013
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('integrations') as batch:
        batch.add_column(sa.Column('inbound_key', sa.String(length=200), nullable=True))
    op.create_index('ix_integrations_inbound_key', 'integrations', ['inbound_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_integrations_inbound_key', table_name='integrations')
    with op.batch_alter_table('integrations') as batch:
        batch.drop_column('inbound_key')
