"""Where a worker's CPU goes, per message: the profile behind bench/throughput.py's labelwise/ceiling.

One worker process (one ONNX thread, like each of the default two) drains N messages pre-enqueued on
Redis, with results committed to PostgreSQL. Measured from outside, as CPU seconds per message:
  - the worker's batcher thread (encoding + the pipeline's SQL work), its main thread (Celery's
    consumer: Redis fetch, unacked bookkeeping, acks) and its other threads (Celery's pool threads
    calling the task, the background refiner);
  - the PostgreSQL and Redis servers;
and, in this process on the same texts in batches of the same size, bare encoding alone. The
encoding's share of all that CPU bounds labelwise/ceiling from above: on a machine whose cores are
all busy, the rest is time the ceiling spends encoding.

    .venv/bin/python bench/profile_worker.py [--n 3000] [--batch-size 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench.throughput import REDIS_URL, pg_database, publish, seed, start, stop, wait_until, worker_env  # noqa: E402


def server_cpu_s() -> dict[str, float]:
    """CPU seconds so far of every PostgreSQL and Redis server process."""
    import psutil

    out = {"postgresql": 0.0, "redis": 0.0}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        name, times = proc.info["name"] or "", proc.info["cpu_times"]
        for key, marker in (("postgresql", "postgres"), ("redis", "redis")):
            if marker in name and times is not None:
                out[key] += times.user + times.system
    return out


def thread_cpu_s(pid: int) -> dict[int, float]:
    import psutil

    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def bare_encode_s(texts: list[str], batch_size: int, cache_dir: Path) -> float:
    """CPU seconds to encode ``texts`` in calls of ``batch_size`` on one ONNX thread, in this process."""
    from labelwise.classify.onnx import OnnxEncoder

    encoder = OnnxEncoder(cache_dir=cache_dir, threads=1)
    encoder.encode(texts[:batch_size])
    t0 = time.thread_time()
    for i in range(0, len(texts), batch_size):
        encoder.encode(texts[i : i + batch_size])
    return time.thread_time() - t0


def profile(texts: list[str], *, batch_size: int, home: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from labelwise.models.tables import Job

    with pg_database() as url:
        engine, sessions, doc = seed(url)
        queue = f"profile-{uuid.uuid4().hex[:8]}"
        calls = [
            {"id": str(uuid.uuid4()), "kwargs": {"tenant": "bench", "label_set": doc.name, "text": t}} for t in texts
        ]
        ids = [c["id"] for c in calls]
        publish(REDIS_URL, queue, "labelwise.classify", calls)
        env = worker_env(
            {
                "LABELWISE_WORKER_PROCESSES": "1",
                "LABELWISE_TORCH_THREADS": "1",
                "LABELWISE_BATCH_SIZE": str(batch_size),
                "LABELWISE_ONNX_DIR": str(home / "onnx"),
            },
            home=home,
            database_url=url,
            broker_url=REDIS_URL,
            queue=queue,
        )

        def done() -> int:
            with sessions() as s:
                return int(
                    s.scalar(select(func.count()).select_from(Job).where(Job.status == "done", Job.id.in_(ids))) or 0
                )

        proc = start([sys.executable, "-m", "labelwise", "worker"], env, home / "worker.log")
        try:
            while done() == 0:  # the model is loaded and messages flow: start measuring
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}")
                time.sleep(0.05)
            n0, threads0, servers0 = done(), thread_cpu_s(proc.pid), server_cpu_s()
            wait_until(done, len(texts), timeout_s=1200, proc=proc)
            threads1, servers1 = thread_cpu_s(proc.pid), server_cpu_s()
        finally:
            stop(proc)
        engine.dispose()
    n = len(texts) - n0
    spent = {tid: threads1[tid] - threads0.get(tid, 0.0) for tid in threads1}
    batcher = max((tid for tid in spent if tid != proc.pid), key=lambda tid: spent[tid])
    encode = bare_encode_s(texts, batch_size, home / "onnx") * n / len(texts)
    parts = {
        "encode (bare, same batches)": encode,
        "batcher: SQL, scoring, the rest": spent[batcher] - encode,
        "celery consumer (main thread)": spent.get(proc.pid, 0.0),
        "pool threads + refiner": sum(v for tid, v in spent.items() if tid not in (batcher, proc.pid)),
        "postgresql server": servers1["postgresql"] - servers0["postgresql"],
        "redis server": servers1["redis"] - servers0["redis"],
    }
    per_msg_ms = {k: 1000 * v / n for k, v in parts.items()}
    total = sum(per_msg_ms.values())
    return {
        "n": n,
        "batch_size": batch_size,
        "ms_per_msg": per_msg_ms,
        "total_ms_per_msg": total,
        "encode_share": per_msg_ms["encode (bare, same batches)"] / total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="messages (default 3000)")
    parser.add_argument("--data", type=Path, default=BANKING77_TEST, help="CSV with a text column")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = read_texts(args.data)
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    with tempfile.TemporaryDirectory(prefix="lw-profile-") as tmp:
        report = profile(texts, batch_size=args.batch_size, home=Path(tmp))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"CPU per message, one worker process, batch {report['batch_size']}, {report['n']} messages measured")
    for name, ms in report["ms_per_msg"].items():
        print(f"  {name:34s} {ms:6.2f} ms  {100 * ms / report['total_ms_per_msg']:5.1f}%")
    print(f"  {'total':34s} {report['total_ms_per_msg']:6.2f} ms")
    print(f"encoding's share of the CPU: {report['encode_share']:.2f} (an upper bound of labelwise/ceiling)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
