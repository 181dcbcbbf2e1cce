"""text embeddings: label texts' vectors by model and text hash

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'text_embeddings',
        sa.Column('model_id', sa.String(length=200), nullable=False),
        sa.Column('text_hash', sa.String(length=64), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('model_id', 'text_hash'),
    )


def downgrade() -> None:
    op.drop_table('text_embeddings')
