"""Per-process resources: one engine, one session factory, one classifier (model loaded once), and the
batcher that turns messages into stored results and published deliveries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from labelwise.brokers import lanes
from labelwise.classify.base import Encoder
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelCache
from labelwise.classify.sentence import SentenceTransformerEncoder, resolve_model_path
from labelwise.classify.windows import windower_for
from labelwise.crypto import SecretBox, secret_box
from labelwise.integrations.guard import make_client
from labelwise.models import integrations
from labelwise.models.db import make_engine, make_session_factory
from labelwise.models.tables import Job
from labelwise.pipeline.label_vectors import LabelReadiness
from labelwise.pipeline.traffic import Refiner, TrafficPolicy
from labelwise.pipeline.working import Classified, Message
from labelwise.priority import TURNS, freeze_startup_objects, share_the_gil
from labelwise.settings import Settings
from labelwise.worker import faults
from labelwise.worker import metrics as worker_metrics
from labelwise.worker.app import enqueue_delivery, enqueue_job
from labelwise.worker.batching import Batcher
from labelwise.worker.bulk import BulkProcess
from labelwise.worker.consumer import FEED, Inbound, share_hint
from labelwise.worker.handling import BatchHandler, classify_with
from labelwise.worker.model_calls import MODEL_CALLS
from labelwise.worker.spilling import Spiller

log = logging.getLogger(__name__)


class Publisher:
    """Publishes labelwise's own messages (the reconciler's and the worker's) on the worker's queue."""

    def __init__(self, app: Celery, *, queue: str) -> None:
        self.app, self.queue = app, queue

    def job(self, job: Job) -> None:
        enqueue_job(self.app, job, queue=self.queue)

    def delivery(self, delivery_id: str, *, countdown: float | None = None) -> None:
        enqueue_delivery(self.app, delivery_id, queue=self.queue, countdown=countdown)


@dataclass
class Resources:
    engine: Engine
    sessions: sessionmaker[Session]
    classifier: Classifier
    box: SecretBox
    http: httpx.Client
    batcher: Batcher[Inbound, Classified]
    handler: BatchHandler
    refiner: Refiner | None = None  # previews score a set's current version with it, as messages are


def limit_blas_threads(threads: int = 1) -> None:
    """Cap numpy's BLAS pool (one thread: the model runs on ONNX Runtime's threads, not BLAS).

    OpenBLAS starts a thread per core and its idle threads spin: on 2 cores, scoring batches against
    1,000 labels cost 5.9 ms more CPU per message than with one BLAS thread (bench/labels_scale.py:
    1.40x the per-message cost of 10 labels before the cap, 1.07x after); and even a process's share of
    two threads cost a batch of 64 messages 4 ms of scoring instead of 0.08 (bench/pipeline.py)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def build_classifier(
    settings: Settings, *, urgent_session: bool = False, spin: bool = True, metrics: Any = worker_metrics
) -> Classifier:
    """The model (its ONNX session, or two with ``urgent_session``: the express lane's own; ``spin``: see
    ``labelwise.classify.onnx._session``) and its label cache; ``metrics`` records its calls and index
    builds (the worker's metrics, or what a bulk process sends back: labelwise.worker.bulk)."""
    threads = settings.threads_per_process()
    encoder: Encoder
    if settings.backend == "onnx":
        from labelwise.classify.onnx import OnnxEncoder

        encoder = OnnxEncoder(
            settings.model,
            cache_dir=settings.onnx_dir or settings.home / "onnx",
            threads=threads,
            quantize=settings.precision == "int8",
            urgent_session=urgent_session,
            spin=spin,
        )
    else:
        encoder = SentenceTransformerEncoder(settings.model, threads=threads)
    cache = LabelCache(
        settings.label_cache_size,
        on_build=lambda refined, seconds: metrics.label_index_built(refined=refined, seconds=seconds),
    )
    encoder = faults.wrap_encoder(settings, encoder)  # test-only, when LABELWISE_FAULT_INJECTION says so
    windower = windower_for(
        Path(resolve_model_path(settings.model)),
        budget_tokens=settings.token_budget,
        window_tokens=settings.window_tokens,
    )
    return Classifier(encoder=TimedEncoder(encoder, metrics), top_k=settings.top_k, cache=cache, windower=windower)


class TimedEncoder:
    """An Encoder that records each call's seconds in the worker metrics (and counts it as running, for a
    stopping worker: ``labelwise.worker.model_calls``)."""

    def __init__(self, inner: Encoder, metrics: Any = worker_metrics) -> None:
        self.inner, self.metrics = inner, metrics

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with MODEL_CALLS.call():  # a stopping worker waits for it (labelwise.worker.model_calls)
            started = time.perf_counter()
            vectors = self.inner.encode(texts)
        self.metrics.encode_done(time.perf_counter() - started)
        return vectors


