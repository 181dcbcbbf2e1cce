"""Tables that stay fast as they grow: the same calls on an empty database and on one holding N jobs.

In one run, two throwaway PostgreSQL databases (created here, dropped at the end):
  - "empty": the measured tenants only: a big and a small one with SMALL_JOBS jobs each;
  - "full":  the same, plus N jobs over 1,000 tenants (the big one holds a tenth of them), filled by
             server-side bulk INSERT ... SELECT generate_series (minutes for 10,000,000, not hours).
and on each:
  - a worker's messages/s (one `labelwise worker`, messages pre-enqueued on Redis, bench/throughput.py),
    in --rounds ABBA rounds (empty, full, full, empty, ...): the machine's load drifts;
  - GET /v1/jobs first and 100th page for the big and the small tenant, GET /v1/jobs/{id}, GET /metrics
    (p50 and p99 over --samples calls to a `labelwise api` process), and the first /metrics of a new API process;
  - `db upgrade` of a new migration that adds a column to jobs;
  - on "full": classification p99 at a steady rate while the retention purge removes the texts of the
    jobs older than 30 days (about half of N), beside p99 without it, in --rounds ABBA rounds. The purge
    is stopped (its stop() hook) once the measured messages are done: at 10M it would run for many
    minutes more; what it removed meanwhile, and how fast, is reported beside the latency.

    .venv/bin/python bench/growth.py [--jobs 10000000] [--skip-worker] [--short] [--json]
        [--keep-db NAME | --reuse-db NAME]

--short (CI) fills 20,000 jobs and skips the worker runs (each loads the model): well under a minute.
--keep-db NAME fills the "full" database under that name and leaves it in place (an existing one of that
name is dropped first); --reuse-db NAME measures such a kept database again without refilling it (new
tokens for the two measured tenants; the --jobs it was filled with is read from it). Iterating on a fix at
10M then costs minutes, not a fill. The `db upgrade` measurement undoes its column afterwards, so a kept
database stays at labelwise's head; each latency-during-purge run removes some of its old texts (about
150,000-250,000 at 10M), so a kept database serves a dozen such runs before a refill.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.throughput import PG_URL, REDIS_URL, pg_database, run_labelwise, start, stop, wait_until, worker_env  # noqa: E402

TENANTS = 1_000
SMALL_JOBS = 6_000  # 120 pages of 50: the small tenant's 100th page exists
PAGE = 50
FILL_CHUNK = 500_000
TEXTS = [
    "I was charged twice for my subscription this month",
    "The export button crashes the app every time",
    "How do I reset my password, the link expired",
    "Please send me the invoice for last quarter",
    "My card was declined although it has funds",
]
RESULT = (
    '{"label_set_version": 1, "model": "all-MiniLM-L6-v2", "labels": [{"name": "billing", "score": 0.61}, '
    '{"name": "refund", "score": 0.44}, {"name": "bug", "score": 0.21}], "chosen": ["billing"], "abstained": false}'
)
# no purge thread in the bench's workers: the purge runs only where this script starts it
QUIET_WORKER = {"LABELWISE_PURGE_INTERVAL_S": "86400", "LABELWISE_LOG_LEVEL": "WARNING"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup(url: str) -> dict[str, Any]:
    """Migrate; 1,000 tenants t0000..t0999 (t0000 big, t0999 small), a label set, a token each for the
    big and the small one; the ``bench`` tenant the worker run uses is made by bench/throughput.py."""
    from sqlalchemy import text

    from labelwise import pipeline
    from labelwise.labelset import load_yaml
    from labelwise.models import tenants
    from labelwise.models.db import make_engine, make_session_factory, upgrade

    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        s.execute(
            text(
                "INSERT INTO tenants (name, created_at, privacy) "
                "SELECT 't' || lpad(i::text, 4, '0'), now(), false FROM generate_series(0, :n - 1) i"
            ),
            {"n": TENANTS},
        )
        doc = load_yaml((ROOT / "examples" / "support.yaml").read_text())
        version, _ = pipeline.apply_label_set(s, tenant="t0000", doc=doc)
        big = tenants.get_tenant(s, "t0000")
        small = tenants.get_tenant(s, f"t{TENANTS - 1:04d}")
        tokens = {
            "big": tenants.create_token(s, tenant_id=big.id)[1],
            "small": tenants.create_token(s, tenant_id=small.id)[1],
        }
        ids = {"big": big.id, "small": small.id, "first": big.id, "version": version.id}
    engine.dispose()
    return {"tokens": tokens, "ids": ids}


@contextlib.contextmanager
def kept_database(name: str, *, fresh: bool) -> Iterator[str]:
    """The URL of database ``name`` on the bench's server, left in place afterwards; ``fresh`` drops and
    creates it first."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if fresh:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def reattach(url: str) -> tuple[dict[str, Any], int]:
    """setup()'s answer for a database it filled earlier (fresh tokens for the big and the small tenant),
    and the number of jobs beyond the measured tenants' own."""
    from sqlalchemy import text

    from labelwise.models import labelsets, tenants
    from labelwise.models.db import make_engine, make_session_factory, upgrade

    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        big = tenants.get_tenant(s, "t0000")
        small = tenants.get_tenant(s, f"t{TENANTS - 1:04d}")
        version = labelsets.current_version(s, tenant_id=big.id, name="support")
        tokens = {
            "big": tenants.create_token(s, tenant_id=big.id)[1],
            "small": tenants.create_token(s, tenant_id=small.id)[1],
        }
        # the planner's estimate: an exact count of 10M rows takes seconds and is only for the record
        rows = int(s.scalar(text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'jobs'")) or 0)
    engine.dispose()
    ids = {"big": big.id, "small": small.id, "first": big.id, "version": version.id}
    return {"tokens": tokens, "ids": ids}, max(0, rows - 2 * SMALL_JOBS)


def insert_jobs(url: str, *, count: int, tenant_sql: str, start: int, params: dict[str, Any]) -> None:
    """INSERT ... SELECT generate_series: ``count`` done jobs created over the last 60 days in id order."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    statement = text(
        f"""
        INSERT INTO jobs (id, tenant_id, tenant_name, label_set_name, label_set_version_id, text, metadata,
                          status, result, attempts, created_at, started_at, finished_at, enqueued_at,
                          classifications)
        SELECT md5(i::text || :salt), t.id, t.name, 'support', :version,
               (ARRAY[{", ".join(repr(x) for x in TEXTS)}])[1 + i % {len(TEXTS)}] || ' #' || i,
               jsonb_build_object('ticket', i), 'done', CAST(:result AS jsonb), 1, c, c, c, c, 1
        FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
        JOIN LATERAL (SELECT now() - interval '60 days' * (1 - i::float8 / :total) AS c) AS ts ON true
        JOIN tenants t ON t.id = CAST({tenant_sql} AS integer)
        """
    )
    with engine.connect() as conn:
        for lo in range(start, start + count, FILL_CHUNK):
            hi = min(start + count, lo + FILL_CHUNK) - 1
            conn.execute(statement, {"lo": lo, "hi": hi, "salt": uuid.uuid4().hex, "result": RESULT, **params})
    engine.dispose()


def fill(url: str, ids: dict[str, int], *, jobs: int) -> dict[str, float]:
    """The small tenant's SMALL_JOBS and the big one's SMALL_JOBS, then ``jobs`` more over every tenant
    (a tenth to the big one); VACUUM ANALYZE, as autovacuum would after a while. Seconds taken."""
    from sqlalchemy import create_engine, text

    t0 = time.monotonic()
    total = max(jobs, SMALL_JOBS)
    for who in ("small", "big"):
        insert_jobs(
            url,
            count=SMALL_JOBS,
            tenant_sql=":tenant",
            start=0,
            params={"tenant": ids[who], "total": SMALL_JOBS, "version": ids["version"]},
        )
    if jobs:
        # every tenth job to the big tenant (the first id), the rest over the 998 others
        spread = f"CASE WHEN i % 10 = 0 THEN :first ELSE :first + 1 + (i % {TENANTS - 2}) END"
        insert_jobs(
            url,
            count=jobs,
            tenant_sql=spread,
            start=0,
            params={"first": ids["first"], "total": total, "version": ids["version"]},
        )
    filled = time.monotonic() - t0
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
        size = conn.scalar(text("SELECT pg_total_relation_size('jobs')"))
    engine.dispose()
    return {"fill_s": filled, "vacuum_s": time.monotonic() - t0 - filled, "jobs_table_mb": size / 2**20}


def table_mb(url: str) -> float:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.scalar(text("SELECT pg_total_relation_size('jobs')"))
    engine.dispose()
    return size / 2**20


def timed(call: Callable[[], Any], samples: int) -> dict[str, float]:
    """p50 and p99 in ms of ``samples`` calls (after 3 unmeasured ones)."""
    for _ in range(3):
        call()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def api_calls(url: str, setup_out: dict[str, Any], *, samples: int, home: Path) -> dict[str, dict[str, float]]:
    """The API calls over HTTP to a ``labelwise api`` process of its own, as it is deployed (measured in
    this process through Starlette's TestClient, client and server shared one interpreter and the
    client's share of the time went into every figure)."""
    import os

    import httpx
    from sqlalchemy import select

    from labelwise.models.db import make_engine, make_session_factory
    from labelwise.models.tables import Job
    from labelwise.pipeline.classifying import encode_cursor
    from tests.stacks import ApiProcess

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    out: dict[str, dict[str, float]] = {}
    with sessions() as s:
        cursors = {}
        for who in ("big", "small"):
            newest = select(Job).where(Job.tenant_id == setup_out["ids"][who])
            newest = newest.order_by(Job.created_at.desc(), Job.id.desc())
            before_100th = s.scalars(newest.offset(99 * PAGE - 1).limit(1)).one()
            cursors[who] = encode_cursor(before_100th)
        sample_ids = list(
            s.scalars(select(Job.id).where(Job.tenant_id == setup_out["ids"]["big"]).limit(samples * 50))
        )[::50]
    engine.dispose()
    env = worker_env(dict(os.environ), home=home, database_url=url, broker_url=REDIS_URL, queue="growth-api")
    with ApiProcess(env, cwd=home, log=home / "api.log") as api, httpx.Client(base_url=api.url, timeout=60) as client:
        t0 = time.perf_counter()
        assert client.get("/metrics").status_code == 200
        first = (time.perf_counter() - t0) * 1000
        out["GET /metrics, 1st of a process"] = {"p50_ms": first, "p99_ms": first}

        def get(path: str, who: str = "big", **params: Any) -> Callable[[], Any]:
            headers = {"Authorization": f"Bearer {setup_out['tokens'][who]}"}

            def call() -> None:
                r = client.get(path, params=params, headers=headers)
                assert r.status_code == 200, r.text

            return call

        for who in ("big", "small"):
            out[f"GET /v1/jobs {who} page 1"] = timed(get("/v1/jobs", who, limit=PAGE), samples)
            out[f"GET /v1/jobs {who} page 100"] = timed(get("/v1/jobs", who, limit=PAGE, cursor=cursors[who]), samples)
        ids = iter(sample_ids * 2)
        headers = {"Authorization": f"Bearer {setup_out['tokens']['big']}"}
        out["GET /v1/jobs/{id}"] = timed(lambda: client.get(f"/v1/jobs/{next(ids)}", headers=headers), samples)
        out["GET /metrics"] = timed(get("/metrics"), samples)
    return out


def sql_calls(url: str, setup_out: dict[str, Any], *, samples: int) -> dict[str, dict[str, float]]:
    """The SQL under the API calls, without HTTP (the figures the machine's load disturbs least), before
    and after this release's changes: a page by the old OR cursor and by the row-value one; /metrics
    counting every job and delivery, and counting the open ones only."""
    from sqlalchemy import select

    from labelwise import pipeline
    from labelwise.models import jobs
    from labelwise.models.db import make_engine, make_session_factory
    from labelwise.models.tables import Job

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    out: dict[str, dict[str, float]] = {}
    big = setup_out["ids"]["big"]
    with sessions() as s:
        newest = select(Job).where(Job.tenant_id == big).order_by(Job.created_at.desc(), Job.id.desc())
        last = s.scalars(newest.offset(99 * PAGE - 1).limit(1)).one()
        created_at, job_id = last.created_at, last.id

        def old_page() -> None:
            older = (Job.created_at < created_at) | ((Job.created_at == created_at) & (Job.id < job_id))
            list(s.scalars(newest.where(older).limit(PAGE + 1)))

        out["page 100, big tenant: before (OR cursor)"] = timed(old_page, samples)
        out["page 100, big tenant: after (row value)"] = timed(
            lambda: jobs.list_jobs(s, tenant_id=big, before=(created_at, job_id), limit=PAGE + 1), samples
        )
        out["metrics counts: before (every job)"] = timed(lambda: pipeline.counts(s), max(5, samples // 10))
        out["metrics counts: after (open jobs)"] = timed(lambda: pipeline.open_counts(s), samples)
    engine.dispose()
    return out


def upgrade_with_new_column(url: str) -> float:
    """Seconds of `db upgrade` (Alembic) to a new revision that adds a nullable column to jobs."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from labelwise.models.db import MIGRATIONS

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "migrations"
        shutil.copytree(MIGRATIONS, where, ignore=shutil.ignore_patterns("__pycache__"))
        cfg = Config()
        cfg.set_main_option("script_location", str(where))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        (where / "versions" / "9999_bench_column.py").write_text(
            f'"""bench: a new column\n\nRevision ID: 9999\nRevises: {head}\n"""\n'
            "import sqlalchemy as sa\nfrom alembic import op\n\n"
            f'revision = "9999"\ndown_revision = "{head}"\nbranch_labels = None\ndepends_on = None\n\n\n'
            "def upgrade() -> None:\n"
            '    op.add_column("jobs", sa.Column("bench_extra", sa.String(length=40), nullable=True))\n'
        )
        t0 = time.monotonic()
        command.upgrade(cfg, "head")
        took = time.monotonic() - t0
        # back to labelwise's head, so that a kept database (--keep-db) can be measured again
        (where / "versions" / "9999_bench_column.py").write_text(
            (where / "versions" / "9999_bench_column.py").read_text()
            + '\n\ndef downgrade() -> None:\n    op.drop_column("jobs", "bench_extra")\n'
        )
        command.downgrade(cfg, head)
        return took


def forget_traffic(url: str) -> None:
    """Delete the traffic vectors (only the ``bench`` tenant's label set has any), so that every worker
    run starts as on the fresh "empty" database. A kept database would otherwise hold the last runs'
    LABELWISE_TRAFFIC_KEEP (10,000) vectors, and refining the label vectors from 10,000 instead of from
    the run's own 0-2,000 cost the worker more than the whole jobs table did (0.58x instead of 0.9x)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM traffic_vectors"))
    engine.dispose()


def worker_rate(url: str, *, messages: int, home: Path) -> float:
    forget_traffic(url)
    texts = [TEXTS[i % len(TEXTS)] + f" ({i})" for i in range(messages)]
    out = run_labelwise(texts, database_url=url, broker_url=REDIS_URL, home=home, env=QUIET_WORKER, timeout_s=900)
    return float(out["msgs_s"])


def latency_during(url: str, *, rate: float, seconds: float, home: Path, purge: bool) -> dict[str, float]:
    """Classification latency (send to commit) of a steady ``rate`` for ``seconds``; with ``purge`` the
    retention purge (30 days) runs in a thread meanwhile. Its figures come back too."""
    from celery import Celery
    from sqlalchemy import func, select

    from labelwise.models.db import make_engine, make_session_factory
    from labelwise.models.tables import Job
    from labelwise.pipeline import lifecycle

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    forget_traffic(url)
    queue = f"growth-{uuid.uuid4().hex[:8]}"
    proc = start(
        [sys.executable, "-m", "labelwise", "worker"],
        worker_env(QUIET_WORKER, home=home, database_url=url, broker_url=REDIS_URL, queue=queue),
        home / f"latency-{purge}.log",
    )
    app = Celery(broker=REDIS_URL, set_as_current=False)
    app.conf.task_serializer = "json"
    sent: dict[str, float] = {}
    purged: dict[str, Any] = {}

    def done(ids: list[str]) -> Callable[[], int]:
        def count() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).where(Job.id.in_(ids), Job.status == "done")) or 0)

        return count

    def send(kwargs: dict[str, Any], producer: Any = None) -> str:
        job_id = str(uuid.uuid4())
        app.send_task("labelwise.classify", task_id=job_id, queue=queue, kwargs=kwargs, producer=producer)
        return job_id

    measured = threading.Event()

    def run_purge() -> None:
        t0 = time.monotonic()
        out = lifecycle.purge(sessions, holder="bench", policy=lifecycle.Retention(days=30), stop=measured.is_set)
        took = time.monotonic() - t0
        purged.update(out or {}, purge_s=took, texts_per_s=(out or {}).get("texts", 0) / took)

    try:
        warm = send({"tenant": "bench", "label_set": "support", "text": "warm up"})
        wait_until(done([warm]), 1, timeout_s=600, proc=proc)
        thread = threading.Thread(target=run_purge, daemon=True) if purge else None
        if thread is not None:
            thread.start()
            time.sleep(1)  # the purge under way before the first message
        n = int(rate * seconds)
        t0 = time.monotonic()
        with app.producer_or_acquire() as producer:
            for i in range(n):
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                kwargs = {"tenant": "bench", "label_set": "support", "text": TEXTS[i % len(TEXTS)]}
                sent[send(kwargs, producer)] = time.time()
        wait_until(done(list(sent)), n, timeout_s=600, proc=proc)
        measured.set()  # the purge stops at its next batch
        if thread is not None:
            thread.join()
    finally:
        app.close()
        stop(proc)
    with sessions() as s:
        finished = dict(s.execute(select(Job.id, Job.finished_at).where(Job.id.in_(list(sent)))).all())
    engine.dispose()
    latencies = [(finished[i].timestamp() - t) * 1000 for i, t in sent.items()]
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        **{f"purge_{k}": v for k, v in purged.items()},
    }


def measure(url: str, setup_out: dict[str, Any], args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """The API calls, their SQL alone, and the upgrade (undone afterwards)."""
    out: dict[str, Any] = {"api": api_calls(url, setup_out, samples=args.samples, home=home)}
    out["sql"] = sql_calls(url, setup_out, samples=args.samples)
    out["db_upgrade_s"] = upgrade_with_new_column(url)
    return out


def abba(rounds: int, first: str, second: str) -> list[str]:
    """first, second, second, first, ...: on a machine whose load drifts, each pair's ratio is taken
    close together and a steady drift favours neither side."""
    return [x for i in range(rounds) for x in ((first, second) if i % 2 == 0 else (second, first))]


def worker_rounds(urls: dict[str, str], args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """The worker's messages/s on "empty" and "full" in ``args.rounds`` ABBA rounds; medians and each
    round's full/empty ratio."""
    runs: dict[str, list[float]] = {"empty": [], "full": []}
    for name in abba(args.rounds, "empty", "full"):
        log(f"worker on {name}")
        runs[name].append(worker_rate(urls[name], messages=args.messages, home=home))
    return {
        "empty_msgs_s": statistics.median(runs["empty"]),
        "full_msgs_s": statistics.median(runs["full"]),
        "runs": runs,
        "ratios": [f / e for e, f in zip(runs["empty"], runs["full"], strict=True)],
    }


def latency_rounds(url: str, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Classification latency on "full" without and during the purge, in ``args.rounds`` ABBA rounds;
    each round's during/without p99 ratio, and the median of those."""
    runs: dict[str, list[dict[str, float]]] = {"without_purge": [], "during_purge": []}
    for kind in abba(args.rounds, "without_purge", "during_purge"):
        log(f"latency {kind.replace('_', ' ')}")
        purge = kind == "during_purge"
        runs[kind].append(latency_during(url, rate=args.rate, seconds=args.seconds, home=home, purge=purge))
    ratios = [d["p99_ms"] / w["p99_ms"] for w, d in zip(runs["without_purge"], runs["during_purge"], strict=True)]
    return {**runs, "p99_ratios": ratios, "median_p99_ratio": statistics.median(ratios)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000_000, help="Jobs in the full database.")
    parser.add_argument("--samples", type=int, default=200, help="Calls per API figure.")
    parser.add_argument("--messages", type=int, default=2_000, help="Messages for the worker's rate.")
    parser.add_argument("--rate", type=float, default=20.0, help="Messages/s of the latency-during-purge run.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each latency run.")
    parser.add_argument(
        "--rounds", type=int, default=2, help="ABBA rounds of the worker's rate and of the latency runs."
    )
    parser.add_argument("--skip-worker", action="store_true", help="Only the SQL and API figures.")
    parser.add_argument(
        "--short", action="store_true", help="CI size (well under a minute): 20,000 jobs, 30 samples, no worker."
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument("--keep-db", metavar="NAME", help="Fill the full database under NAME and keep it.")
    kept.add_argument("--reuse-db", metavar="NAME", help="Measure a database kept by --keep-db, no refill.")
    args = parser.parse_args(argv)
    if args.short:
        args.jobs, args.samples, args.skip_worker = 20_000, 30, True
    results: dict[str, Any] = {"jobs": args.jobs, "tenants": TENANTS}
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for name, jobs in (("empty", 0), ("full", args.jobs)):
            if name == "full" and args.reuse_db:
                url = stack.enter_context(kept_database(args.reuse_db, fresh=False))
                setup_out, results["jobs"] = reattach(url)
                log(f"full: reusing {args.reuse_db} (about {results['jobs']:,} jobs)")
                results["full_fill"] = {"reused": args.reuse_db, "jobs_table_mb": table_mb(url)}
            else:
                keep = name == "full" and args.keep_db
                url = stack.enter_context(kept_database(keep, fresh=True) if keep else pg_database())
                setup_out = setup(url)
                log(f"{name}: filling {jobs:,} jobs")
                results[f"{name}_fill"] = fill(url, setup_out["ids"], jobs=jobs)
            log(f"{name}: measuring the API calls")
            results[name] = measure(url, setup_out, args, home)
            urls[name] = url
        if not args.skip_worker:
            results["worker"] = worker_rounds(urls, args, home)
            results["latency"] = latency_rounds(urls["full"], args, home)
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


def log(message: str) -> None:
    print(f"[growth] {message}", file=sys.stderr, flush=True)


def render(r: dict[str, Any]) -> str:
    e, f = r["empty"], r["full"]
    lines = [
        f"growth: {r['jobs']:,} jobs over {r['tenants']:,} tenants; "
        f"jobs table {r['full_fill']['jobs_table_mb']:,.0f} MB"
        + (
            f" (filled in {r['full_fill']['fill_s']:.0f} s, VACUUM ANALYZE {r['full_fill']['vacuum_s']:.0f} s)"
            if "fill_s" in r["full_fill"]
            else f" (kept database {r['full_fill']['reused']})"
        ),
        f"{'':34} {'empty p50/p99 ms':>20} {'full p50/p99 ms':>20} {'p99 x':>7}",
    ]
    for call, empty in e["api"].items():
        full = f["api"][call]
        ratio = full["p99_ms"] / empty["p99_ms"] if empty["p99_ms"] else float("nan")
        lines.append(
            f"{call:34} {empty['p50_ms']:9.1f}/{empty['p99_ms']:<9.1f} {full['p50_ms']:9.1f}/{full['p99_ms']:<9.1f}"
            f" {ratio:7.2f}"
        )
    lines.append(f"{'SQL alone (no HTTP)':34} {'empty p50/p99 ms':>20} {'full p50/p99 ms':>20}")
    for call, empty in e.get("sql", {}).items():
        full = f["sql"][call]
        lines.append(
            f"{call:42} {empty['p50_ms']:7.2f}/{empty['p99_ms']:<9.2f} {full['p50_ms']:9.2f}/{full['p99_ms']:<9.2f}"
        )
    lines.append(f"{'db upgrade (add a column) s':34} {e['db_upgrade_s']:20.2f} {f['db_upgrade_s']:20.2f}")
    if "worker" in r:
        w = r["worker"]
        ratio = w["full_msgs_s"] / w["empty_msgs_s"]
        lines.append(
            f"{'worker messages/s (median)':34} {w['empty_msgs_s']:20.1f} {w['full_msgs_s']:20.1f} {ratio:7.2f}"
            f"  (rounds: {', '.join(f'{x:.2f}' for x in w['ratios'])})"
        )
    if "latency" in r:
        lat = r["latency"]
        for without, during in zip(lat["without_purge"], lat["during_purge"], strict=True):
            lines.append(
                f"classification p99 at a steady rate: {without['p99_ms']:.0f} ms without the purge, "
                f"{during['p99_ms']:.0f} ms during it ({during['p99_ms'] / without['p99_ms']:.2f}x); the purge "
                f"removed {during.get('purge_texts', 0):,} texts in {during.get('purge_purge_s', 0):.0f} s"
                " (stopped with the measurement)"
            )
        lines.append(f"median p99 ratio: {lat['median_p99_ratio']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
