"""The data lifecycle on SQLite and PostgreSQL: a tenant's deletion leaves no row of it in any table."""

from __future__ import annotations

import pytest

from labelwise.errors import NotFoundError
from labelwise.models.tables import Base
from labelwise.pipeline import lifecycle
from tests.lifecycle_data import GLOBAL, owned_rows, populate


def test_the_fixture_tenant_touches_every_table(sessions) -> None:  # type: ignore[no-untyped-def]
    """A table added to the schema must get a row in populate() (and so be covered by the deletion test)."""
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
    with sessions() as s:
        owned = owned_rows(s, doomed)
    missing = {t.name for t in Base.metadata.sorted_tables} - GLOBAL - set(owned)
    assert not missing, f"populate() puts no row of the tenant in {sorted(missing)}"


def test_tenant_delete_leaves_no_row_of_it_in_any_table_and_spares_the_others(sessions) -> None:  # type: ignore[no-untyped-def]
    """Every table of the metadata is scanned after the deletion; the other tenant's rows are all still there."""
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
        kept = populate(s, "kept")
    with sessions() as s:
        kept_before = owned_rows(s, kept)
        assert owned_rows(s, doomed)

    out = lifecycle.delete_tenant(sessions, "doomed", batch=2)  # several job batches

    with sessions() as s:
        assert owned_rows(s, doomed) == {}
        assert owned_rows(s, kept) == kept_before
    assert out["deleted"]["jobs"] == 4 and out["deleted"]["tenants"] == 1 and out["deleted"]["inbound_events"] == 1
    with pytest.raises(NotFoundError):
        lifecycle.delete_tenant(sessions, "doomed")


