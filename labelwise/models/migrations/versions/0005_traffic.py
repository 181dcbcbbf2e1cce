"""traffic: recent message vectors per label set, and a count of messages seen

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('label_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traffic_seen', sa.Integer(), nullable=False, server_default='0'))
    op.create_table(
        'traffic_vectors',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('label_set_id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.String(length=200), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['label_set_id'], ['label_sets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_traffic_set_model', 'traffic_vectors', ['label_set_id', 'model_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_traffic_set_model', table_name='traffic_vectors')
    op.drop_table('traffic_vectors')
    with op.batch_alter_table('label_sets', schema=None) as batch_op:
        batch_op.drop_column('traffic_seen')
