"""How long the console's live preview takes, from a keystroke to the scores on the page, and what the
preview route (``POST /v1/preview``, which the page's request goes through) takes on its own.

Starts a real ``labelwise up`` per stack (embedded: SQLite + the SQL broker; pg-redis: PostgreSQL +
Redis), opens the editor of ``examples/support.yaml`` (10 labels) in headless Chromium, and for each
of ``--n`` messages types its last character into the preview box: the time from that keydown to the
scores rendered for it (the page waits for a 400 ms pause in typing first: that pause is part of the
figure, and printed apart). Then ``--n`` previews straight through the route with httpx.

    .venv/bin/python bench/preview_latency.py [--n 50] [--stacks embedded,pg-redis] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
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

import httpx  # noqa: E402
import yaml  # noqa: E402

from tests.console.server import Server, chromium, labelwise_up, sign_in, wait_for  # noqa: E402

DEBOUNCE_S = 0.4  # hx-trigger="input delay:400ms" in the editor
MESSAGES = ROOT / "tests" / "data" / "support_messages.csv"
SET = ROOT / "examples" / "support.yaml"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "mean_ms": round(statistics.fmean(ms), 1), "n": len(ms)}  # fmt: skip


@contextlib.contextmanager
def stack_env(kind: str) -> Iterator[dict[str, str]]:
    """Environment of a stack: nothing for embedded; a fresh PostgreSQL database and its own Redis queue."""
    if kind == "embedded":
        yield {}
        return
    from tests.stacks import REDIS_URL, postgres_database

    with postgres_database() as url:
        yield {"LABELWISE_DATABASE_URL": url, "LABELWISE_BROKER_URL": REDIS_URL,
               "LABELWISE_QUEUE": f"preview-bench-{uuid.uuid4().hex[:8]}",
               "LABELWISE_SECRET_KEY": Fernet.generate_key().decode()}  # fmt: skip


def page_latencies(server: Server, token: str, texts: list[str], profile: Path) -> list[float]:
    """Keydown of a message's last character to its scores rendered, one message after the other."""
    driver = chromium(profile)
    try:
        sign_in(driver, server.url, token)
        driver.get(f"{server.url}/console/sets/support")
        box = driver.find_element("css selector", "#preview-text")
        driver.execute_script(
            "arguments[0].addEventListener('keydown', () => { window.__t0 = performance.now(); });", box
        )
        out = []
        for text in texts:
            driver.execute_script("arguments[0].value = arguments[1];", box, text[:-1])  # no input event
            box.send_keys(text[-1])
            done = wait_for(driver, lambda d: d.execute_script(
                "const r = Number(document.body.dataset.previewRendered || 0);"
                "return r > window.__t0 && document.querySelector('#preview-sides') ? r - window.__t0 : 0;"
            ))  # fmt: skip
            out.append(float(done) / 1000)
            time.sleep(0.2)
        return out
    finally:
        driver.quit()


def route_latencies(server: Server, token: str, texts: list[str]) -> list[float]:
    doc = yaml.safe_load(SET.read_text())
    out = []
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for text in texts:
            started = time.perf_counter()
            r = client.post("/v1/preview", json={"label_set": "support", "document": doc, "texts": [text]})
            out.append(time.perf_counter() - started)
            assert r.status_code == 200 and r.json()["status"] == "done", r.text
    return out


def run_stack(kind: str, texts: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, stack_env(kind) as env, labelwise_up(Path(tmp), **env) as server:
        token = server.tenant("bench")
        doc = yaml.safe_load(SET.read_text())
        r = httpx.put(f"{server.url}/v1/label-sets/support", json=doc, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        route_latencies(server, token, texts[:3])  # label vectors built and cached in the worker
        page = page_latencies(server, token, texts, Path(tmp) / "chromium")
        route = route_latencies(server, token, texts)
    return {"stack": kind, "page": summary(page), "route": summary(route), "debounce_ms": DEBOUNCE_S * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="previews per stack and way (default 50)")
    parser.add_argument("--stacks", default="embedded,pg-redis", help="comma-separated: embedded, pg-redis")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with MESSAGES.open(newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    results = [run_stack(kind, texts) for kind in args.stacks.split(",")]
    load = os.getloadavg()
    out = {"n": args.n, "load_avg_1m_at_end": round(load[0], 2), "cores": os.cpu_count(), "results": results}
    if args.json:
        print(json.dumps(out))
        return
    print(f"preview latency, {args.n} previews per figure ({out['cores']} cores, load {load[0]:.2f} at the end)")
    header = ("stack", "keystroke->scores p50", "p95", "of which the pause", "route p50", "p95")
    print("{:10} {:>22} {:>8}   {:>18}   {:>10} {:>8}".format(*header))
    for r in results:
        page, route = r["page"], r["route"]
        cells = (r["stack"], page["p50_ms"], page["p95_ms"], r["debounce_ms"], route["p50_ms"], route["p95_ms"])
        print("{:10} {:>19.0f} ms {:>5.0f} ms   {:>15.0f} ms   {:>7.0f} ms {:>5.0f} ms".format(*cells))


if __name__ == "__main__":
    main()
