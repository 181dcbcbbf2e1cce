"""What labelwise costs besides the model: messages/s and CPU per message with a zero-cost encoder.

The worker runs with a bench-only encoder that returns fixed vectors (bench/zero_worker.py), so
everything it spends is the consumer, the SQL, scoring and acknowledgement: the number that decides how
far a GPU host can go, where encoding a short message costs microseconds. Per stack (embedded; Redis +
PostgreSQL; RabbitMQ + PostgreSQL), on throwaway servers of its own so their CPU can be read apart:
N messages are queued, one single-process worker drains them, and from its first claim to its last
commit it reports messages/s, and CPU ms per message of the worker process, of the broker's server and
of the database's server. Task events are off (Flower), and label vectors are not refined from traffic
during the run (label-side work, not per message; the traffic is still recorded).

    .venv/bin/python bench/pipeline.py [--stacks embedded,pg-redis,pg-rabbitmq] [--n 20000] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.services import throwaway  # noqa: E402
from bench.throughput import publish, seed, start, stop, wait_until  # noqa: E402

STACKS = ("embedded", "pg-redis", "pg-rabbitmq")
TEXTS = [
    "I was charged twice for my subscription this month",
    "The app crashes every time I open the settings page",
    "I cannot log in, the password reset email never arrives",
    "Where can I download the invoice for last month?",
]


class CpuClock:
    """Samples a process tree's CPU seconds (user + system, reaped children included) every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def cpu(self) -> float:
        total = 0.0
        with contextlib.suppress(psutil.Error):
            t = self.proc.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.cpu()))
            self._stop.wait(0.02)

    def at(self, when: float) -> float:
        """CPU seconds at wall time ``when`` (the nearest sample)."""
        return min(self.samples, key=lambda s: abs(s[0] - when))[1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def servers(kind: str, home: Path) -> Iterator[tuple[str, str, dict[str, int]]]:
    """Database URL, broker URL and the pids whose CPU is the servers' (none for the embedded files)."""
    if kind == "embedded":
        yield f"sqlite:///{home / 'db.sqlite'}", f"sqla+sqlite:///{home / 'broker.sqlite'}", {}
        return
    broker_kind = "redis" if kind == "pg-redis" else "rabbitmq"
    with throwaway("postgresql", home / "pg") as pg, throwaway(broker_kind, home / broker_kind) as broker:
        assert pg.proc is not None and broker.proc is not None
        yield pg.url, broker.url, {"database": pg.proc.pid, "broker": broker.proc.pid}


def run(kind: str, *, n: int, batch_size: int, home: Path, extra_env: dict[str, str]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from labelwise.models.tables import Job

    with servers(kind, home) as (database_url, broker_url, pids):
        engine, sessions, doc = seed(database_url)
        queue = f"pipe-{uuid.uuid4().hex[:8]}"
        calls = [
            {
                "id": str(uuid.uuid4()),
                "kwargs": {"tenant": "bench", "label_set": doc.name, "text": TEXTS[i % 4] + f" #{i}"},
            }
            for i in range(n)
        ]
        queue_type = "quorum" if kind == "pg-rabbitmq" else "classic"
        publish(broker_url, queue, "labelwise.classify", calls, queue_type=queue_type)
        clocks = {name: CpuClock(pid) for name, pid in pids.items()}
        env = {
            **extra_env,
            "LABELWISE_HOME": str(home),
            "LABELWISE_DATABASE_URL": database_url,
            "LABELWISE_BROKER_URL": broker_url,
            "LABELWISE_QUEUE": queue,
            "LABELWISE_SECRET_KEY": Fernet.generate_key().decode(),
            "LABELWISE_WORKER_PROCESSES": "1",
            "LABELWISE_BATCH_SIZE": str(batch_size),
            "LABELWISE_LOG_LEVEL": "WARNING",
            "LABELWISE_TASK_EVENTS": "false",
            # label-side work (refining label vectors from traffic, seconds per rebuild) is the model's
            # side: it runs at most LABELWISE_TRAFFIC_REFINE_SHARE of the time and not per message, so a
            # short run would overweight it; traffic is still recorded per message
            "LABELWISE_TRAFFIC_REFRESH_EVERY": "1000000000",
            "LABELWISE_QUEUE_TYPE": queue_type,
        }
        proc = start([sys.executable, str(ROOT / "bench" / "zero_worker.py"), "worker"], env, home / "worker.log")
        clocks["worker"] = CpuClock(proc.pid)

        def done() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) or 0)

        try:
            wait_until(done, n, timeout_s=1200, proc=proc)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; worker log:\n{(home / 'worker.log').read_text()[-3000:]}") from e
        finally:
            stop(proc)
            for clock in clocks.values():
                clock.stop()
        with sessions() as s:
            first, last = s.execute(select(func.min(Job.started_at), func.max(Job.finished_at))).one()
        engine.dispose()
    seconds = (last - first).total_seconds()
    out: dict[str, Any] = {"n": n, "seconds": round(seconds, 2), "msgs_s": round(n / seconds, 1)}
    for name, clock in clocks.items():
        cpu_s = clock.at(last.timestamp()) - clock.at(first.timestamp())
        out[f"{name}_cpu_ms_per_msg"] = round(1000 * cpu_s / n, 3)
    out["msgs_s_per_worker_core"] = round(n / max(1e-9, out["worker_cpu_ms_per_msg"] * n / 1000), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--n", type=int, default=20_000, help="messages per stack")
    parser.add_argument("--batch-size", type=int, default=None, help="LABELWISE_BATCH_SIZE (default: the setting's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from labelwise.settings import Settings

    batch = args.batch_size or Settings().batch_size
    report: dict[str, Any] = {"n": args.n, "batch_size": batch, "cpus": os.cpu_count(), "stacks": {}}
    with tempfile.TemporaryDirectory(prefix="lw-pipeline-") as tmp:
        for kind in [s for s in args.stacks.split(",") if s]:
            home = Path(tmp) / kind
            home.mkdir()
            report["stacks"][kind] = run(kind, n=args.n, batch_size=batch, home=home, extra_env={"HF_HUB_OFFLINE": "1"})
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def render(r: dict[str, Any]) -> str:
    head = f"pipeline with a zero-cost encoder: {r['n']} messages a stack, batch {r['batch_size']}, {r['cpus']} CPUs"
    columns = ("msgs/s", "msgs/s per worker core", "worker CPU ms/msg", "broker", "database")
    lines = [head, f"{'stack':<12}" + "".join(f"{c:>24}" for c in columns)]
    for kind, s in r["stacks"].items():
        cells = (
            f"{s['msgs_s']:,.0f}",
            f"{s['msgs_s_per_worker_core']:,.0f}",
            f"{s['worker_cpu_ms_per_msg']:.3f}",
            f"{s.get('broker_cpu_ms_per_msg', float('nan')):.3f}",
            f"{s.get('database_cpu_ms_per_msg', float('nan')):.3f}",
        )
        lines.append(f"{kind:<12}" + "".join(f"{c:>24}" for c in cells))
    lines.append("targets: >= 2,000 msgs/s per worker core, <= 0.5 ms worker CPU per message (Redis, RabbitMQ)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
