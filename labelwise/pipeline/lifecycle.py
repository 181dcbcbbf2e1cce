"""The data lifecycle's use cases: delete a tenant, and the retention purge.

Deleting a tenant takes many short transactions, never one long one: access ends first (tokens and
console sessions), then its jobs go a batch at a time (with their deliveries and aliases), then every
other row of the tenant and the tenant itself in one last transaction. A message for the tenant that
arrives meanwhile makes a job that the last transaction removes; one that arrives after it names an
unknown tenant and fails like any other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise.models import lifecycle, tenants
from labelwise.pipeline.common import database_errors

DELETE_BATCH = 1_000


def delete_tenant(sessions: sessionmaker[Session], name: str, *, batch: int = DELETE_BATCH) -> dict[str, Any]:
    """Delete the tenant ``name`` and every row it owns; ``{"tenant", "deleted": {table: rows}}``.

    Raises NotFoundError for an unknown tenant, DatabaseUnavailableError when the database is down (what
    was deleted stays deleted: run it again to finish)."""
    with database_errors(), sessions.begin() as session:
        tenant = tenants.get_tenant(session, name)
        lifecycle.revoke_access(session, tenant)
    jobs_deleted = 0
    while True:
        with database_errors(), sessions.begin() as session:
            done = lifecycle.delete_jobs_batch(session, tenant, limit=batch)
        jobs_deleted += done
        if done < batch:
            break
    with database_errors(), sessions.begin() as session:
        counts = lifecycle.delete_tenant_rows(session, tenant)
    counts["jobs"] += jobs_deleted
    return {"tenant": name, "deleted": counts}
