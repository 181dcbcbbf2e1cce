"""Throughput of labelwise against the hardware's ceiling and a plain one-message-per-call peer.

In one run, on the same texts (Banking77 test, or --data FILE with a `text` column):
  1. ceiling: bare encoding with the same backend in its best layout (processes x threads x batch);
  2. labelwise: N messages pre-enqueued on Redis, one `labelwise worker` draining them with results
     committed to PostgreSQL, messages/s from first dequeue to last commit; and the same on the
     embedded defaults (SQLite database, SQL broker);
  3. the peer: a plain Celery task encoding its one message per call (bench/peer_app.py), Redis + PostgreSQL;
and the ratios labelwise/ceiling and labelwise/peer.

    .venv/bin/python bench/throughput.py [--n 2000] [--backend torch] [--precision int8] [--processes 1]
        [--batch-size 32] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ceiling import BANKING77_TEST, best_layout, read_texts  # noqa: E402

PG_URL = os.environ.get("LABELWISE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LABELWISE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LABELS = ROOT / "examples" / "support.yaml"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"lw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database_url: str, labels: Path = LABELS) -> tuple[Any, Any, Any]:
    """Migrate, create the ``bench`` tenant if missing and apply ``labels``: ``(engine, sessions, doc)``."""
    from labelwise import pipeline
    from labelwise.labelset import load_yaml
    from labelwise.models import tenants
    from labelwise.models.db import make_engine, make_session_factory, upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    doc = load_yaml(labels.read_text())
    with sessions.begin() as s:
        if tenants.find_tenant(s, "bench") is None:
            tenants.create_tenant(s, "bench")
        pipeline.apply_label_set(s, tenant="bench", doc=doc)
    return engine, sessions, doc


def worker_env(env: dict[str, str], *, home: Path, database_url: str, broker_url: str, queue: str) -> dict[str, str]:
    return {
        **env,
        "LABELWISE_HOME": str(home),
        "LABELWISE_DATABASE_URL": database_url,
        "LABELWISE_BROKER_URL": broker_url,
        "LABELWISE_QUEUE": queue,
        "LABELWISE_LOG_LEVEL": "WARNING",
        "LABELWISE_SECRET_KEY": env.get("LABELWISE_SECRET_KEY") or Fernet.generate_key().decode(),
        "HF_HUB_OFFLINE": "1",
    }


def publish(
    broker_url: str, queue: str, task: str, calls: list[dict[str, Any]], *, queue_type: str = "classic"
) -> None:
    """Pre-enqueue every message with one producer connection (``queue_type`` as the worker declares it)."""
    from celery import Celery

    from labelwise import brokers

    if broker_url.startswith("sqla+"):
        brokers.install()
    app = Celery(broker=broker_url, set_as_current=False)
    app.conf.task_serializer = "json"
    app.conf.task_create_missing_queue_type = queue_type
    try:
        with app.producer_or_acquire() as producer:
            for call in calls:
                app.send_task(task, kwargs=call["kwargs"], task_id=call["id"], queue=queue, producer=producer)
    finally:
        app.close()


def tree_rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def wait_until(count: Any, n: int, *, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while count() < n:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count()} of {n} after {timeout_s}s")
        time.sleep(0.25)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_labelwise(
    texts: list[str],
    *,
    database_url: str,
    broker_url: str,
    home: Path,
    env: dict[str, str],
    timeout_s: float,
    labels: Path = LABELS,
) -> dict[str, Any]:
    """Pre-enqueue len(texts) messages, start one worker, time first dequeue to last commit."""
    from sqlalchemy import func, select

    from labelwise.models.tables import Job

    engine, sessions, doc = seed(database_url, labels)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    calls = [{"id": str(uuid.uuid4()), "kwargs": {"tenant": "bench", "label_set": doc.name, "text": t}} for t in texts]
    ids = [c["id"] for c in calls]
    publish(broker_url, queue, "labelwise.classify", calls)
    wenv = worker_env(env, home=home, database_url=database_url, broker_url=broker_url, queue=queue)
    proc = start([sys.executable, "-m", "labelwise", "worker"], wenv, home / "worker.log")

    def done() -> int:
        with sessions() as s:
            query = select(func.count()).select_from(Job).where(Job.status == "done", Job.id.in_(ids))
            return int(s.scalar(query) or 0)

    try:
        wait_until(done, len(texts), timeout_s=timeout_s, proc=proc)
        rss_mb = tree_rss_mb(proc.pid)
    finally:
        stop(proc)
    with sessions() as s:
        span = select(func.min(Job.started_at), func.max(Job.finished_at)).where(Job.id.in_(ids))
        first, last = s.execute(span).one()
    engine.dispose()
    seconds = (last - first).total_seconds()
    return {"msgs_s": len(texts) / seconds, "seconds": seconds, "n": len(texts), "worker_rss_mb": rss_mb}


def run_peer(texts: list[str], *, database_url: str, home: Path, timeout_s: float) -> dict[str, Any]:
    import psycopg

    queue = f"peer-{uuid.uuid4().hex[:8]}"
    calls = [{"id": str(uuid.uuid4()), "kwargs": {"job_id": str(i), "text": t}} for i, t in enumerate(texts)]
    publish(REDIS_URL, queue, "peer.classify", calls)
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    env = {"PEER_BROKER": REDIS_URL, "PEER_DATABASE": dsn, "PEER_LABELS": str(LABELS), "HF_HUB_OFFLINE": "1"}
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.peer_app",
        "worker",
        "-P",
        "solo",
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
    ]
    proc = start(args, env, home / "peer.log")

    def done() -> int:
        with psycopg.connect(dsn) as conn:
            try:
                return int(conn.execute("SELECT count(*) FROM peer_results").fetchone()[0])  # type: ignore[index]
            except psycopg.errors.UndefinedTable:
                return 0

    try:
        wait_until(done, len(texts), timeout_s=timeout_s, proc=proc)
    finally:
        stop(proc)
    with psycopg.connect(dsn) as conn:
        first, last = conn.execute("SELECT min(started_at), max(finished_at) FROM peer_results").fetchone()  # type: ignore[misc]
    seconds = (last - first).total_seconds()
    return {"msgs_s": len(texts) / seconds, "seconds": seconds, "n": len(texts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="messages (default 2000)")
    parser.add_argument("--data", type=Path, default=BANKING77_TEST, help="CSV with a text column")
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    parser.add_argument(
        "--precision", default=None, choices=["fp32", "int8"], help="ONNX: default LABELWISE_PRECISION's default"
    )
    parser.add_argument("--processes", type=int, default=2, help="labelwise worker processes")
    parser.add_argument("--batch-size", type=int, default=None, help="default LABELWISE_BATCH_SIZE's default")
    parser.add_argument("--ceiling-n", type=int, default=600, help="texts per ceiling cell")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: ceiling,embedded,peer")
    parser.add_argument("--timeout-s", type=float, default=1200)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    from labelwise.settings import Settings

    precision = args.precision or Settings.model_fields["precision"].default
    args.batch_size = args.batch_size or Settings.model_fields["batch_size"].default
    texts = read_texts(args.data)
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    env = {
        "LABELWISE_BACKEND": args.backend,
        "LABELWISE_PRECISION": precision,
        "LABELWISE_WORKER_PROCESSES": str(args.processes),
        "LABELWISE_BATCH_SIZE": str(args.batch_size),
        "HF_HUB_OFFLINE": "1",
    }
    report: dict[str, Any] = {
        "n": args.n,
        "backend": args.backend,
        "precision": precision,
        "processes": args.processes,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        home = Path(tmp)
        if "ceiling" not in skip:
            cell = best_layout(
                texts[: args.ceiling_n],
                "onnx-int8" if args.backend == "onnx" and precision == "int8" else args.backend,
                cache_dir=home / "onnx",
                batches=(1, 8, 16, 32),
                repeats=2,
            )
            report["ceiling_msgs_s"] = cell.texts_per_s
            report["ceiling_layout"] = {"processes": cell.procs, "threads": cell.threads, "batch": cell.batch}
        with pg_database() as url:
            (home / "redis").mkdir()
            report["labelwise"] = run_labelwise(
                texts, database_url=url, broker_url=REDIS_URL, home=home / "redis", env=env, timeout_s=args.timeout_s
            )
        report["labelwise_msgs_s"] = report["labelwise"]["msgs_s"]
        if "embedded" not in skip:
            (home / "embedded").mkdir()
            report["embedded"] = run_labelwise(
                texts,
                database_url=f"sqlite:///{home / 'embedded' / 'db.sqlite'}",
                broker_url=f"sqla+sqlite:///{home / 'embedded' / 'broker.sqlite'}",
                home=home / "embedded",
                env=env,
                timeout_s=args.timeout_s,
            )
        if "peer" not in skip:
            with pg_database() as url:
                (home / "peer").mkdir()
                report["peer"] = run_peer(texts, database_url=url, home=home / "peer", timeout_s=args.timeout_s)
            report["peer_msgs_s"] = report["peer"]["msgs_s"]
    if "ceiling_msgs_s" in report:
        report["ratio_ceiling"] = report["labelwise_msgs_s"] / report["ceiling_msgs_s"]
    if "peer_msgs_s" in report:
        report["ratio_peer"] = report["labelwise_msgs_s"] / report["peer_msgs_s"]
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def render(r: dict[str, Any]) -> str:
    lines = [f"throughput, {r['n']} messages, backend {r['backend']}, {r['cpus']} CPUs"]
    if "ceiling_msgs_s" in r:
        lay = r["ceiling_layout"]
        lines.append(
            f"  ceiling (bare encoding, {lay['processes']} proc x {lay['threads']} threads, batch "
            f"{lay['batch']}): {r['ceiling_msgs_s']:7.1f} texts/s"
        )
    lw = r["labelwise"]
    lines.append(
        f"  labelwise, Redis + PostgreSQL ({r['processes']} proc, batch {r['batch_size']}): "
        f"{lw['msgs_s']:7.1f} msgs/s  (worker RSS {lw['worker_rss_mb']:.0f} MB)"
    )
    if "embedded" in r:
        lines.append(f"  labelwise, embedded SQLite + SQL broker:           {r['embedded']['msgs_s']:7.1f} msgs/s")
    if "peer" in r:
        lines.append(f"  peer, one message per call, Redis + PostgreSQL:     {r['peer_msgs_s']:7.1f} msgs/s")
    if "ratio_ceiling" in r:
        lines.append(f"  labelwise / ceiling = {r['ratio_ceiling']:.2f}   (target >= 0.85)")
    if "ratio_peer" in r:
        lines.append(f"  labelwise / peer    = {r['ratio_peer']:.2f}   (target >= 1.6)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
