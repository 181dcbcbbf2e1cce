"""What one request costs the API process: CPU milliseconds per request, by kind of request.

A flooding tenant's cheapest requests are the ones the API refuses or answers at once; what each costs the
API's process (its interpreter lock and its share of the cores) is taken from every other tenant's
requests (``bench/noisy_neighbour.py``). This starts ``labelwise api`` on PostgreSQL + Redis (no worker:
nothing is classified), then, from ``--clients`` threads, sends ``--n`` requests of each kind and reads
the API process's CPU time before and after (the kinds take turns, ``--rounds`` times, and the median
round of each is shown), once per ``--token-cache-s`` (an API process each; by default 0, every
request's token looked up in the database, then 5, the default):

- ``get_label_sets``: ``GET /v1/label-sets`` (a token lookup and one small query);
- ``classify_429``: ``POST /v1/classify`` past ``LABELWISE_SYNC_MAX_WAITS`` (its waits are held open
  by other threads: no worker answers them), refused with 429;
- ``post_jobs``: ``POST /v1/jobs`` (insert and publish);
- ``post_jobs_big_set``: the same against a label set of 5,000 texts (its document about 0.5 MB, within the
  caps' default): what a job costs must not grow with its set's document;
- ``unauthorized``: ``GET /v1/label-sets`` with an unknown token (401).

    python bench/api_cost.py [--n 400] [--clients 4] [--rounds 5] [--token-cache-s 0 5] [--json]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)  # the API too

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.apiclient import TINY  # noqa: E402
from tests.stacks import make_stack  # noqa: E402


def cpu_ms(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return (times.user + times.system) * 1000


def timed(pid: int, n: int, clients: int, call: Any) -> dict[str, Any]:
    """``n`` calls of ``call(client)`` from ``clients`` threads: the API's CPU ms per request, requests a
    second, and the statuses seen."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    local = threading.local()

    def one(_: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=30)
        status = call(client)
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    before, started = cpu_ms(pid), time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))
    took_s, used = time.monotonic() - started, cpu_ms(pid) - before
    return {"cpu_ms_per_request": round(used / n, 2), "requests_s": round(n / took_s, 1), "statuses": statuses}


def big_set(texts: int) -> dict[str, Any]:
    """A label set of ``texts`` texts, 101 to a label (a description and 100 examples of ~110 characters)."""
    filler = "the customer writes about an order, a refund, a parcel and an account they cannot open"
    return {
        "threshold": 0.2,
        "labels": [
            {"name": f"l{i}", "description": f"topic {i}", "examples": [f"{j}: {filler} ({i})" for j in range(100)]}
            for i in range(texts // 101)
        ],
    }


def hold_open(url: str, body: dict[str, str], headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the API stops first at the end
        httpx.post(url, json=body, headers=headers, timeout=150)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="api-cost-"))
    with make_stack("pg-redis", home=home, queue=f"apicost-{uuid.uuid4().hex[:8]}") as stack:
        stack.cli("tenant", "create", "t")
        token = stack.cli_json("token", "create", "--tenant", "t")["token"]
        auth = {"Authorization": f"Bearer {token}"}
        variants = {
            f"token_cache_s={seconds:g}": measure_api(stack, auth, args, seconds) for seconds in args.token_cache_s
        }
    return {"n": args.n, "clients": args.clients, "cores": os.cpu_count(), "variants": variants}


def measure_api(stack: Any, auth: dict[str, str], args: argparse.Namespace, token_cache_s: float) -> dict[str, Any]:
    env = {"LABELWISE_SYNC_MAX_WAITS": "2", "LABELWISE_SYNC_TIMEOUT_S": "120"}
    with stack.start_api(**env, LABELWISE_TOKEN_CACHE_S=str(token_cache_s)) as api:
        url, pid = api.url, api.proc.pid
        assert httpx.put(f"{url}/v1/label-sets/tiny", json=TINY, headers=auth).status_code in (200, 201)
        r = httpx.put(f"{url}/v1/label-sets/big", json=big_set(5000), headers=auth, timeout=120)
        assert r.status_code in (200, 201), r.text
        body = {"label_set": "tiny", "text": "where is my invoice"}
        # two waits held open (no worker answers them): every further classify call is refused
        holders = [
            threading.Thread(target=hold_open, args=(f"{url}/v1/classify", body, auth), daemon=True) for _ in range(2)
        ]
        for t in holders:
            t.start()
        deadline = time.monotonic() + 30
        while True:  # a probe that takes a free slot holds it too (its wait goes on after it gives up)
            with contextlib.suppress(httpx.TimeoutException):
                if httpx.post(f"{url}/v1/classify", json=body, headers=auth, timeout=2).status_code == 429:
                    break
            assert time.monotonic() < deadline, "the classify cap never filled"
            time.sleep(0.1)
        kinds = {
            "get_label_sets": lambda c: c.get(f"{url}/v1/label-sets", headers=auth).status_code,
            "classify_429": lambda c: c.post(f"{url}/v1/classify", json=body, headers=auth).status_code,
            "post_jobs": lambda c: c.post(f"{url}/v1/jobs", json=body, headers=auth).status_code,
            "post_jobs_big_set": lambda c: (
                c.post(f"{url}/v1/jobs", json={**body, "label_set": "big"}, headers=auth).status_code
            ),
            "unauthorized": lambda c: (
                c.get(f"{url}/v1/label-sets", headers={"Authorization": "Bearer lw_nosuchtoken"}).status_code
            ),
        }
        for call in kinds.values():  # warm every path once (imports, compiled queries)
            timed(pid, 20, 1, call)
        # the kinds take turns, in rounds of n / rounds requests each: a burst of noise on the host (these
        # are 2 cores) lands in one round of each, and the median of the rounds leaves it out
        rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind, call in kinds.items():
                rounds[kind].append(timed(pid, max(1, args.n // args.rounds), args.clients, call))
        return {kind: median_round(done) for kind, done in rounds.items()}


def median_round(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median CPU per request, with every round's figure beside it."""
    ordered = sorted(done, key=lambda r: r["cpu_ms_per_request"])
    statuses: dict[int, int] = {}
    for r in done:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        **ordered[len(ordered) // 2],
        "rounds_cpu_ms": [r["cpu_ms_per_request"] for r in done],
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="requests of each kind (400)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="the kinds take turns this many times; the median round is shown (5)"
    )
    parser.add_argument(
        "--token-cache-s",
        type=float,
        nargs="+",
        default=[0.0, 5.0],
        help="the API's LABELWISE_TOKEN_CACHE_S, one run each (0 5: every token looked up, then the default)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    report = measure(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    variants = report["variants"]
    print(f"labelwise api, PostgreSQL + Redis, {args.n} requests of each kind from {args.clients} threads")
    print("API CPU ms per request (requests a second)")
    print(f"{'request':18}" + "".join(f"{name:>24}" for name in variants))
    for kind in next(iter(variants.values())):
        cells = [f"{v[kind]['cpu_ms_per_request']} ({v[kind]['requests_s']})" for v in variants.values()]
        print(f"{kind:18}" + "".join(f"{c:>24}" for c in cells))
    if len(variants) == 2:
        first, last = variants.values()
        ratios = [f"{k} {last[k]['cpu_ms_per_request'] / first[k]['cpu_ms_per_request']:.2f}" for k in first]
        print("ratio (last / first): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
