"""Bare-encoding ceiling of this machine: texts/s of each backend over processes x threads x batch size.

No queue, no database: ``procs`` fresh (spawned) processes each load the encoder with ``threads``
threads, wait on a barrier, then encode their share of the texts in calls of ``batch`` texts. A cell's
figure is all texts over the wall time from the barrier to the last process done; the median of
``--repeats`` runs is reported. Also measured, in those fresh processes: the backend's import time,
model load time and resident memory after loading, and the cosine parity of ONNX against torch.

    .venv/bin/python bench/ceiling.py [--n 1000] [--data FILE.csv] [--backends torch,onnx] [--json]

``measure_ceiling`` and ``best_layout`` are the reusable parts (e.g. for bench/throughput.py); keep
torch out of this module's top level, since spawned children import it.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``labelwise`` importable from the checkout
    sys.path.insert(0, str(ROOT))

BANKING77_TEST = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"
BACKENDS = ("torch", "onnx", "onnx-int8")  # onnx-int8: the dynamically quantized model (LABELWISE_PRECISION=int8)
LAYOUTS = ((1, 2), (2, 1))  # (processes, threads per process)
BATCHES = (1, 8, 16, 32, 64)
NO_SPLIT = 1 << 20  # encoder batch size / token budget large enough that a call is one batch


@dataclass(frozen=True)
class Startup:
    """What a fresh process pays before its first text: import, load, resident memory."""

    import_s: float
    load_s: float
    rss_mb: float


@dataclass(frozen=True)
class Cell:
    backend: str
    procs: int
    threads: int
    batch: int
    texts_per_s: float
    runs: tuple[float, ...]


def read_texts(path: Path, *, n: int | None = None) -> list[str]:
    """The ``text`` column of a CSV file, at most ``n`` rows."""
    with open(path, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return texts[:n] if n else texts


def make_encoder(backend: str, *, threads: int, cache_dir: Path, model: str | None = None) -> Any:
    """An unloaded encoder of ``backend`` whose ``encode`` never splits the texts it is given."""
    from labelwise.settings import DEFAULT_MODEL

    model = model or DEFAULT_MODEL
    if backend == "torch":
        from labelwise.classify.sentence import SentenceTransformerEncoder

        return SentenceTransformerEncoder(model, threads=threads, batch_size=NO_SPLIT)
    if backend in ("onnx", "onnx-int8"):
        from labelwise.classify.onnx import OnnxEncoder

        return OnnxEncoder(
            model,
            cache_dir=cache_dir,
            threads=threads,
            batch_size=NO_SPLIT,
            max_batch_tokens=NO_SPLIT,
            quantize=backend == "onnx-int8",
        )
    raise ValueError(f"unknown backend {backend!r}; one of {BACKENDS}")


def _import_backend(backend: str) -> None:
    if backend == "torch":
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _child(conn: Any, barrier: Any, backend: str, threads: int, cache_dir: str) -> None:
    """One encoding process: report startup, then for each (texts, batch) received: wait, encode, report."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process, ``threads`` threads: nothing else
    t0 = time.perf_counter()
    _import_backend(backend)
    t1 = time.perf_counter()
    encoder = make_encoder(backend, threads=threads, cache_dir=Path(cache_dir))
    encoder.load()
    encoder.encode(["warm-up"])
    # Plain dicts over the pipe: a class pickled in a spawned child may name ``__mp_main__``.
    conn.send(asdict(Startup(import_s=t1 - t0, load_s=time.perf_counter() - t1, rss_mb=_rss_mb())))
    while (job := conn.recv()) is not None:
        texts, batch = job
        encoder.encode(texts[: 2 * batch])  # untimed: first calls with new shapes allocate
        barrier.wait()
        start = time.monotonic()  # system-wide clock: comparable across processes
        for i in range(0, len(texts), batch):
            encoder.encode(texts[i : i + batch])
        conn.send((start, time.monotonic()))


