"""Latency from enqueue to committed result at a steady offered load (default 10 messages/s for 60 s),
on Redis + PostgreSQL with one `labelwise worker`.

    .venv/bin/python bench/latency.py [--rate 10] [--seconds 60] [--backend onnx] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ceiling import BANKING77_TEST, read_texts  # noqa: E402
from bench.throughput import REDIS_URL, pg_database, seed, start, stop, wait_until, worker_env  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(texts: list[str], *, rate: float, seconds: float, env: dict[str, str], home: Path) -> dict[str, Any]:
    from celery import Celery
    from sqlalchemy import func, select

    from labelwise.models.tables import Job

    with pg_database() as url:
        engine, sessions, _ = seed(url)
        queue = f"lat-{uuid.uuid4().hex[:8]}"
        wenv = worker_env(env, home=home, database_url=url, broker_url=REDIS_URL, queue=queue)
        proc = start([sys.executable, "-m", "labelwise", "worker"], wenv, home / "worker.log")
        app = Celery(broker=REDIS_URL, set_as_current=False)
        app.conf.task_serializer = "json"
        sent: dict[str, float] = {}
        try:
            warm = str(uuid.uuid4())
            app.send_task(
                "labelwise.classify",
                task_id=warm,
                queue=queue,
                kwargs={"tenant": "bench", "label_set": "support", "text": "warm up"},
            )

            def count() -> int:
                with sessions() as s:
                    return int(s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) or 0)

            wait_until(count, 1, timeout_s=300, proc=proc)
            n = int(rate * seconds)
            t0 = time.monotonic()
            with app.producer_or_acquire() as producer:
                for i in range(n):
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                    job_id = str(uuid.uuid4())
                    sent[job_id] = time.time()
                    app.send_task(
                        "labelwise.classify",
                        task_id=job_id,
                        queue=queue,
                        producer=producer,
                        kwargs={"tenant": "bench", "label_set": "support", "text": texts[i % len(texts)]},
                    )
            wait_until(count, n + 1, timeout_s=300, proc=proc)
        finally:
            app.close()
            stop(proc)
        with sessions() as s:
            finished = dict(s.execute(select(Job.id, Job.finished_at).where(Job.id.in_(list(sent)))).all())
        engine.dispose()
    latencies_ms = [(finished[i].timestamp() - t) * 1000 for i, t in sent.items()]
    return {
        "n": len(latencies_ms),
        "rate": rate,
        "seconds": seconds,
        "p50_ms": percentile(latencies_ms, 50),
        "p95_ms": percentile(latencies_ms, 95),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms),
        "mean_ms": statistics.fmean(latencies_ms),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--data", type=Path, default=BANKING77_TEST)
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    env = {"LABELWISE_BACKEND": args.backend, "LABELWISE_BATCH_SIZE": str(args.batch_size), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="lw-latency-") as tmp:
        report = run(read_texts(args.data), rate=args.rate, seconds=args.seconds, env=env, home=Path(tmp))
    report.update(backend=args.backend, measured_at=dt.datetime.now(dt.UTC).isoformat())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"latency at {args.rate:g} msgs/s for {args.seconds:g} s ({report['n']} messages, Redis + PostgreSQL, "
            f"backend {args.backend}): p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
            f"p99 {report['p99_ms']:.0f} ms, max {report['max_ms']:.0f} ms  (targets: p50 <= 40, p99 <= 150)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
