"""Keyset pages of a tenant's jobs: every job once, newest first, ties on created_at included."""

from __future__ import annotations

import datetime as dt

from labelwise.models import jobs, tenants
from labelwise.models.tables import Job, utcnow


def job(job_id: str, tenant_id: int, at: dt.datetime) -> Job:
    return Job(id=job_id, tenant_id=tenant_id, tenant_name="acme", label_set_name="x", text="t", created_at=at)


def test_pages_walk_every_job_once_across_equal_created_at(sessions) -> None:  # type: ignore[no-untyped-def]
    same = utcnow() - dt.timedelta(hours=1)
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        for i in range(23):  # 3 groups of equal created_at, straddling page boundaries
            s.add(job(f"job-{i:02d}", t.id, same + dt.timedelta(seconds=i // 8)))
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


def test_pages_walk_every_job_once_while_new_jobs_arrive(sessions) -> None:  # type: ignore[no-untyped-def]
    """Jobs created between two pages are newer than the cursor: no job is skipped or seen twice."""
    start = utcnow() - dt.timedelta(hours=1)

    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        s.add_all(job(f"job-{i:03d}", t.id, start + dt.timedelta(seconds=i // 3)) for i in range(40))
    seen: list[str] = []
    before, arrived = None, 100
    with sessions() as s:
        while True:
            page = jobs.list_jobs(s, tenant_id=t.id, before=before, limit=7)
            seen += [j.id for j in page]
            with sessions.begin() as w:  # a new message between two pages
                w.add(job(f"job-{arrived:03d}", t.id, utcnow()))
            arrived += 1
            if len(page) < 7:
                break
            before = (page[-1].created_at, page[-1].id)
    assert len(seen) == len(set(seen)) == 40
    assert set(seen) == {f"job-{i:03d}" for i in range(40)}


def test_a_page_read_in_chunks_is_the_page_read_at_once(sessions) -> None:  # type: ignore[no-untyped-def]
    """iter_jobs reads a long page a chunk per query, each continuing after the last row read: the same
    jobs in the same order as one query, ties on created_at straddling the chunks included."""
    same = utcnow() - dt.timedelta(hours=1)
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        s.add_all(job(f"job-{i:02d}", t.id, same + dt.timedelta(seconds=i // 7)) for i in range(30))
    with sessions() as s:
        whole = [j.id for j in jobs.iter_jobs(s, tenant_id=t.id, limit=25, chunk=100)]
        chunked = [j.id for j in jobs.iter_jobs(s, tenant_id=t.id, limit=25, chunk=4)]
        rest = [j.id for j in jobs.iter_jobs(s, tenant_id=t.id, limit=100, chunk=3)]
    expected = sorted((f"job-{i:02d}" for i in range(30)), key=lambda j: (int(j[4:]) // 7, j), reverse=True)
    assert whole == chunked == expected[:25]
    assert rest == expected
