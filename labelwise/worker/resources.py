"""Per-process resources: one engine, one session factory, one classifier (model loaded once)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.base import Encoder
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelCache
from labelwise.classify.sentence import SentenceTransformerEncoder
from labelwise.crypto import SecretBox, secret_box
from labelwise.integrations.guard import make_client
from labelwise.models.db import make_engine, make_session_factory
from labelwise.pipeline.traffic import Refiner, TrafficPolicy
from labelwise.pipeline.working import Classified, Message, classify_batch
from labelwise.settings import Settings
from labelwise.worker.batching import Batcher


@dataclass
class Resources:
    engine: Engine
    sessions: sessionmaker[Session]
    classifier: Classifier
    box: SecretBox
    http: httpx.Client
    batcher: Batcher[Message, Classified]
    refiner: Refiner | None = None  # previews score a set's current version with it, as messages are


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS pool at this process's share of the cores.

    OpenBLAS starts a thread per core and its idle threads spin: on 2 cores, scoring batches against
    1,000 labels cost 5.9 ms more CPU per message than with one BLAS thread (bench/labels_scale.py:
    1.40x the per-message cost of 10 labels before the cap, 1.07x after)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def build_classifier(settings: Settings) -> Classifier:
    threads = settings.threads_per_process()
    encoder: Encoder
    if settings.backend == "onnx":
        from labelwise.classify.onnx import OnnxEncoder

        encoder = OnnxEncoder(settings.model, cache_dir=settings.onnx_dir or settings.home / "onnx", threads=threads)
    else:
        encoder = SentenceTransformerEncoder(settings.model, threads=threads)
    return Classifier(encoder=encoder, top_k=settings.top_k, cache=LabelCache(settings.label_cache_size))


def build_resources(settings: Settings) -> Resources:
    limit_blas_threads(settings.threads_per_process())
    engine = make_engine(settings.resolved_database_url())
    sessions = make_session_factory(engine)
    classifier = build_classifier(settings)
    refiner = None
    if settings.traffic_keep:
        policy = TrafficPolicy(keep=settings.traffic_keep, refresh_every=settings.traffic_refresh_every)
        refiner = Refiner(sessions, classifier.cache, policy, max_share=settings.traffic_refine_share)
    batcher: Batcher[Message, Classified] = Batcher(
        lambda messages: classify_batch(
            sessions, classifier, messages, max_text_chars=settings.max_text_chars, refiner=refiner
        ),
        max_batch=settings.batch_size,
    )
    return Resources(
        engine=engine,
        sessions=sessions,
        classifier=classifier,
        batcher=batcher,
        refiner=refiner,
        box=secret_box(settings),
        http=make_client(allow=settings.outbound_allow, timeout_s=settings.outbound_timeout_s),
    )