def build_resources(settings: Settings, publisher: Publisher) -> Resources:
    limit_blas_threads()
    share_the_gil()
    engine = make_engine(settings.resolved_database_url(), pre_ping=False)  # a lost connection retries the batch
    sessions = make_session_factory(engine)
    share = settings.tenant_share
    bulk = BulkProcess(settings) if share and settings.bulk_process else None
    # The express lane's own session beside the main lane's, unless a bulk process has the main lane (this
    # process then classifies a main-lane batch only while it has none: on its one session, 90 MB less).
    # With a bulk process, no thread of this one spins: an idle spinning thread at the normal priority
    # holds a core the bulk process (niced) would otherwise have (labelwise.worker.bulk).
    classifier = build_classifier(settings, urgent_session=share > 0 and bulk is None, spin=bulk is None)
    refiner = build_refiner(settings, sessions, classifier)
    handler = BatchHandler(
        settings,
        sessions,
        classifier,
        refiner,
        publish_deliveries=lambda ids: publish_deliveries(sessions, publisher, ids),
        readiness=LabelReadiness(sessions, classifier, main_lane_here=bulk is None),
        bulk=bulk,
    )
    batcher: Batcher[Inbound, Classified] = Batcher(
        handler,
        max_batch=settings.batch_size,
        key=lambda item: item.tenant,
        express_batch=max(1, settings.batch_size // 8) if share else 0,
        main_handle=handler.main_lane,
    )
    handler.to_main_lane = lambda item: batcher.put(item, backlogged=True)  # heavy for a while: the main lane takes it
    spiller = Spiller(publisher.app, queue=settings.queue, keep=batcher.put, on_moved=worker_metrics.spilled)
    FEED.batcher, FEED.hold_max, FEED.spill, FEED.moved = batcher, share, spiller.put, worker_metrics.spilled
    lanes.set_share_hint(share_hint() if share else None)
    resources = Resources(
        engine=engine,
        sessions=sessions,
        classifier=classifier,
        batcher=batcher,
        handler=handler,
        refiner=refiner,
        box=secret_box(settings),
        http=make_client(allow=settings.outbound_allow, timeout_s=settings.outbound_timeout_s),
    )
    freeze_startup_objects()  # the worker's startup objects stay out of full collections (labelwise.priority)
    if bulk is not None:
        bulk.start()  # on the main thread, after the freeze: it loads its model while this one warms up
    return resources


def build_refiner(settings: Settings, sessions: sessionmaker[Session], classifier: Classifier) -> Refiner | None:
    if not settings.traffic_keep:
        return None
    policy = TrafficPolicy(keep=settings.traffic_keep, refresh_every=settings.traffic_refresh_every)
    return Refiner(sessions, classifier.cache, policy, max_share=settings.traffic_refine_share)


def build_bulk_side(
    settings: Settings, measured: Any
) -> tuple[Callable[[list[Message]], list[Classified | Exception]], Callable[[list[str]], None]]:
    """A bulk process's own engine, model (one session, no express lane) and publisher
    (labelwise.worker.bulk): returns how it classifies a batch and how it publishes the deliveries."""
    from labelwise.worker.app import create_app

    limit_blas_threads()
    share_the_gil()
    publisher = Publisher(create_app(settings), queue=settings.queue)
    engine = make_engine(settings.resolved_database_url(), pre_ping=False)
    sessions = make_session_factory(engine)
    classifier = build_classifier(settings, spin=False, metrics=measured)
    refiner = build_refiner(settings, sessions, classifier)
    classifier.encoder.encode(["warm-up"])
    freeze_startup_objects()

    classify = classify_with(settings, sessions, classifier, refiner, LabelReadiness(sessions, classifier))
    return classify, lambda ids: publish_deliveries(sessions, publisher, ids)


def publish_deliveries(sessions: sessionmaker[Session], publisher: Publisher, delivery_ids: list[str]) -> None:
    """Publish the deliveries of a committed batch and record it in one statement; whatever is not
    published now (the broker is down, the process dies) the reconciler publishes later."""
    published = []
    try:
        for delivery_id in delivery_ids:
            TURNS.checkpoint()  # a light tenant's batch goes first (labelwise.priority)
            publisher.delivery(delivery_id)
            published.append(delivery_id)
    except Exception as e:
        log.warning("could not publish %d deliveries (%s); the reconciler will", len(delivery_ids) - len(published), e)
    if published:
        try:
            with sessions.begin() as session:
                integrations.mark_deliveries_enqueued(session, published)
        except Exception as e:
            log.warning("could not record %d published deliveries (%s)", len(published), e)