@pytest.fixture
def cli(sqlite_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """The command line in-process on a migrated SQLite database."""
    import json

    from typer.testing import CliRunner

    from labelwise.cli import app

    env = {"LABELWISE_HOME": str(tmp_path / "home"), "LABELWISE_DATABASE_URL": sqlite_url, "LABELWISE_BROKER_URL": ""}
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> dict:  # type: ignore[type-arg]
        result = runner.invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == code, (result.exit_code, result.output)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    return invoke


_engines: list = []  # type: ignore[type-arg]


@pytest.fixture(autouse=True)
def _dispose_engines():  # type: ignore[no-untyped-def]
    yield
    while _engines:
        _engines.pop().dispose()


def _sessions(url: str):  # type: ignore[no-untyped-def]
    from labelwise.models.db import make_engine, make_session_factory

    engine = make_engine(url)
    _engines.append(engine)
    return make_session_factory(engine)


def test_cli_tenant_delete_needs_yes_then_removes_everything(cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    sessions = _sessions(sqlite_url)
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
    assert cli("tenant", "delete", "doomed", code=1)["error"]["code"] == "invalid_input"
    with sessions() as s:
        assert owned_rows(s, doomed)  # nothing deleted without --yes
    out = cli("tenant", "delete", "doomed", "--yes")
    assert out["tenant"] == "doomed" and out["deleted"]["tenants"] == 1
    with sessions() as s:
        assert owned_rows(s, doomed) == {}
    assert cli("tenant", "delete", "doomed", "--yes", code=1)["error"]["code"] == "not_found"


def test_api_tenant_delete_takes_the_operator_token_only(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No operator token configured: 404; a tenant's own token or a wrong one: 401; the operator's: deleted."""
    from fastapi.testclient import TestClient

    from labelwise.api.app import create_app
    from labelwise.models import tenants
    from labelwise.settings import Settings

    sessions = _sessions(sqlite_url)
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
        _, tenant_token = tenants.create_token(s, tenant_id=doomed["id"])
    base = {"home": tmp_path / "home", "database_url": sqlite_url}
    with TestClient(create_app(Settings(**base))) as client:
        r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with TestClient(create_app(Settings(**base, admin_token="op-secret-123"))) as client:
        for token in (tenant_token, "op-secret-12"):
            r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, r.text
        with sessions() as s:
            assert owned_rows(s, doomed)
        own = {"Authorization": f"Bearer {tenant_token}"}
        assert client.get("/v1/label-sets", headers=own).status_code == 200  # its token's tenant is remembered
        r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": "Bearer op-secret-123"})
        assert r.status_code == 200 and r.json()["deleted"]["tenants"] == 1
        assert client.get("/v1/label-sets", headers=own).status_code == 401  # and forgotten at once
        with sessions() as s:
            assert owned_rows(s, doomed) == {}
        r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": "Bearer op-secret-123"})
        assert r.status_code == 404
        r = client.delete("/v1/admin/tenants/bad%20name", headers={"Authorization": "Bearer op-secret-123"})
        assert r.status_code == 422


def _aged_jobs(sessions, tenant_id: int, *, count: int, age_days: float) -> list[str]:  # type: ignore[no-untyped-def]
    import datetime as dt

    from labelwise.models.tables import Job, utcnow

    created = utcnow() - dt.timedelta(days=age_days)
    ids = [f"aged-{tenant_id}-{age_days}-{i}" for i in range(count)]
    with sessions.begin() as s:
        for i, job_id in enumerate(ids):
            s.add(
                Job(
                    id=job_id,
                    tenant_id=tenant_id,
                    tenant_name="x",
                    label_set_name="support",
                    text=f"secret {i}",
                    metadata_={"customer": i},
                    status="done" if i % 5 else "failed",
                    result={"chosen": ["billing"], "labels": [{"name": "billing", "score": 0.5}]},
                    created_at=created + dt.timedelta(seconds=i % 3),  # ties on created_at across batches
                    finished_at=created,
                )
            )
    return ids


def test_retention_purge_leaves_no_text_older_than_the_limit_and_keeps_results(sessions) -> None:  # type: ignore[no-untyped-def]
    """Default 30 days, a tenant's own 5 days; several batches; results, versions and timestamps stay."""
    import datetime as dt

    from labelwise import pipeline
    from labelwise.models import jobs as jobs_q
    from labelwise.models import lifecycle as lifecycle_q
    from labelwise.models.tables import Delivery, InboundEvent, Preview, Tenant, utcnow

    with sessions.begin() as s:
        a = populate(s, "a")
        b = populate(s, "b")
        s.get(Tenant, b["id"]).retention_days = 5
    old_a = _aged_jobs(sessions, a["id"], count=25, age_days=31)
    kept_a = _aged_jobs(sessions, a["id"], count=5, age_days=10)
    old_b = _aged_jobs(sessions, b["id"], count=25, age_days=6)
    policy = lifecycle.Retention(days=30, batch=7, pause_s=0)

    out = lifecycle.purge(sessions, holder="me", policy=policy)
    assert out is not None and out["texts"] == 25 + 25 + 2  # + each populate()'s 400-day-old job
    assert lifecycle.purge(sessions, holder="other", policy=policy) is None  # the lease is mine

    now = utcnow()
    with sessions() as s:
        assert lifecycle_q.texts_older_than(s, tenant_id=a["id"], before=now - dt.timedelta(days=30)) == 0
        assert lifecycle_q.texts_older_than(s, tenant_id=b["id"], before=now - dt.timedelta(days=5)) == 0
        for job_id in old_a + old_b:
            job = jobs_q.get_job(s, job_id)
            assert job.text is None and job.metadata_ is None
            view = pipeline.job_view(job)
            assert view["chosen"] == ["billing"] and view["created_at"] is not None
        assert all(jobs_q.get_job(s, j).text for j in kept_a)  # 10 days old, inside a's 30
        assert s.query(Delivery).count() == 0 and s.query(InboundEvent).count() == 0  # 400 days old
        assert s.query(Preview).count() == 0
    again = lifecycle.purge(sessions, holder="me", policy=policy)
    assert again == {"texts": 0, "console": 0, "deliveries": 0, "inbound_events": 0}


def test_purge_keeps_the_text_of_a_job_still_queued(sessions) -> None:  # type: ignore[no-untyped-def]
    from labelwise.models import jobs as jobs_q

    with sessions.begin() as s:
        a = populate(s, "a")
    ids = _aged_jobs(sessions, a["id"], count=3, age_days=40)
    with sessions.begin() as s:
        jobs_q.get_job(s, ids[1]).status = "queued"
    lifecycle.purge(sessions, holder="me", policy=lifecycle.Retention(batch=2, pause_s=0))
    with sessions.begin() as s:
        assert jobs_q.get_job(s, ids[1]).text == "secret 1"
        jobs_q.get_job(s, ids[1]).status = "done"
    lifecycle.purge(sessions, holder="me", policy=lifecycle.Retention(batch=2, pause_s=0))
    with sessions() as s:
        assert jobs_q.get_job(s, ids[1]).text is None  # the watermark stopped before it


def test_cli_tenant_data_sets_retention_and_privacy(cli) -> None:  # type: ignore[no-untyped-def]
    cli("tenant", "create", "acme")
    out = cli("tenant", "data", "acme")
    assert (out["retention_days"], out["effective_retention_days"], out["privacy"]) == (None, 30, False)
    out = cli("tenant", "data", "acme", "--retention-days", "7", "--privacy")
    assert (out["retention_days"], out["effective_retention_days"], out["privacy"]) == (7, 7, True)
    out = cli("tenant", "data", "acme", "--default-retention")
    assert (out["retention_days"], out["effective_retention_days"], out["privacy"]) == (None, 30, True)
    assert cli("tenant", "data", "nobody", code=1)["error"]["code"] == "not_found"


def test_api_retention_and_privacy_for_the_operator_and_the_tenant_itself(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from labelwise.api.app import create_app
    from labelwise.models import tenants
    from labelwise.settings import Settings

    sessions = _sessions(sqlite_url)
    with sessions.begin() as s:
        for name in ("acme", "other"):
            tenant = tenants.create_tenant(s, name)
            token = tenants.create_token(s, tenant_id=tenant.id)[1]
    own = {"Authorization": f"Bearer {token}"}  # other's token
    op = {"Authorization": "Bearer op-secret-123"}
    settings = Settings(home=tmp_path / "home", database_url=sqlite_url, admin_token="op-secret-123")
    with TestClient(create_app(settings)) as client:
        r = client.patch("/v1/admin/tenants/acme/data", json={"retention_days": 3}, headers=op)
        assert r.status_code == 200 and r.json()["effective_retention_days"] == 3 and r.json()["privacy"] is False
        r = client.patch("/v1/admin/tenants/acme/data", json={"privacy": True}, headers=op)
        assert r.json()["retention_days"] == 3 and r.json()["privacy"] is True  # left-out field kept
        assert client.get("/v1/admin/tenants/acme/data", headers=own).status_code == 401
        r = client.patch("/v1/tenant/data", json={"retention_days": 0}, headers=own)
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"].endswith("retention_days")
        r = client.patch("/v1/tenant/data", json={"retention_days": 10, "privacy": True}, headers=own)
        assert r.status_code == 200 and r.json()["tenant"] == "other" and r.json()["effective_retention_days"] == 10
        r = client.patch("/v1/tenant/data", json={"retention_days": None}, headers=own)
        assert r.json()["retention_days"] is None and r.json()["effective_retention_days"] == 30
        assert client.get("/v1/tenant/data", headers=own).json()["privacy"] is True
        assert client.get("/v1/admin/tenants/acme/data", headers=op).json()["retention_days"] == 3


def test_reconciler_fails_a_privacy_job_whose_message_never_went_out(sessions) -> None:  # type: ignore[no-untyped-def]
    """Its text exists nowhere: it fails with a clear error instead of going out with no text."""
    import datetime as dt

    from labelwise import pipeline
    from labelwise.messages import parse_message
    from labelwise.models import jobs as jobs_q
    from labelwise.models.tables import Job, Tenant, utcnow
    from labelwise.pipeline import reconciling

    with sessions.begin() as s:
        a = populate(s, "a")
        s.get(Tenant, a["id"]).privacy = True
    msg = parse_message({"tenant": "a", "label_set": "support", "text": "private words"}, max_text_chars=1000)
    with sessions.begin() as s:
        job, _ = pipeline.submit_job(s, msg, job_id="never-published")
        assert job.text is None
        job.created_at = utcnow() - dt.timedelta(minutes=5)
    published: list[Job] = []
    policy = reconciling.Policy(grace_s=1, stuck_after_s=60)
    reconciling.reconcile(sessions, holder="me", policy=policy, publish_job=published.append, publish_delivery=print)
    with sessions() as s:
        failed = jobs_q.get_job(s, "never-published")
        assert failed.status == "failed" and "privacy mode" in (failed.error or "")
    assert published == []


def _cli_on(url: str, home):  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from labelwise.cli import app

    env = {"LABELWISE_HOME": str(home), "LABELWISE_DATABASE_URL": url, "LABELWISE_BROKER_URL": ""}

    def invoke(*args: str, code: int = 0) -> dict:  # type: ignore[type-arg]
        result = CliRunner().invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == code, (result.exit_code, result.output)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    return invoke


def _records(directory) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def,type-arg]
    import json

    from labelwise.pipeline.exporting import FILES

    out = {}
    for kind, name in FILES.items():
        out[kind] = [json.loads(line) for line in (directory / name).read_text().splitlines()]
    return out


def test_export_then_import_into_another_installation_round_trips(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite or PostgreSQL -> a fresh SQLite: the second installation exports the same records."""
    from labelwise.models.db import upgrade

    with _sessions(db_url).begin() as s:
        a = populate(s, "acme")
    first = _cli_on(db_url, tmp_path / "h1")
    out = first("tenant", "export", "acme", "--out", str(tmp_path / "exp"))
    assert out["records"]["job"] == 3 and out["records"]["label_set_version"] == 2
    exported = _records(tmp_path / "exp")
    text = (tmp_path / "exp" / "integrations.jsonl").read_text()
    assert "opaque" not in text and "secrets" not in text  # integrations without secrets
    assert [t["prefix"] for t in exported["token"]] and "token_hash" not in (
        tmp_path / "exp" / "tokens.jsonl"
    ).read_text()
    assert {j["text"] for j in exported["job"]} == {f"text {i} mark-acme" for i in range(3)}

    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    upgrade(other)
    second = _cli_on(other, tmp_path / "h2")
    imported = second("tenant", "import", str(tmp_path / "exp"))
    assert imported["tenant"] == "acme" and imported["token"].startswith("lw_")
    assert second("tenant", "import", str(tmp_path / "exp"), code=1)["error"]["code"] == "conflict"
    second("tenant", "export", "acme", "--out", str(tmp_path / "again"))
    again = _records(tmp_path / "again")
    for kind in ("label_set", "label_set_version", "integration", "job"):
        assert again[kind] == exported[kind], kind
    assert second("labels", "show", "support", "--tenant", "acme")["version"] == 2
    assert a["id"]  # the source is untouched
    assert first("tenant", "export", "acme", "--out", str(tmp_path / "exp"), code=1)["error"]["code"] == "invalid_input"


def test_export_window_and_the_api_stream_import_like_the_directory(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt
    import json

    from fastapi.testclient import TestClient

    from labelwise.api.app import create_app
    from labelwise.models.db import upgrade
    from labelwise.models.tables import utcnow
    from labelwise.settings import Settings

    with _sessions(sqlite_url).begin() as s:
        populate(s, "acme")  # one job 400 days old, two new
    since = (utcnow() - dt.timedelta(days=1)).isoformat()
    settings = Settings(home=tmp_path / "home", database_url=sqlite_url, admin_token="op-secret-123")
    with TestClient(create_app(settings)) as client:
        op = {"Authorization": "Bearer op-secret-123"}
        r = client.get("/v1/admin/tenants/acme/export", params={"since": since}, headers=op)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        records = [json.loads(line) for line in r.text.splitlines()]
        assert records[0]["record"] == "manifest" and records[0]["jobs_since"] is not None
        assert len([x for x in records if x["record"] == "job"]) == 2
        assert client.get("/v1/admin/tenants/nobody/export", headers=op).status_code == 404
        assert client.get("/v1/admin/tenants/acme/export", params={"since": "yesterday"}, headers=op).status_code == 422
    (tmp_path / "stream.ndjson").write_text(r.text)
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    upgrade(other)
    out = _cli_on(other, tmp_path / "h2")("tenant", "import", str(tmp_path / "stream.ndjson"), "--as", "acme2")
    assert out["tenant"] == "acme2" and out["imported"]["job"] == 2 and out["imported"]["integration"] == 1
    (tmp_path / "bad.ndjson").write_text('{"record": "job"}\n')
    bad = _cli_on(other, tmp_path / "h2")("tenant", "import", str(tmp_path / "bad.ndjson"), code=1)
    assert bad["error"]["code"] == "invalid_input"


def test_metrics_on_a_big_table_count_settled_jobs_in_the_background(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Open work is exact at every scrape; settled work, once slow to count, comes from the last count."""
    import time

    from fastapi.testclient import TestClient

    from labelwise.api.app import create_app
    from labelwise.settings import Settings

    with _sessions(sqlite_url).begin() as s:
        populate(s, "acme")  # 3 done jobs of acme, 1 queued orphan
    settings = Settings(home=tmp_path / "home", database_url=sqlite_url, metrics_cache_s=0)  # every scrape counts
    with TestClient(create_app(settings)) as client:

        def value(name: str) -> float:
            line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith(name))
            return float(line.split()[-1])

        assert value('labelwise_jobs{status="done"}') == 3  # counted at once: a small table
        m = client.app.state.metrics  # type: ignore[attr-defined]
        m.count_s = 5.0  # as if counting took 5 s (tens of millions of jobs)
        m._settled_at = time.monotonic()  # and was just done
        m.settled = {"jobs": {"done": 1234}, "deliveries": {}}
        assert value('labelwise_jobs{status="done"}') == 1234  # the last count, no new one
        assert value('labelwise_jobs{status="queued"}') == 1  # exact
        m._settled_at -= 3600  # an hour old: a scrape starts a count in the background
        client.get("/metrics")
        deadline = time.monotonic() + 10
        while m.settled["jobs"].get("done") != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert value('labelwise_jobs{status="done"}') == 3


def test_the_worker_purge_thread_purges_then_gives_the_lease_up(sessions) -> None:  # type: ignore[no-untyped-def]
    """Purger (started by every worker process): runs every purge_interval_s while it holds the lease."""
    import time

    from labelwise.models import jobs as jobs_q
    from labelwise.settings import Settings
    from labelwise.worker.purger import Purger

    with sessions.begin() as s:
        a = populate(s, "a")
    ids = _aged_jobs(sessions, a["id"], count=3, age_days=40)
    first, second = Purger(Settings(purge_interval_s=0.1)), Purger(Settings(purge_interval_s=0.1))
    first.start(sessions)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with sessions() as s:
                if all(jobs_q.get_job(s, j).text is None for j in ids):
                    break
            time.sleep(0.1)
        with sessions() as s:
            assert all(jobs_q.get_job(s, j).text is None for j in ids)
        assert lifecycle.purge(sessions, holder=second.holder, policy=second.policy) is None  # held by first
    finally:
        first.stop()
    assert lifecycle.purge(sessions, holder=second.holder, policy=second.policy) is not None  # released


def test_the_first_metrics_scrape_of_a_big_table_does_not_wait_for_the_count(
    db_url: str, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A table the planner estimates at BIG_ROWS or more is counted in the background from the first
    scrape on (PostgreSQL); the settled gauges appear once that count ends. SQLite has no estimate: at once."""
    import time

    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from labelwise.api.app import create_app
    from labelwise.api.routes import metrics
    from labelwise.settings import Settings

    with _sessions(db_url).begin() as s:
        populate(s, "acme")  # 3 done jobs of acme, 1 queued orphan
    postgres = db_url.startswith("postgresql")
    if postgres:
        engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("ANALYZE jobs"))  # reltuples: 4
        engine.dispose()
    monkeypatch.setattr(metrics, "BIG_ROWS", 4)
    monkeypatch.setattr(metrics.Metrics, "_count", _slowly(metrics.Metrics._count))
    settings = Settings(home=tmp_path / "home", database_url=db_url, metrics_cache_s=0)
    with TestClient(create_app(settings)) as client:
        first = client.get("/metrics").text
        assert 'labelwise_jobs{status="queued"} 1.0' in first  # open work: exact at every scrape
        assert ('labelwise_jobs{status="done"}' in first) is not postgres
        deadline = time.monotonic() + 10
        while 'labelwise_jobs{status="done"} 3.0' not in client.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _slowly(count):  # type: ignore[no-untyped-def]
    """Metrics._count taking at least 0.3 s more, as on a big table."""
    import time

    def slow(self, st, *, locked=False):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return count(self, st, locked=locked)

    return slow


def test_the_purge_rests_twice_as_long_as_its_last_batch_took() -> None:
    """Pacing: never less than pause_s, and never busier than a third of the time (rest_ratio 2)."""
    policy = lifecycle.Retention(pause_s=0.05)
    assert policy.rest_s(0.01) == 0.05
    assert policy.rest_s(0.2) == 0.4
    assert lifecycle.Retention(pause_s=0.05, rest_ratio=0).rest_s(0.2) == 0.05


def test_the_purge_commits_without_waiting_for_the_disk_on_postgresql(sessions) -> None:  # type: ignore[no-untyped-def]
    """Each purge transaction sets synchronous_commit off for itself only (SET LOCAL): its WAL flushes stop
    taking turns with the workers' commits; every other transaction still waits for the disk."""
    from sqlalchemy import event, text

    with sessions.begin() as s:
        a = populate(s, "a")
    _aged_jobs(sessions, a["id"], count=5, age_days=40)
    engine = sessions.kw["bind"]
    postgres = engine.dialect.name == "postgresql"
    seen: list[str] = []

    def statement(conn, cursor, sql, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if postgres:
            seen.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar() if "UPDATE jobs" in sql else sql)

    event.listen(engine, "before_cursor_execute", statement)
    try:
        out = lifecycle.purge(sessions, holder="me", policy=lifecycle.Retention(batch=2, pause_s=0))
    finally:
        event.remove(engine, "before_cursor_execute", statement)
    assert out is not None and out["texts"] >= 5
    if postgres:
        assert seen.count("off") >= 3 and "on" not in seen  # every batch of 2 texts
        with sessions() as s:
            assert s.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_reconciler_never_fails_a_privacy_job_a_worker_just_finished(sessions, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A privacy-mode job stuck running is due (its text is gone, so it would be failed); its worker
    stores the result right after the reconciler read it. The job keeps that result: it is never failed
    over it (before: the reconciler's flush set it failed, its result stored and lost)."""
    import datetime as dt
    import threading

    from labelwise import pipeline
    from labelwise.messages import parse_message
    from labelwise.models import jobs as jobs_q
    from labelwise.models.tables import Tenant, utcnow
    from labelwise.pipeline import reconciling

    with sessions.begin() as s:
        a = populate(s, "a")
        s.get(Tenant, a["id"]).privacy = True
    msg = parse_message({"tenant": "a", "label_set": "support", "text": "private words"}, max_text_chars=1000)
    long_ago = utcnow() - dt.timedelta(minutes=5)
    with sessions.begin() as s:
        job, _ = pipeline.submit_job(s, msg, job_id="slow")
        job.status, job.attempts, job.created_at, job.enqueued_at, job.started_at = "running", 1, *[long_ago] * 3
    with sessions() as s:
        theirs = jobs_q.get_job(s, "slow")
    jobs_q.mark_done(theirs, result={"chosen": ["billing"], "labels": []}, version_id=1)

    def worker_stores() -> None:
        with sessions.begin() as s:
            jobs_q.store_done(s, [theirs])

    worker = threading.Thread(target=worker_stores)
    real_due = jobs_q.due_for_publish

    def due_then_the_worker_stores(session, **kw):  # type: ignore[no-untyped-def]
        due = real_due(session, **kw)
        worker.start()
        worker.join(timeout=1.0)  # at once on PostgreSQL; on SQLite after the pass (it holds the write lock)
        return due

    monkeypatch.setattr(jobs_q, "due_for_publish", due_then_the_worker_stores)
    policy = reconciling.Policy(grace_s=1, stuck_after_s=60)
    reconciling.reconcile(sessions, holder="me", policy=policy, publish_job=print, publish_delivery=print)
    worker.join(timeout=30)
    with sessions() as s:
        job = jobs_q.get_job(s, "slow")
        # failed with a result stored is the lost result; on PostgreSQL the worker's store came first
        assert (job.status, job.classifications) in {("done", 1), ("failed", 0)}
        if sessions.kw["bind"].dialect.name == "postgresql":
            assert job.status == "done" and job.result["chosen"] == ["billing"]
