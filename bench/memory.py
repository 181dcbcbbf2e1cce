"""Worker memory over a long run: resident memory of one `labelwise worker` (all its processes) after
5,000 and after 10,000 messages on Redis + PostgreSQL. Target: <= 1 GB, and no growth across the
second 5,000.

    .venv/bin/python bench/memory.py [--n 10000] [--backend onnx] [--json]
"""

from __future__ import annotations

import argparse
import json
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
from bench.throughput import REDIS_URL, pg_database, publish, seed, start, stop, tree_rss_mb, worker_env  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = measure(args.n, backend=args.backend)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"worker memory ({args.n} messages, backend {args.backend}): "
            f"after warm-up {report['rss_start_mb']:.0f} MB, "
            f"after {args.n // 2} {report['rss_half_mb']:.0f} MB, after {args.n} {report['rss_end_mb']:.0f} MB; "
            f"growth over the second half {report['growth_second_half_mb']:+.0f} MB  (target <= 1024 MB, no growth)"
        )
    return 0


def measure(n: int, *, backend: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from labelwise.models.tables import Job

    texts = read_texts(BANKING77_TEST)
    with tempfile.TemporaryDirectory(prefix="lw-memory-") as tmp, pg_database() as url:
        home = Path(tmp)
        engine, sessions, _ = seed(url)
        queue = f"mem-{uuid.uuid4().hex[:8]}"
        env = worker_env({"LABELWISE_BACKEND": backend}, home=home, database_url=url, broker_url=REDIS_URL, queue=queue)
        proc = start([sys.executable, "-m", "labelwise", "worker"], env, home / "worker.log")

        def done() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) or 0)

        try:
            publish(REDIS_URL, queue, "labelwise.classify", [_call(texts[0])])
            _wait(done, 1, proc)
            samples = {"rss_start_mb": tree_rss_mb(proc.pid)}
            for name, upto in (("rss_half_mb", n // 2), ("rss_end_mb", n)):
                count = upto - done() + 1
                publish(REDIS_URL, queue, "labelwise.classify", [_call(texts[i % len(texts)]) for i in range(count)])
                _wait(done, upto + 1, proc)
                samples[name] = tree_rss_mb(proc.pid)
        finally:
            stop(proc)
            engine.dispose()
    samples["growth_second_half_mb"] = samples["rss_end_mb"] - samples["rss_half_mb"]
    return {"n": n, "backend": backend, **samples}


def _call(text: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "kwargs": {"tenant": "bench", "label_set": "support", "text": text}}


def _wait(count: Any, n: int, proc: Any, timeout_s: float = 3600) -> None:
    deadline = time.monotonic() + timeout_s
    while count() < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker stopped or timed out at {count()} of {n}")
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
