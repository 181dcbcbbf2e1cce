"""Noisy neighbour: how much tenant B, flooding the shared worker, slows tenant A.

One stack (PostgreSQL + Redis by default), one ``labelwise worker`` process, the API (``labelwise api``,
its own process) on 127.0.0.1.
Tenant A sends 10 messages a second through ``POST /v1/jobs``; its latency is each job's
``finished_at - created_at``. First A alone, then A beside tenant B, which at the same time:

- floods the queue at the worker's full rate (measured first: capacity minus A's 10/s), half of it
  against a huge label set that B keeps editing (a new version every few seconds, near the caps);
- has a webhook subscribed to its results that answers slowly with a huge body (a stand-in on
  127.0.0.1: it waits, then streams megabytes; deliveries read at most LABELWISE_MAX_RESPONSE_BYTES);
- holds 50 ``POST /v1/classify`` calls waiting (past ``LABELWISE_SYNC_MAX_WAITS``: 429, tried again).

It prints A's p50/p99 alone and beside B, their ratio (target: p99 beside B <= 2x alone), the worker's
peak resident memory (target: under 1 GB) and what B got through.

    python bench/noisy_neighbour.py [--short] [--seconds S] [--stack pg-redis|embedded] [--tenant-share N]
        [--flood-msgs-s N] [--without classify,webhook,edits] [--json]

``--tenant-share 0`` runs the worker without fair sharing (one first-come, first-served queue, as before).
``--without`` leaves parts of B out, to see what each costs A. Beside the two legs of A's latency (created to
its batch, and in its batch), it prints the API's part of the first: created to the publish recorded.
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
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)  # workers too

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.apiclient import TINY  # noqa: E402
from tests.platforms import Reply, platform  # noqa: E402
from tests.stacks import Stack, make_stack  # noqa: E402

A_RATE_S = 10.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


@contextlib.contextmanager
def api_server(stack: Stack) -> Iterator[str]:
    """The real API (``labelwise api``) in its own process, as it is deployed: tenant B's clients and
    webhook (threads of this process) do not share its interpreter."""
    with stack.start_api() as api:
        yield api.url


def tenant(stack: Stack, name: str) -> dict[str, str]:
    stack.cli("tenant", "create", name)
    token = stack.cli_json("token", "create", "--tenant", name)["token"]
    return {"Authorization": f"Bearer {token}"}


def huge_set(texts: int, version: int) -> dict[str, Any]:
    """A label set with ``texts`` texts to embed (labels of 100 examples), new words each version."""
    labels = [
        {
            "name": f"l{i}",
            "description": f"topic {i} revision {version}",
            "examples": [
                f"message {j} about topic {i} in revision {version}" for j in range(min(100, texts - 1 - i * 101))
            ],
        }
        for i in range(max(1, texts // 101))
    ]
    return {"threshold": 0.2, "labels": labels}


class Tenant:
    """A client of the API that records its jobs' latencies."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30)
        self.job_ids: list[str] = []

    def send(self, label_set: str, text: str) -> None:
        r = self.client.post("/v1/jobs", json={"label_set": label_set, "text": text})
        if r.status_code in (200, 202):
            self.job_ids.append(r.json()["job_id"])

    def latencies_s(self, *, timeout_s: float) -> list[float]:
        """Wait for every job to finish; ``finished_at - created_at`` of each (``unfinished`` counts the
        jobs still not done when ``timeout_s`` ran out)."""
        import datetime as dt

        deadline, out = time.monotonic() + timeout_s, []
        self.unfinished = 0
        for job_id in self.job_ids:
            while True:
                view = self.client.get(f"/v1/jobs/{job_id}").json()
                if view["status"] in ("done", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if not view.get("finished_at"):
                self.unfinished += 1
            else:
                took = dt.datetime.fromisoformat(view["finished_at"]) - dt.datetime.fromisoformat(view["created_at"])
                out.append(took.total_seconds())
        return out


def where_time_went(database_url: str, job_ids: list[str], edits: list[tuple[float, float]] = ()) -> dict[str, Any]:
    """p50/p99 ms of the jobs' two legs: created (the API's insert) to started (its batch claims it:
    the API's publish, the broker, the worker's queue), and started to finished (the batch); and of the
    API's part of the first leg, created to ``enqueued_at`` (the API recorded its publish)."""
    from sqlalchemy import select

    from labelwise.models.db import make_engine
    from labelwise.models.tables import Job

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Job.created_at, Job.enqueued_at, Job.started_at, Job.finished_at).where(Job.id.in_(job_ids))
            ).all()
    finally:
        engine.dispose()
    waits = [(r.started_at - r.created_at).total_seconds() * 1000 for r in rows if r.started_at]
    batches = [(r.finished_at - r.started_at).total_seconds() * 1000 for r in rows if r.started_at and r.finished_at]
    published = [(r.enqueued_at - r.created_at).total_seconds() * 1000 for r in rows if r.enqueued_at]
    done = sorted((r for r in rows if r.started_at and r.finished_at), key=lambda r: r.created_at)
    slowest = sorted(done, key=lambda r: r.finished_at - r.created_at)[-5:][::-1]
    start = done[0].created_at.timestamp() if done else 0.0
    return {
        # when in the phase (s after A's first job) B's PUTs of its huge set began and ended
        "b_edits_s": [[round(a - start, 2), round(b - start, 2)] for a, b in edits],
        # when in the phase (s after A's first job) the slowest jobs came, and their two legs (ms)
        "slowest": [
            [
                round((r.created_at - done[0].created_at).total_seconds(), 2),
                round((r.started_at - r.created_at).total_seconds() * 1000, 1),
                round((r.finished_at - r.started_at).total_seconds() * 1000, 1),
            ]
            for r in slowest
        ],
        "api_publish_p50_ms": round(percentile(published, 50), 1),
        "api_publish_p99_ms": round(percentile(published, 99), 1),
        "to_batch_p50_ms": round(percentile(waits, 50), 1),
        "to_batch_p99_ms": round(percentile(waits, 99), 1),
        "in_batch_p50_ms": round(percentile(batches, 50), 1),
        "in_batch_p99_ms": round(percentile(batches, 99), 1),
    }


