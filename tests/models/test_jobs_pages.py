"""Keyset pages of a tenant's jobs: every job once, newest first, ties on created_at included."""

from __future__ import annotations

import datetime as dt

from labelwise.models import jobs, tenants
from labelwise.models.tables import Job, utcnow


def test_pages_walk_every_job_once_across_equal_created_at(sessions) -> None:  # type: ignore[no-untyped-def]
    same = utcnow() - dt.timedelta(hours=1)
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        for i in range(23):  # 3 groups of equal created_at, straddling page boundaries
            s.add(
                Job(
                    id=f"job-{i:02d}",
                    tenant_id=t.id,
                    tenant_name="acme",
                    label_set_name="x",
                    text="t",
                    created_at=same + dt.timedelta(seconds=i // 8),
                )
            )
    seen: list[str] = []
    before = None
    with sessions() as s:
        while True:
            page = jobs.list_jobs(s, tenant_id=t.id, before=before, limit=5)
            seen += [j.id for j in page]
            if len(page) < 5:
                break
            before = (page[-1].created_at, page[-1].id)
    expected = sorted((f"job-{i:02d}" for i in range(23)), key=lambda j: (int(j[4:]) // 8, j), reverse=True)
    assert seen == expected
