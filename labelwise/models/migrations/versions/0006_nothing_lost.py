"""nothing lost: publish bookkeeping, duplicate keys, aliases, leases

- jobs.enqueued_at: when the job's message was last published (NULL: not yet; the reconciler publishes it)
- jobs.duplicate_of / job_aliases: a message repeating another's idempotency key is an alias of that job
  (same body) or a failed job of its own (another body); the key is unique among jobs that own it
- jobs.classifications: how many times a result was stored (the no-loss benchmark counts repeats)
- deliveries.enqueued_at / leased_until: last publish, and an attempt in progress
- leases: one row per periodic duty (the reconciler), held by one process at a time

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN_JOB = "status IN ('queued', 'running')"
OPEN_DELIVERY = "status IN ('pending', 'retrying')"
KEY_OWNER = "duplicate_of IS NULL"


def upgrade() -> None:
    with op.batch_alter_table(
        "jobs", naming_convention={"uq": "uq_%(table_name)s_%(column_0_N_name)s"}, schema=None
    ) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("classifications", sa.Integer(), nullable=False, server_default="0"))
        if op.get_bind().dialect.name == "sqlite":
            batch_op.drop_constraint("uq_jobs_tenant_id_idempotency_key", type_="unique")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("jobs_tenant_id_idempotency_key_key", "jobs", type_="unique")
    op.create_index(
        "uq_jobs_tenant_key",
        "jobs",
        ["tenant_id", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text(KEY_OWNER),
        postgresql_where=sa.text(KEY_OWNER),
    )
    op.create_index(
        "ix_jobs_open", "jobs", ["status", "created_at"], sqlite_where=sa.text(OPEN_JOB), postgresql_where=sa.text(OPEN_JOB)
    )
    op.execute("UPDATE jobs SET enqueued_at = created_at")  # published before this version
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_deliveries_open",
        "deliveries",
        ["status", "next_attempt_at"],
        sqlite_where=sa.text(OPEN_DELIVERY),
        postgresql_where=sa.text(OPEN_DELIVERY),
    )
    op.create_table(
        "job_aliases",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("ix_job_aliases_job", "job_aliases", ["job_id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_job_aliases_job", table_name="job_aliases")
    op.drop_table("job_aliases")
    op.drop_index("ix_deliveries_open", table_name="deliveries")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("leased_until")
        batch_op.drop_column("enqueued_at")
    op.drop_index("ix_jobs_open", table_name="jobs")
    op.drop_index("uq_jobs_tenant_key", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_jobs_tenant_id_idempotency_key", ["tenant_id", "idempotency_key"])
        batch_op.drop_column("classifications")
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("enqueued_at")
