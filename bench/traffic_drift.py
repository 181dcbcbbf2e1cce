"""Refinement from traffic along a stream: accuracy per 500-message window, refinement on and off.

    .venv/bin/python bench/traffic_drift.py [--short] [--json] [--plot FILE] [--kinds names,descriptions,examples]

Each labelled row of a stream is scored with the index the worker would hold when it arrives, then
kept as traffic; the worker's policy (``TrafficPolicy``: refresh every 1,000 messages from the newest
10,000) decides when a refined index replaces it, and the refined index comes from the worker's own
refinement step (``labelwise.pipeline.traffic.refine``), given the traffic vectors. A rebuild is
taken as finished before the next message (the worker serves the older index meanwhile, which only
delays the same curve). "off" is the unrefined index on the same rows.

Sets (``--data-dir``, default ``../shared/data``), labels from ``bench/labelsets``:
- agnews (4 broad labels): stream = test.csv rows 3,001-7,600; final accuracy on rows 1-3,000.
- banking77 (77 narrow labels): stream = train.csv (10,003 rows); final accuracy on test.csv.

Kinds of label set (``--kinds``): ``names`` and ``descriptions`` are ``bench/labelsets/{set}_{kind}.yaml``;
``examples`` is the names-only set plus 8 examples per label (a fitted head), drawn as
``bench/accuracy.py`` draws them (``default_rng(seed)``, 8 rows per label in file order) from the
stream's pool: Banking77 train.csv, AG News rows 3,001+. The drawn rows are removed from that kind's
stream (Banking77 9,387 rows, AG News 4,568), so an example is never traffic nor held out.

Orders of a stream (numpy ``default_rng(seed)``):
- shuffled: the stream's rows in random order.
- grouped: rows grouped by label (labels in random order, rows shuffled within a label): bursts.
- zipf: as many messages, labels drawn so the top 5 carry 60% (the top 1 for a set of <= 5 labels)
  and the rest share 40% in Zipf proportions (1/rank); rows of a label drawn in a random cycle.
- offtopic: the shuffled order with 30% of the messages replaced by rows of the other set (same
  length); accuracy counts in-scope rows only, and the abstention AUROC (the top score separating
  in-scope from off-topic messages, over the whole stream) is reported on and off.

Summary per set/kind/order: the worst window's difference "on - off" and the final accuracy on the
held-out rows after the whole stream (on and off). ``--short``: streams of 3,000 messages (CI).

Text vectors come from ``bench/vectors.py`` (each dataset file embedded once with the packaged
model, cached under ``.labelwise/bench-cache``): a re-run only does the refinement math.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.accuracy import SHOTS, CachedEncoder, with_examples  # noqa: E402
from bench.vectors import DEFAULT_CACHE, cached_vectors, read_csv  # noqa: E402
from labelwise.classify.labels import LabelCache, LabelIndex  # noqa: E402
from labelwise.evaluate import auroc  # noqa: E402
from labelwise.labelset import LabelSetDocument, load_yaml  # noqa: E402
from labelwise.pipeline.traffic import TrafficPolicy, refine  # noqa: E402

LABELSETS = ROOT / "bench" / "labelsets"
ORDERS = ("shuffled", "grouped", "zipf", "offtopic")
WINDOW = 500
SHORT_LENGTH = 3_000
OFFTOPIC_SHARE = 0.3


@dataclass
class Data:
    """One labelled set: the stream pool, the held-out rows, as vectors and label ids."""

    stream_x: np.ndarray
    stream_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray
    stream_texts: list[str]

    def with_examples(self, names: list[str], order: list[str], *, seed: int) -> tuple[dict[str, list[str]], Data]:
        """``SHOTS`` example texts per label drawn from the stream, labels taken in the set's ``order``
        (as ``bench.accuracy.draw_examples``), and this Data without those rows in its stream."""
        rng = np.random.default_rng(seed)
        examples, drawn = {}, []
        for name in order:
            rows = np.flatnonzero(self.stream_y == names.index(name))
            picked = rows[sorted(rng.choice(len(rows), SHOTS, replace=False))]
            examples[name] = [self.stream_texts[i] for i in picked]
            drawn.extend(picked)
        keep = np.setdiff1d(np.arange(len(self.stream_y)), drawn)
        texts = [self.stream_texts[i] for i in keep]
        return examples, Data(self.stream_x[keep], self.stream_y[keep], self.held_x, self.held_y, texts)


def load_sets(data_dir: Path, cache_dir: Path, wanted: set[str]) -> dict[str, tuple[Data, list[str]]]:
    """Per wanted set: its Data and the gold label name of each id (the file's labels, sorted)."""
    out = {}
    if "agnews" in wanted:
        path = data_dir / "agnews" / "test.csv"
        rows, x = read_csv(path), cached_vectors(path, cache_dir=cache_dir)
        names = sorted({label for _, label in rows})
        y = np.array([names.index(label) for _, label in rows])
        texts = [text for text, _ in rows]
        out["agnews"] = (Data(x[3000:], y[3000:], x[:3000], y[:3000], texts[3000:]), names)
    if "banking77" in wanted:
        test, train = data_dir / "banking77" / "test.csv", data_dir / "banking77" / "train.csv"
        test_rows, train_rows = read_csv(test), read_csv(train)
        names = sorted({label for _, label in train_rows})
        out["banking77"] = (
            Data(
                cached_vectors(train, cache_dir=cache_dir),
                np.array([names.index(label) for _, label in train_rows]),
                cached_vectors(test, cache_dir=cache_dir),
                np.array([names.index(label) for _, label in test_rows]),
                [text for text, _ in train_rows],
            ),
            names,
        )
    return out


def other_set(name: str) -> str:
    """Where a set's off-topic messages come from."""
    return "banking77" if name == "agnews" else "agnews"


def make_order(order: str, data: Data, other_x: np.ndarray, *, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, labels)`` of a stream; label -1 marks an off-topic message."""
    rng = np.random.default_rng(seed)
    n = len(data.stream_y)
    if order == "shuffled":
        idx = rng.permutation(n)[:length]
    elif order == "grouped":
        labels = rng.permutation(np.unique(data.stream_y))
        idx = np.concatenate([rng.permutation(np.flatnonzero(data.stream_y == label)) for label in labels])[:length]
    elif order == "zipf":
        idx = zipf_rows(data.stream_y, length=length, rng=rng)
    elif order == "offtopic":
        n_off = int(round(OFFTOPIC_SHARE * length))
        inside = rng.permutation(n)[: length - n_off]
        outside = rng.permutation(len(other_x))[:n_off]
        x = np.vstack([data.stream_x[inside], other_x[outside]])
        y = np.r_[data.stream_y[inside], np.full(len(outside), -1)]
        mix = rng.permutation(len(y))
        return x[mix], y[mix]
    else:
        raise ValueError(order)
    return data.stream_x[idx], data.stream_y[idx]


def zipf_rows(y: np.ndarray, *, length: int, rng: np.random.Generator) -> np.ndarray:
    """Rows drawn so the top 5 labels (top 1 when <= 5 labels) carry 60% of ``length``."""
    labels = rng.permutation(np.unique(y))
    top = 5 if len(labels) > 5 else 1
    rest = 1.0 / np.arange(1, len(labels) - top + 1)
    weights = np.r_[np.full(top, 0.6 / top), 0.4 * rest / rest.sum()]
    drawn = rng.choice(len(labels), size=length, p=weights)
    cycles = {label: rng.permutation(np.flatnonzero(y == label)) for label in labels}
    used = dict.fromkeys(labels, 0)
    idx = np.empty(length, dtype=np.int64)
    for i, k in enumerate(drawn):
        label = labels[k]
        rows = cycles[label]
        idx[i] = rows[used[label] % len(rows)]
        used[label] += 1
    return idx


def gold_ids(index: LabelIndex, names: list[str]) -> np.ndarray:
    """Map the data's label ids to the index's label order."""
    return np.array([index.names.index(name) for name in names])


def run_stream(
    doc: LabelSetDocument,
    encoder: Any,
    x: np.ndarray,
    y: np.ndarray,
    held: Data,
    to_index_id: np.ndarray,
    *,
    policy: TrafficPolicy,
) -> dict[str, Any]:
    """Score a stream message by message as the worker would, refinement on and off."""
    cache = LabelCache(4)
    base = cache.get_or_build(0, doc, encoder)
    current = base
    top_on, top_off = np.empty(len(y), dtype=np.int64), np.empty(len(y), dtype=np.int64)
    best_on, best_off = np.empty(len(y)), np.empty(len(y))
    for start in range(0, len(y), policy.refresh_every):
        key = policy.key(1, start)
        if key is not None:  # the worker's refresh: the newest `keep` messages seen so far
            seen = x[max(0, start - policy.keep) : start]
            current = refine(cache, 0, doc, encoder, seen, key=key)
        chunk = slice(start, start + policy.refresh_every)
        for top, best, index in ((top_on, best_on, current), (top_off, best_off, base)):
            sims = index.label_scores(x[chunk])
            top[chunk], best[chunk] = sims.argmax(axis=1), sims.max(axis=1)
    gold = np.where(y >= 0, to_index_id[np.maximum(y, 0)], -1)
    inside = y >= 0
    windows = []
    for w in range(0, len(y), WINDOW):
        sl = slice(w, w + WINDOW)
        m = inside[sl]
        if m.sum() == 0:
            continue
        on = float((top_on[sl][m] == gold[sl][m]).mean())
        off = float((top_off[sl][m] == gold[sl][m]).mean())
        windows.append({"start": w, "on": round(on, 4), "off": round(off, 4)})
    held_gold = to_index_id[held.held_y]
    out: dict[str, Any] = {
        "windows": windows,
        "worst_diff": round(min(w["on"] - w["off"] for w in windows), 4),
        "final_on": round(float((current.label_scores(held.held_x).argmax(axis=1) == held_gold).mean()), 4),
        "final_off": round(float((base.label_scores(held.held_x).argmax(axis=1) == held_gold).mean()), 4),
    }
    if not inside.all():
        out["auroc_on"] = round(auroc(best_on, inside), 4)
        out["auroc_off"] = round(auroc(best_off, inside), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--short", action="store_true", help=f"streams of {SHORT_LENGTH} messages (CI)")
    parser.add_argument(
        "--kinds", default="names", help="label-set kinds, comma-separated: names,descriptions,examples"
    )
    parser.add_argument("--sets", default="agnews,banking77")
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--plot", type=Path, help="write the curves to this file (PNG with matplotlib, else SVG)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from labelwise.classify.sentence import SentenceTransformerEncoder

    encoder = CachedEncoder(SentenceTransformerEncoder(threads=os.cpu_count() or 1), args.cache_dir)
    wanted = set(args.sets.split(","))
    if "offtopic" in args.orders.split(","):
        wanted |= {other_set(name) for name in wanted}
    sets = load_sets(args.data_dir, args.cache_dir, wanted)
    policy = TrafficPolicy()
    results: list[dict[str, Any]] = []
    for set_name in args.sets.split(","):
        data, names = sets[set_name]
        other = sets[other_set(set_name)][0].stream_x if other_set(set_name) in sets else data.stream_x[:0]
        for kind in args.kinds.split(","):
            stream = data
            if kind == "examples":
                doc = load_yaml((LABELSETS / f"{set_name}_names.yaml").read_text())
                examples, stream = data.with_examples(names, [label.name for label in doc.labels], seed=args.seed)
                doc = with_examples(doc, examples)
                length = SHORT_LENGTH if args.short else len(stream.stream_y)
            else:
                doc = load_yaml((LABELSETS / f"{set_name}_{kind}.yaml").read_text())
                length = SHORT_LENGTH if args.short else len(data.stream_y)
            to_index_id = np.array([[label.name for label in doc.labels].index(name) for name in names])
            for order in args.orders.split(","):
                x, y = make_order(order, stream, other, length=length, seed=args.seed)
                r = run_stream(doc, encoder, x, y, stream, to_index_id, policy=policy)
                results.append({"set": set_name, "kind": kind, "order": order, "messages": len(y), **r})
                if not args.json:
                    print_row(results[-1], flush=True)
    encoder.save()
    summary = {
        "worst_diff": min(r["worst_diff"] for r in results),
        "final": {f"{r['set']}/{r['kind']}/{r['order']}": r["final_on"] for r in results},
    }
    if args.plot:
        write_plot(results, args.plot)
    if args.json:
        print(json.dumps({"short": args.short, "results": results, "summary": summary}))
        return
    print(
        f"summary: worst window minus refinement off {summary['worst_diff']:+.3f}; final accuracy "
        + ", ".join(f"{k} {v:.3f}" for k, v in summary["final"].items() if k.endswith("shuffled"))
    )


def print_row(r: dict[str, Any], *, flush: bool = False) -> None:
    auc = f"  AUROC on {r['auroc_on']:.3f} off {r['auroc_off']:.3f}" if "auroc_on" in r else ""
    curve = " ".join(f"{w['on'] - w['off']:+.2f}" for w in r["windows"])
    print(
        f"{r['set']:9} {r['kind']:12} {r['order']:8} worst-off {r['worst_diff']:+.3f}  final on {r['final_on']:.3f}"
        f" off {r['final_off']:.3f}{auc}\n    on-off per window: {curve}",
        flush=flush,
    )


def write_plot(results: list[dict[str, Any]], path: Path) -> None:
    """One panel per set/kind: accuracy per window, on (solid) and off (dashed), per order."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        path.with_suffix(".svg").write_text(to_svg(results))
        return
    panels = sorted({(r["set"], r["kind"]) for r in results})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (set_name, kind) in zip(axes[0], panels, strict=True):
        for n, r in enumerate(r for r in results if (r["set"], r["kind"]) == (set_name, kind)):
            xs = [w["start"] + WINDOW for w in r["windows"]]
            ax.plot(xs, [w["on"] for w in r["windows"]], color=f"C{n}", label=f"{r['order']} on")
            ax.plot(xs, [w["off"] for w in r["windows"]], color=f"C{n}", linestyle="--", label=f"{r['order']} off")
        ax.set_title(f"{set_name} ({kind})")
        ax.set_xlabel("messages seen")
        ax.set_ylabel(f"accuracy per {WINDOW}-message window")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"))


def to_svg(results: list[dict[str, Any]]) -> str:
    """A plain SVG of the same curves (no matplotlib): one polyline per order, on solid, off dashed."""
    width, height, rows = 640, 240, []
    for panel, r in enumerate(results):
        top = panel * (height + 20)
        longest = max(1, r["messages"])
        for key, dash in (("on", ""), ("off", ' stroke-dasharray="4 3"')):
            xs = [40 + (w["start"] + WINDOW) / longest * (width - 60) for w in r["windows"]]
            ys = [top + 10 + (1 - w[key]) * (height - 30) for w in r["windows"]]
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
            rows.append(f'<polyline fill="none" stroke="black" points="{points}"{dash}/>')
        rows.append(f'<text x="45" y="{top + 20}" font-size="12">{r["set"]} {r["kind"]} {r["order"]}</text>')
    total = len(results) * (height + 20)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}">' + "".join(rows) + "</svg>"


if __name__ == "__main__":
    main()