def b_finished_msgs_s(database_url: str, tenant_name: str, a_job_ids: list[str]) -> float:
    """How many of B's jobs a second finished while A sent beside it (between A's first and last job's
    ``created_at``): what B got through, so a lower figure for A cannot come from starving B."""
    from sqlalchemy import func, select

    from labelwise.models.db import make_engine
    from labelwise.models.tables import Job, Tenant

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            first, last = conn.execute(
                select(func.min(Job.created_at), func.max(Job.created_at)).where(Job.id.in_(a_job_ids))
            ).one()
            done = conn.execute(
                select(func.count())
                .select_from(Job)
                .join(Tenant, Tenant.id == Job.tenant_id)
                .where(Tenant.name == tenant_name, Job.finished_at >= first, Job.finished_at <= last)
            ).scalar_one()
    finally:
        engine.dispose()
    span_s = (last - first).total_seconds()
    return done / span_s if span_s > 0 else 0.0


def run_a(a: Tenant, seconds: float, stop: threading.Event | None = None) -> None:
    """Tenant A: 10 messages a second, on a fixed schedule (a late send does not shift the next)."""
    start = time.monotonic()
    for i in range(int(seconds * A_RATE_S)):
        time.sleep(max(0.0, start + i / A_RATE_S - time.monotonic()))
        a.send("tiny", f"I was charged twice for order {i}, please refund me")


def capacity_msgs_s(stack: Stack, n: int) -> float:
    """The worker's full rate: a burst of ``n`` messages on the small set, timed to the last one done."""
    name = f"cal{uuid.uuid4().hex[:6]}"
    stack.cli("tenant", "create", name)
    stack.cli("labels", "apply", str(ROOT / "tests" / "data" / "tiny.yaml"), "--tenant", name)
    started = time.monotonic()
    ids = stack.send_many(
        [{"tenant": name, "label_set": "tiny", "text": f"cannot log in, attempt {i}"} for i in range(n)]
    )
    stack.wait_job(ids[-1], timeout_s=600)
    return n / (time.monotonic() - started)


