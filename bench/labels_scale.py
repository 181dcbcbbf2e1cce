"""Scale with labels: per-message cost of a 1,000-label set against a 10-label set at steady state,
the one-off time to embed 1,000 labels, and a restarted worker that does not embed them again.

Steady state: each set is first used by a short run (which embeds its labels once and stores the
vectors in SQL); the timed run is a new worker process that loads them from SQL.

Labels are made from Banking77 train texts (a description per label), so their texts are realistic.

    .venv/bin/python bench/labels_scale.py [--n 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ceiling import BANKING77_TEST, read_texts  # noqa: E402
from bench.throughput import REDIS_URL, pg_database, run_labelwise  # noqa: E402

BANKING77_TRAIN = BANKING77_TEST.with_name("train.csv")


def label_set(name: str, count: int, descriptions: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "threshold": 0.2,
        "labels": [{"name": f"topic-{i:04d}", "description": descriptions[i]} for i in range(count)],
    }


def embed_once(doc_path: Path) -> dict[str, float]:
    """Wall time to build the label vectors of a set from nothing, and from vectors stored in SQL."""
    from labelwise.classify.labels import build_index
    from labelwise.classify.sentence import SentenceTransformerEncoder
    from labelwise.classify.stored import StoredEncoder
    from labelwise.labelset import load_yaml
    from labelwise.models.db import make_engine, make_session_factory, upgrade

    doc = load_yaml(doc_path.read_text())
    encoder = SentenceTransformerEncoder()
    encoder.encode(["warm-up"])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/db.sqlite"
        upgrade(url)
        sessions = make_session_factory(make_engine(url))
        t0 = time.perf_counter()
        build_index(doc, StoredEncoder(encoder, sessions))
        cold = time.perf_counter() - t0
        again = StoredEncoder(encoder, sessions)
        t0 = time.perf_counter()
        build_index(doc, again)
        warm = time.perf_counter() - t0
    return {"embed_s": cold, "from_sql_s": warm, "re_encoded_on_restart": again.encoded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="messages per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    texts = read_texts(BANKING77_TEST)
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    descriptions = list(dict.fromkeys(read_texts(BANKING77_TRAIN)))
    report: dict[str, Any] = {"n": args.n}
    with tempfile.TemporaryDirectory(prefix="lw-labels-") as tmp:
        home = Path(tmp)
        paths = {}
        for count in (10, 1000):
            paths[count] = home / f"set{count}.yaml"
            paths[count].write_text(yaml.safe_dump(label_set(f"set{count}", count, descriptions)))
        report["embed_1000"] = embed_once(paths[1000])
        with pg_database() as url:
            for count in (10, 1000):
                for phase in ("warm", "timed"):  # warm: embeds the labels once; timed: a new worker, from SQL
                    (home / f"run{count}{phase}").mkdir(exist_ok=True)
                    result = run_labelwise(
                        texts[:20] if phase == "warm" else texts,
                        database_url=url,
                        broker_url=REDIS_URL,
                        home=home / f"run{count}{phase}",
                        env={"HF_HUB_OFFLINE": "1", "LABELWISE_LOG_LEVEL": "WARNING"},
                        timeout_s=1200,
                        labels=paths[count],
                    )
                report[str(count)] = result
    ms_10 = 1000 / report["10"]["msgs_s"]
    ms_1000 = 1000 / report["1000"]["msgs_s"]
    report.update(ms_per_msg_10=ms_10, ms_per_msg_1000=ms_1000, ratio=ms_1000 / ms_10)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        e = report["embed_1000"]
        print(
            f"labels scale ({args.n} messages per run, Redis + PostgreSQL, one worker)\n"
            f"  10 labels:    {report['10']['msgs_s']:6.1f} msgs/s  ({ms_10:.2f} ms/msg)\n"
            f"  1000 labels:  {report['1000']['msgs_s']:6.1f} msgs/s  ({ms_1000:.2f} ms/msg)\n"
            f"  cost ratio 1000/10 = {report['ratio']:.2f}  (target <= 1.2)\n"
            f"  embedding 1000 labels once: {e['embed_s']:.1f} s; a restarted worker loads them from SQL in "
            f"{e['from_sql_s']:.2f} s and encodes {e['re_encoded_on_restart']} texts"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
