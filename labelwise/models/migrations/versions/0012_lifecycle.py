"""lifecycle: retention and privacy per tenant; a job's text may be gone

- tenants.retention_days: days a job keeps its text and metadata (NULL: LABELWISE_RETENTION_DAYS)
- tenants.privacy: the text of the tenant's messages is never written to SQL
- tenants.purged_before: every finished job created before it has lost its text (the purge's watermark)
- jobs.text nullable: NULL once purged, or never stored (privacy mode)
- deliveries.created_at, inbound_events.created_at indexed: the purge finds what aged out without a scan

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("privacy", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("purged_before", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=True)
    op.create_index("ix_deliveries_created", "deliveries", ["created_at"])
    op.create_index("ix_inbound_events_created", "inbound_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_created", table_name="inbound_events")
    op.drop_index("ix_deliveries_created", table_name="deliveries")
    op.execute("UPDATE jobs SET text = '' WHERE text IS NULL")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=False)
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("purged_before")
        batch_op.drop_column("privacy")
        batch_op.drop_column("retention_days")