class FloodB:
    """Everything tenant B does at once, each in its own thread, until ``stop``."""

    def __init__(
        self,
        stack: Stack,
        url: str,
        headers: dict[str, str],
        *,
        rate_s: float,
        huge_texts: int,
        edit_every_s: float,
        classify_clients: int = 50,
    ) -> None:
        self.stack, self.url, self.headers = stack, url, headers
        self.rate_s, self.huge_texts, self.edit_every_s = rate_s, huge_texts, edit_every_s
        self.classify_clients = classify_clients
        self.stop = threading.Event()
        self.stats: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []
        self.edits: list[tuple[float, float]] = []  # (began, ended) of each PUT of the huge set, epoch s

    def start(self, tenant_name: str) -> None:
        self.tenant_name = tenant_name
        self.threads = [threading.Thread(target=self._flood)]
        if self.edit_every_s > 0:
            self.threads.append(threading.Thread(target=self._edit_sets))
        self.threads += [threading.Thread(target=self._wait_classify) for _ in range(self.classify_clients)]
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _flood(self) -> None:
        """Messages through the broker (as B's own app would send them) at ``rate_s``, half on the huge set."""
        start, sent, tick = time.monotonic(), 0, 0.1
        while not self.stop.is_set():
            due = int((time.monotonic() - start) * self.rate_s) - sent
            if due > 0:
                calls = [
                    {
                        "tenant": self.tenant_name,
                        "label_set": "huge" if (sent + i) % 2 else "tiny",
                        "text": f"flood {sent + i}",
                    }
                    for i in range(due)
                ]
                self.stack.send_many(calls)
                sent += due
                self.stats["messages_sent"] += due
            time.sleep(tick)

    def _edit_sets(self) -> None:
        """A new version of the huge set every ``edit_every_s``: each is embedded before it serves."""
        version = 1
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            while not self.stop.wait(self.edit_every_s):
                version += 1
                began = time.time()
                r = client.put("/v1/label-sets/huge", json=huge_set(self.huge_texts, version))
                self.edits.append((began, time.time()))
                self.stats[f"label_set_put_{r.status_code}"] += 1

    def _wait_classify(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            while not self.stop.is_set():
                r = client.post("/v1/classify", json={"label_set": "tiny", "text": "where is my invoice"})
                self.stats[f"classify_{r.status_code}"] += 1
                if r.status_code == 429:  # a client that honours Retry-After
                    self.stop.wait(float(r.headers.get("Retry-After", "1")))


class RssSampler(threading.Thread):
    """Peak resident memory of the worker processes (the CLI's process and its children)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak_mb, self.stop = pids, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            total = 0
            for pid in self.pids:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            self.peak_mb = max(self.peak_mb, total / 2**20)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="noisy-"))
    with make_stack(args.stack, home=home, queue=f"noisy-{uuid.uuid4().hex[:8]}") as stack, platform() as webhook:
        share = {} if args.tenant_share is None else {"LABELWISE_TENANT_SHARE": str(args.tenant_share)}
        worker = stack.start_worker(**share)
        stack.warm_up()
        capacity = capacity_msgs_s(stack, args.calibrate) if args.flood_msgs_s is None else args.flood_msgs_s + A_RATE_S
        webhook.script("/hook", Reply(200, delay_s=0.8, stream_bytes=args.webhook_mb * 2**20))
        with api_server(stack) as url:
            a_headers, b_headers = tenant(stack, "tenant-a"), tenant(stack, "tenant-b")
            for h in (a_headers, b_headers):
                assert httpx.put(f"{url}/v1/label-sets/tiny", json=TINY, headers=h).status_code == 201
            r = httpx.put(f"{url}/v1/label-sets/huge", json=huge_set(args.huge_texts, 1), headers=b_headers, timeout=60)
            assert r.status_code == 201, r.text
            hook = {"kind": "webhook", "settings": {"url": f"{webhook.url}/hook", "subscribe": ["tiny", "huge"]},
                    "secrets": {"signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}  # fmt: skip
            if "webhook" not in args.without:
                assert httpx.put(f"{url}/v1/integrations/hook", json=hook, headers=b_headers).status_code == 201
            ready = Tenant(url, b_headers)  # the huge set's first version embedded: it serves from then on
            ready.send("huge", "is the huge set ready")
            ready.latencies_s(timeout_s=600)
            rss = RssSampler([worker.pid])
            rss.start()

            alone = Tenant(url, a_headers)
            run_a(alone, args.seconds)
            alone_s = alone.latencies_s(timeout_s=120)

            b = FloodB(
                stack,
                url,
                b_headers,
                rate_s=max(1.0, capacity - A_RATE_S),
                huge_texts=args.huge_texts,
                edit_every_s=0 if "edits" in args.without else args.edit_every_s,
                classify_clients=0 if "classify" in args.without else 50,
            )
            b.start("tenant-b")
            time.sleep(2.0)  # B is at full tilt before A starts
            beside = Tenant(url, a_headers)
            try:
                run_a(beside, args.seconds)
                beside_s = beside.latencies_s(timeout_s=300)
            finally:
                b.finish()
            rss.stop.set()
            deliveries = len(webhook.requests_to("/hook"))
            b_done = b_finished_msgs_s(stack.database_url, "tenant-b", beside.job_ids)
            legs = {
                "alone": where_time_went(stack.database_url, alone.job_ids),
                "beside_b": where_time_went(stack.database_url, beside.job_ids, b.edits),
            }
    p99_alone, p99_beside = percentile(alone_s, 99), percentile(beside_s, 99)

    def figures(tenant: Tenant, took: list[float]) -> dict[str, Any]:
        ms = [x * 1000 for x in took]
        return {"n": len(ms), "unfinished": tenant.unfinished, "p50_ms": round(percentile(ms, 50), 1),
                "p99_ms": round(percentile(ms, 99), 1)}  # fmt: skip

    return {
        "stack": args.stack,
        "tenant_share": args.tenant_share,
        "seconds_per_phase": args.seconds,
        "worker_capacity_msgs_s": round(capacity, 1) if args.flood_msgs_s is None else None,
        "b_flood_msgs_s": round(max(1.0, capacity - A_RATE_S), 1),  # measured capacity - A's, or --flood-msgs-s
        "b_finished_msgs_s": round(b_done, 1),  # B's jobs done a second while A sent beside it
        "a_alone": figures(alone, alone_s),
        "a_beside_b": figures(beside, beside_s),
        "p99_ratio": round(p99_beside / p99_alone, 2) if p99_alone else None,
        "target_p99_ratio": 2.0,
        "a_legs": legs,
        "worker_peak_rss_mb": round(rss.peak_mb, 1),
        "b": {**dict(b.stats), "webhook_requests": deliveries, "huge_set_texts": args.huge_texts,
              "webhook_body_mb": args.webhook_mb, "edit_every_s": args.edit_every_s,
              "without": sorted(args.without)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="a quick run: 10 s per phase, smaller B")
    parser.add_argument("--seconds", type=float, default=None, help="length of each phase (default 30; --short 10)")
    parser.add_argument("--stack", default="pg-redis", choices=["pg-redis", "embedded", "pg-rabbitmq"])
    parser.add_argument(
        "--huge-texts", type=int, default=None, help="texts in B's huge set (default 5000; --short 1000)"
    )
    parser.add_argument(
        "--webhook-mb", type=int, default=None, help="body of B's webhook answers (default 50; --short 5)"
    )
    parser.add_argument(
        "--calibrate", type=int, default=None, help="messages timed for the worker's rate (200; --short 100)"
    )
    parser.add_argument(
        "--edit-every-s", type=float, default=10.0, help="B's new version of the huge set (10 s; 0: never)"
    )
    parser.add_argument(
        "--tenant-share",
        type=int,
        default=None,
        help="the worker's LABELWISE_TENANT_SHARE (default: the setting's; 0: no fair share, as before it)",
    )
    parser.add_argument(
        "--flood-msgs-s",
        type=float,
        default=None,
        help="B's rate instead of the measured capacity minus A's (to compare runs at one rate)",
    )
    parser.add_argument(
        "--without",
        default="",
        help="comma-separated parts of B to leave out, to see what each costs A: classify (its 50 waiting "
        "calls), webhook (its slow, huge-bodied webhook), edits (its new versions of the huge set)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    args.without = {w.strip() for w in args.without.split(",") if w.strip()}
    if unknown := args.without - {"classify", "webhook", "edits"}:
        parser.error(f"--without: unknown part(s) {', '.join(sorted(unknown))} (classify, webhook, edits)")
    args.seconds = args.seconds or (10.0 if args.short else 30.0)
    args.huge_texts = args.huge_texts or (1000 if args.short else 5000)
    args.webhook_mb = args.webhook_mb or (5 if args.short else 50)
    args.calibrate = args.calibrate or (100 if args.short else 200)
    report = measure(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    alone, beside = report["a_alone"], report["a_beside_b"]
    rates = (
        f"worker {report['worker_capacity_msgs_s']} msgs/s; B floods {report['b_flood_msgs_s']} msgs/s, "
        f"{report['b_finished_msgs_s']} of B's done a second beside A"
    )
    print(f"stack {report['stack']}: {rates}")
    print(f"{'tenant A (10 msg/s)':32} {'alone':>11} {'beside B':>11} {'ratio':>7}")
    print(f"{'p50 ms':32} {alone['p50_ms']:>11} {beside['p50_ms']:>11} {beside['p50_ms'] / alone['p50_ms']:>7.2f}")
    print(f"{'p99 ms':32} {alone['p99_ms']:>11} {beside['p99_ms']:>11} {report['p99_ratio']:>7}  (target <= 2)")
    legs = (("to_batch", "created -> its batch"), ("api_publish", "  of it, the API's"), ("in_batch", "in its batch"))
    la, lb = report["a_legs"]["alone"], report["a_legs"]["beside_b"]
    for leg, label in legs:
        print(f"{'  ' + label + ' p50/p99 ms':32} {la[leg + '_p50_ms']:>5}/{la[leg + '_p99_ms']:<5} "
              f"{lb[leg + '_p50_ms']:>5}/{lb[leg + '_p99_ms']:<5}")  # fmt: skip
    print(f"tenant A jobs unfinished: alone {alone['unfinished']}, beside B {beside['unfinished']}")
    print(f"worker peak RSS {report['worker_peak_rss_mb']} MB (target < 1024); B: {report['b']}")


if __name__ == "__main__":
    main()
