"""Long documents: needle accuracy by position and length, and messages/s by length, windowed reading
(max, mean and mixed pooling) beside plain truncation (the encoder's first 256 tokens), in one run.

    .venv/bin/python bench/long_documents.py [--data-dir ../shared/data] [--n 16] [--short] [--json]
        [--window-tokens 32] [--onnx-dir DIR]

Built from ``--data-dir`` (label set bench/labelsets/banking77_descriptions.yaml, 77 intents):
- needle: a Banking77 test message placed at the start, middle or end of about 1k, 4k or 16k characters
  of AG News items (news: text from classes outside the set); right when the top label is the message's;
- one intent: a document made of Banking77 messages (train + test) of the needle's intent only;
- news only: AG News items alone, no needle: every label given is a false one (the cost of max pooling);
- short: the needle messages alone (one window), where windowed reading must equal truncation.
``--n`` needle messages (Banking77 test.csv, numpy default_rng(0)), the same in every cell. Throughput
is the product path (Classifier.encode + score_documents) on this machine's cores, messages/s by length.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from labelwise.classify.classifier import Classifier  # noqa: E402
from labelwise.classify.documents import POOL_MAX_WEIGHT  # noqa: E402
from labelwise.classify.scoring import score_documents  # noqa: E402
from labelwise.classify.windows import DEFAULT_WINDOW_TOKENS  # noqa: E402
from labelwise.evaluate import eval_version_id  # noqa: E402
from labelwise.labelset import load_yaml  # noqa: E402
from labelwise.settings import Settings  # noqa: E402
from labelwise.worker.resources import build_classifier  # noqa: E402

LENGTHS = (1_000, 4_000, 16_000)
POSITIONS = ("start", "middle", "end")
REPORTED_ROWS = 3_000


def read_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)]


def filler(rng: np.random.Generator, pool: list[str], chars: int) -> list[str]:
    """Items drawn from ``pool`` until they make about ``chars`` characters."""
    out: list[str] = []
    while sum(len(t) + 1 for t in out) < chars:
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def build_cases(data_dir: Path, *, n: int, seed: int = 0) -> dict[str, list[tuple[str, str | None]]]:
    """``{cell: [(text, label)]}`` for every needle (position, length), one-class length and short cell."""
    rng = np.random.default_rng(seed)
    test = read_csv(data_dir / "banking77" / "test.csv")
    by_label: dict[str, list[str]] = {}
    for text, label in test + read_csv(data_dir / "banking77" / "train.csv"):
        by_label.setdefault(label, []).append(text)
    news = [t for t, _ in read_csv(data_dir / "agnews" / "test.csv")[:REPORTED_ROWS]]
    picks = [test[int(i)] for i in rng.choice(len(test), size=n, replace=False)]
    cases: dict[str, list[tuple[str, str | None]]] = {"short": list(picks)}
    for length in LENGTHS:
        for position in POSITIONS:
            cell = cases.setdefault(f"needle {position} {length // 1000}k", [])
            for needle, label in picks:
                items = filler(rng, news, length)
                at = {"start": 0, "middle": len(items) // 2, "end": len(items)}[position]
                cell.append((" ".join([*items[:at], needle, *items[at:]]), label))
        cases[f"one intent {length // 1000}k"] = [
            (" ".join(filler(rng, by_label[label], length)), label) for _, label in picks
        ]
        cases[f"news only {length // 1000}k"] = [(" ".join(filler(rng, news, length)), None) for _ in picks]
    return cases


POOLINGS = {"max": 1.0, "mix .75": 0.75, "mix .5": 0.5, "mean": 0.0}  # weight of the max beside the mean score


def run(classifier: Classifier, doc: Any, cases: dict[str, list[tuple[str, str | None]]]) -> dict[str, Any]:
    """Per cell: accuracy per pooling (top label right), or for documents with no needle the share given
    a label (not abstained); messages/s (encode + score)."""
    index = classifier.cache.get_or_build(eval_version_id(doc), doc, classifier.encoder)
    out: dict[str, Any] = {}
    for cell, items in cases.items():
        texts, labels = [t for t, _ in items], [label for _, label in items]
        started = time.perf_counter()
        encoded = classifier.encode(texts)
        score_documents(index, encoded, top_k=1)
        seconds = time.perf_counter() - started
        quality = {}
        for name, weight in POOLINGS.items():
            scored = score_documents(index, encoded, top_k=1, max_weight=weight)
            if labels[0] is None:  # no needle: any label given is a false one
                quality[name] = sum(not s.abstained for s in scored) / len(scored)
            else:
                quality[name] = sum(s.labels[0]["name"] == y for s, y in zip(scored, labels, strict=True)) / len(labels)
        in_use = score_documents(index, encoded, top_k=1)
        out[cell] = {
            "metric": "false_label_rate" if labels[0] is None else "accuracy",
            "by_pooling": quality,
            "chosen_right": None
            if labels[0] is None
            else sum(s.chosen == [y] and not s.abstained for s, y in zip(in_use, labels, strict=True)) / len(labels),
            "messages_per_s": len(texts) / seconds,
            "windows_mean": float(np.mean([len(r.spans) for r in encoded.readings])),
            "truncated": sum(r.truncated for r in encoded.readings),
            "chars_mean": float(np.mean([len(t) for t in texts])),
        }
    return out


def short_throughput(classifiers: dict[str, Classifier], doc: Any, texts: list[str], rounds: int) -> dict[str, float]:
    """Messages/s of short messages (encode + score), the classifiers taking turns, best round of each:
    on a shared machine, turns keep a passing load from favouring one of them."""
    index = next(iter(classifiers.values())).cache.get_or_build(
        eval_version_id(doc), doc, classifiers["truncation"].encoder
    )
    best = dict.fromkeys(classifiers, 0.0)
    for _ in range(rounds):
        for name, classifier in classifiers.items():
            started = time.perf_counter()
            score_documents(index, classifier.encode(texts), top_k=5)
            best[name] = max(best[name], len(texts) / (time.perf_counter() - started))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--n", type=int, default=16, help="documents per cell")
    p.add_argument("--short", action="store_true", help="--n 2: a smoke run (about a minute on 2 idle cores)")
    p.add_argument("--window-tokens", type=int, default=DEFAULT_WINDOW_TOKENS, help="window size for long texts")
    p.add_argument("--onnx-dir", type=Path, default=None, help="exported model cache (default HOME/onnx)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    n = 2 if args.short else args.n
    doc = load_yaml((ROOT / "bench" / "labelsets" / "banking77_descriptions.yaml").read_text())
    settings = Settings(onnx_dir=args.onnx_dir, window_tokens=args.window_tokens, traffic_keep=0)
    windowed = build_classifier(settings)
    truncating = replace(windowed, windower=None)  # before: the encoder reads the first 256 tokens
    cases = build_cases(args.data_dir, n=n)
    before, after = run(truncating, doc, cases), run(windowed, doc, cases)
    short_texts = [t for t, _ in read_csv(args.data_dir / "banking77" / "test.csv")[: 32 if args.short else 256]]
    speeds = short_throughput({"truncation": truncating, "windowed": windowed}, doc, short_texts, rounds=5)
    report = {
        "short_messages_per_s": speeds,
        "n_per_cell": n,
        "window_tokens": windowed.windower.window_tokens if windowed.windower else None,
        "chosen_pooling": f"{POOL_MAX_WEIGHT} x max + {1 - POOL_MAX_WEIGHT:.2f} x mean",
        "cells": {c: {"truncation": before[c], "windowed": after[c]} for c in cases},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


def print_table(report: dict[str, Any]) -> None:
    print(
        f"Banking77 needles in AG News, {report['n_per_cell']} documents per cell, windows of "
        f"{report['window_tokens']} tokens; pooling in use: {report['chosen_pooling']}"
    )
    print(
        "top: top label right (news only: share given a false label), per pooling; "
        "chosen: the right label chosen, not abstained (pooling in use)"
    )
    names = list(POOLINGS)
    print(
        f"{'cell':<17} {'chars':>6} {'win':>6} | {'trunc':>6} "
        + " ".join(f"{n:>7}" for n in names)
        + f" | {'chosen':>6} {'trunc':>6} {'win':>6} | {'msg/s':>6} {'trunc':>7} {'win':>6}"
    )
    for cell, r in report["cells"].items():
        b, a = r["truncation"], r["windowed"]
        chosen = f"{b['chosen_right']:>13.1%} {a['chosen_right']:>6.1%}" if a["chosen_right"] is not None else " " * 20
        print(
            f"{cell:<17} {a['chars_mean']:>6.0f} {a['windows_mean']:>6.1f} | {b['by_pooling']['max']:>6.1%} "
            + " ".join(f"{a['by_pooling'][n]:>7.1%}" for n in names)
            + f" | {chosen} | {b['messages_per_s']:>14.2f} {a['messages_per_s']:>6.2f}"
        )
    speeds = report["short_messages_per_s"]
    print(
        f"short messages (Banking77 test, taking turns, best of 5): truncation {speeds['truncation']:.1f} msgs/s, "
        f"windowed {speeds['windowed']:.1f} msgs/s ({speeds['windowed'] / speeds['truncation']:.2f}x)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
