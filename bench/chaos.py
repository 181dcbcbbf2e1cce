"""Nothing lost, nothing stuck: a fault-injection benchmark.

On each stack (embedded defaults; PostgreSQL + Redis; PostgreSQL + RabbitMQ with a quorum queue), with
throwaway servers of its own, it sends N messages for two tenants (half from a plain Celery client with
idempotency keys, half through ``POST /v1/jobs`` with Idempotency-Key), some with a Slack reply and all of
one tenant's results to a signed webhook, both answered by flaky stand-ins on 127.0.0.1 (500s, timeouts,
300 MB bodies, non-JSON bodies, Retry-After far ahead). Meanwhile it SIGKILLs a worker process every few
seconds (two workers run, the killed one is restarted), lets the API process die between committing a job
and publishing it (a test-only fault point; the client retries with the same key), restarts the database
and the broker, and mixes in poison messages (lone surrogates, wrong types, 1e999, megabyte metadata,
unknown fields). Then the faults stop, the stand-ins recover, and the system drains.

Per stack it prints: sent, done, failed with a reason, lost (no job, or still queued/running), classified
twice, deliveries made, duplicate deliveries at the receiver (by delivery id), dead, stuck pending, and the
worker's peak RSS.

    .venv/bin/python bench/chaos.py [--stacks embedded,pg-redis,pg-rabbitmq] [--messages 3000] [--json]
    .venv/bin/python bench/chaos.py --short     # the CI version: 200 messages a stack, fewer faults
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos_run import Plan, run_stack  # noqa: E402

STACKS = ("embedded", "pg-redis", "pg-rabbitmq")
ROWS = (
    ("sent", "sent"),
    ("done", "done"),
    ("failed with a reason", "failed"),
    ("  of them poison (expected)", "poison_failed"),
    ("  good messages failed", "good_failed"),
    ("lost (no job / queued / running)", "lost"),
    ("classified twice", "classified_twice"),
    ("retried after a fault (attempts > 1)", "retried"),
    ("deliveries expected (one per job and target)", "deliveries_expected"),
    ("deliveries made", "delivered"),
    ("  received (distinct delivery ids)", "received"),
    ("duplicate deliveries at receiver", "duplicates"),
    ("dead deliveries", "dead"),
    ("stuck pending", "stuck"),
    ("worker peak RSS, MB", "peak_rss_mb"),
    ("  growth over warm-up, MB", "rss_growth_mb"),
    ("worker SIGKILLs", "worker_kills"),
    ("API deaths before publish", "api_deaths"),
    ("database restarts", "db_restarts"),
    ("broker restarts", "broker_restarts"),
    ("drain, s", "drain_s"),
)
TARGETS = {"lost": 0, "stuck": 0, "classified_twice": 0, "good_failed": 0, "poison_done": 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stacks", default=",".join(STACKS), help="comma-separated: " + ", ".join(STACKS))
    parser.add_argument("--messages", type=int, default=3000, help="messages per stack (at least 3,000 for the report)")
    parser.add_argument("--rate", type=float, default=60.0, help="messages sent per second")
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between worker SIGKILLs")
    parser.add_argument("--short", action="store_true", help="the CI version: 200 messages, faults every second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep each stack's logs and files in this directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop our servers and processes on SIGTERM as on Ctrl-C
    plan = Plan(messages=args.messages, rate=args.rate, kill_every_s=args.kill_every, seed=args.seed)
    if args.short:
        plan = Plan(
            messages=200, rate=50.0, kill_every_s=1.2, seed=args.seed, api_death_chance=0.03, drain_timeout_s=150
        )
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = [s for s in stacks if s not in STACKS]
    if unknown:
        parser.error(f"unknown stack(s) {', '.join(unknown)}; choose from {', '.join(STACKS)}")
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as cleanup:
        tmp = args.keep or cleanup.enter_context(tempfile.TemporaryDirectory(prefix="labelwise-chaos-"))
        for stack in stacks:
            started = time.monotonic()
            results[stack] = run_stack(stack, plan, home=Path(tmp) / stack, log=None if args.json else _progress)
            results[stack]["seconds"] = round(time.monotonic() - started, 1)
    met = all(r.get(k) == v for r in results.values() for k, v in TARGETS.items()) and all(
        r["delivered"] == r["deliveries_expected"] == r["received"] for r in results.values()
    )
    if args.json:
        print(json.dumps({"plan": plan.__dict__, "stacks": results, "targets_met": met}, indent=2))
    else:
        print(table(results))
        print(
            "\ntargets (lost 0, stuck 0, classified twice 0, every bad message failed and no good one, every "
            f"delivery made and received): {'met' if met else 'MISSED'}"
        )
    return 0 if met else 1


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    width = max(len(label) for label, _ in ROWS)
    lines = [f"{'':<{width}}  " + "  ".join(f"{n:>12}" for n in names)]
    for label, key in ROWS:
        lines.append(f"{label:<{width}}  " + "  ".join(f"{_cell(results[n].get(key)):>12}" for n in names))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    sys.exit(main())