class EncoderPool:
    """``procs`` spawned processes holding a loaded encoder each; measure many batch sizes on one load."""

    def __init__(self, backend: str, *, procs: int, threads: int, cache_dir: Path) -> None:
        ctx = mp.get_context("spawn")  # fresh interpreters: honest import/RSS figures, no forked sessions
        self.barrier = ctx.Barrier(procs)
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_child, args=(child, self.barrier, backend, threads, str(cache_dir)), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.startups = [Startup(**_recv(c)) for c in self.conns]

    def measure(self, texts: Sequence[str], batch: int) -> float:
        """Texts per second of all processes together, each encoding an equal share of ``texts``."""
        shares = [list(texts[i :: len(self.conns)]) for i in range(len(self.conns))]
        for conn, share in zip(self.conns, shares, strict=True):
            conn.send((share, batch))
        spans = [_recv(conn) for conn in self.conns]
        return len(texts) / (max(end for _, end in spans) - min(start for start, _ in spans))

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for p in self.procs:
            p.join(timeout=30)


def _recv(conn: Any, *, timeout_s: float = 900.0) -> Any:
    """The next message of a child; a crashed or stuck child raises instead of hanging the bench."""
    if not conn.poll(timeout_s):
        raise TimeoutError(f"no answer from an encoding process in {timeout_s:.0f} s (did it crash?)")
    return conn.recv()


@contextmanager
def encoder_pool(backend: str, *, procs: int, threads: int, cache_dir: Path) -> Iterator[EncoderPool]:
    pool = EncoderPool(backend, procs=procs, threads=threads, cache_dir=cache_dir)
    try:
        yield pool
    finally:
        pool.close()


def measure_ceiling(
    texts: Sequence[str], backend: str, procs: int, threads: int, batch: int, *, cache_dir: Path, repeats: int = 3
) -> float:
    """Median texts/s of ``repeats`` runs of one cell (starts and stops its own processes)."""
    prepare(backend, cache_dir)
    with encoder_pool(backend, procs=procs, threads=threads, cache_dir=cache_dir) as pool:
        return statistics.median(pool.measure(texts, batch) for _ in range(repeats))


def sweep(
    texts: Sequence[str],
    backends: Sequence[str],
    *,
    cache_dir: Path,
    layouts: Sequence[tuple[int, int]] = LAYOUTS,
    batches: Sequence[int] = BATCHES,
    repeats: int = 3,
) -> tuple[list[Cell], dict[str, list[Startup]]]:
    """Every (backend, layout, batch) cell, and each backend's startup figures.

    Per layout, every backend's processes are started once and the runs are interleaved (repeat by
    repeat, batch by batch, backend by backend), so a busy spell on a shared machine hits all
    backends alike instead of whichever happened to run then.
    """
    for backend in backends:
        prepare(backend, cache_dir)
    runs: dict[tuple[str, int, int, int], list[float]] = {}
    startups: dict[str, list[Startup]] = {b: [] for b in backends}
    for procs, threads in layouts:
        with ExitStack() as stack:
            pools = {
                b: stack.enter_context(encoder_pool(b, procs=procs, threads=threads, cache_dir=cache_dir))
                for b in backends
            }
            for backend, pool in pools.items():
                startups[backend] += pool.startups
            for _ in range(repeats):
                for batch in batches:
                    for backend, pool in pools.items():
                        runs.setdefault((backend, procs, threads, batch), []).append(pool.measure(texts, batch))
    cells = [Cell(*key, texts_per_s=statistics.median(r), runs=tuple(r)) for key, r in runs.items()]
    return cells, startups


def best_layout(
    texts: Sequence[str],
    backend: str,
    *,
    cache_dir: Path,
    layouts: Sequence[tuple[int, int]] = LAYOUTS,
    batches: Sequence[int] = BATCHES,
    repeats: int = 3,
) -> Cell:
    """The fastest (procs, threads, batch) of ``backend`` on ``texts``."""
    cells, _ = sweep(texts, [backend], cache_dir=cache_dir, layouts=layouts, batches=batches, repeats=repeats)
    return max(cells, key=lambda c: c.texts_per_s)


