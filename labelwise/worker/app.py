"""The Celery app, built from Settings; the producer helpers live here too."""

from __future__ import annotations

from typing import Any

from celery import Celery

from labelwise import brokers
from labelwise.brokers import lanes
from labelwise.models.tables import Job
from labelwise.settings import Settings

CLASSIFY_TASK = "labelwise.classify"
POOL_THREADS = 8  # Celery's pool: deliveries (network waits), previews and evaluations
DELIVER_TASK = "labelwise.deliver"
# RabbitMQ confirms each of labelwise's own publishes; one whose confirm does not come in this long fails
# (the job or delivery is committed: the reconciler publishes it again) instead of blocking its thread.
CONFIRM_TIMEOUT_S = 10.0


def create_app(settings: Settings) -> Celery:
    """A Celery app with labelwise's reliability settings and tasks registered."""
    broker_url = settings.resolved_broker_url()
    if brokers.kind(broker_url) == "sql":
        settings.ensure_home()
    brokers.install()
    # Every task tracks its delivery tags (a batch's basic.ack multiple never settles one not done);
    # labelwise.classify itself is a BatchTask (labelwise.worker.consumer).
    app = Celery("labelwise", broker=broker_url, set_as_current=False, task_cls="labelwise.worker.consumer:TrackedTask")
    # Celery's consumer, but its own writes (task events, worker heartbeats) go without publisher confirms
    app.conf.worker_consumer = "labelwise.worker.consumer:Consumer"
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # labelwise.classify messages wait in the batcher, not in pool threads: the prefetch holds about
        # four batches; the pool's threads run deliveries and previews
        worker_prefetch_multiplier=max(1, -(-4 * settings.batch_size // POOL_THREADS)),
        task_default_queue=settings.queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
        # Task events for Flower (`celery flower`): sent when a task is published, started and finished.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_pool="threads",
        worker_concurrency=POOL_THREADS,
        # a publish that cannot reach the broker fails fast: the job is committed, the reconciler
        # publishes it once the broker is back
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    )
    options = brokers.celery_options(
        broker_url,
        queue=settings.queue,
        visibility_timeout_s=settings.broker_visibility_timeout_s,
        queue_type=settings.queue_type,
    )
    if brokers.kind(broker_url) == "sql":
        options["broker_transport_options"]["polling_interval"] = settings.broker_poll_interval_s
    app.conf.update(options)
    from labelwise.worker import tasks

    tasks.register(app, settings)
    return app


def message_kwargs(job: Job) -> dict[str, Any]:
    """The normative ``labelwise.classify`` keyword arguments for a stored job."""
    kwargs: dict[str, Any] = {"tenant": job.tenant_name, "label_set": job.label_set_name, "text": job.text}
    if job.idempotency_key:
        kwargs["idempotency_key"] = job.idempotency_key
    if job.metadata_ is not None:
        kwargs["metadata"] = job.metadata_
    if job.reply_to is not None:
        kwargs["reply_to"] = job.reply_to
    return kwargs


def enqueue_delivery(app: Celery, delivery_id: str, *, queue: str, countdown: float | None = None) -> None:
    """Publish a delivery task on the deliveries queue beside ``queue`` (labelwise.brokers.lanes)."""
    app.send_task(
        DELIVER_TASK,
        kwargs={"delivery_id": delivery_id},
        queue=lanes.deliveries_queue(queue),
        countdown=countdown,
        confirm_timeout=CONFIRM_TIMEOUT_S,
    )


def enqueue_job(app: Celery, job: Job, *, queue: str) -> None:
    """Publish the job's message with the job id as task id (call after the job row is committed)."""
    app.send_task(
        CLASSIFY_TASK, kwargs=message_kwargs(job), task_id=job.id, queue=queue, confirm_timeout=CONFIRM_TIMEOUT_S
    )