def prepare(backend: str, cache_dir: Path) -> None:
    """Export the ONNX file before timing anything (in a child process: torch stays out of this one)."""
    if backend in ("onnx", "onnx-int8"):
        from labelwise.classify.onnx_export import ensure_exported
        from labelwise.settings import DEFAULT_MODEL

        ensure_exported(DEFAULT_MODEL, cache_dir, quantize=backend == "onnx-int8")


def parity(texts: Sequence[str], *, cache_dir: Path) -> dict[str, float]:
    """Cosine of ONNX against torch, per text: min and mean (imports torch into this process)."""
    a = make_encoder("torch", threads=0, cache_dir=cache_dir).encode(list(texts))
    b = make_encoder("onnx", threads=0, cache_dir=cache_dir).encode(list(texts))
    cos = (a * b).sum(axis=1)
    return {"n": len(texts), "min": float(cos.min()), "mean": float(cos.mean())}


def _startup_summary(startups: Sequence[Startup]) -> dict[str, float]:
    return {k: statistics.median(getattr(s, k) for s in startups) for k in ("import_s", "load_s", "rss_mb")}


def _print_report(report: dict[str, Any]) -> None:
    batches = sorted({c["batch"] for c in report["cells"]})
    load = report["loadavg_1m"]
    print(f"{report['n_texts']} texts from {report['data']}; median of {report['repeats']} runs; {report['machine']}")
    print(f"load average (1 min) at start {load['start']:.1f}, at end {load['end']:.1f}")
    print(f"{'backend':8} {'layout':9}" + "".join(f"{'b' + str(b):>8}" for b in batches) + "   (texts/s)")
    for backend in report["backends"]:
        for procs, threads in LAYOUTS:
            layout = (backend, procs, threads)
            row = {
                c["batch"]: c["texts_per_s"]
                for c in report["cells"]
                if (c["backend"], c["procs"], c["threads"]) == layout
            }
            if row:
                cells = "".join(f"{row.get(b, float('nan')):8.0f}" for b in batches)
                print(f"{backend:8} {f'{procs}p x {threads}t':9}{cells}")
    for backend, b in report["best"].items():
        print(f"best {backend}: {b['procs']}p x {b['threads']}t, batch {b['batch']}: {b['texts_per_s']:.0f} texts/s")
    for backend, s in report["startup"].items():
        print(
            f"startup {backend}: import {s['import_s']:.2f} s, load {s['load_s']:.2f} s, "
            f"RSS after load {s['rss_mb']:.0f} MB (medians over the fresh processes)"
        )
    if report.get("parity"):
        p = report["parity"]
        print(f"parity onnx vs torch, {p['n']} Banking77 test texts: cosine min {p['min']:.7f}, mean {p['mean']:.7f}")


def main(argv: Sequence[str] | None = None) -> int:
    from labelwise.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=BANKING77_TEST, help="CSV with a 'text' column")
    ap.add_argument("--n", type=int, default=1000, help="at most this many texts")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache-dir", type=Path, default=None, help="ONNX cache; default LABELWISE_HOME/onnx")
    ap.add_argument("--no-parity", action="store_true", help="skip the onnx-vs-torch cosine check")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache_dir = args.cache_dir or Settings().home / "onnx"
    texts = read_texts(args.data, n=args.n)
    backends = [b for b in args.backends.split(",") if b]
    batches = [int(b) for b in args.batches.split(",")]
    report: dict[str, Any] = {
        "data": str(args.data),
        "n_texts": len(texts),
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        "loadavg_1m": {"start": os.getloadavg()[0]},
        "backends": backends,
        "cells": [],
        "best": {},
        "startup": {},
    }
    cells, startups = sweep(texts, backends, cache_dir=cache_dir, batches=batches, repeats=args.repeats)
    report["cells"] = [asdict(c) for c in cells]
    for backend in backends:
        report["best"][backend] = asdict(max((c for c in cells if c.backend == backend), key=lambda c: c.texts_per_s))
        report["startup"][backend] = _startup_summary(startups[backend])
    report["loadavg_1m"]["end"] = os.getloadavg()[0]  # other work on the machine skews every figure
    if not args.no_parity and {"torch", "onnx"} <= set(backends):
        report["parity"] = parity(read_texts(BANKING77_TEST), cache_dir=cache_dir)
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
