"""The one settings class. Built in entry points only and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Every knob of labelwise; each field is read from ``LABELWISE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LABELWISE_", extra="ignore")

    home: Path = Field(
        Path(".labelwise"),
        description="Directory for the embedded SQLite database and broker.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default a SQLite file under HOME. PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker URL; default kombu's SQL transport on a SQLite file under HOME. "
        "redis://host:6379/0 or amqp://guest:guest@host:5672//.",
    )
    broker_visibility_timeout_s: int = Field(
        300,
        ge=2,
        description="Redis and the embedded SQL broker: how long a message held by a worker that died stays "
        "invisible before it is delivered again. A live worker renews its messages every tenth of it, so "
        "it only bounds how soon a dead worker's messages come back.",
    )
    queue_type: Literal["classic", "quorum"] = Field(
        "classic",
        description="RabbitMQ only: 'quorum' declares the queue as a replicated quorum queue. Producers must "
        "declare it the same way (Celery: task_create_missing_queue_type='quorum').",
    )
    queue: str = Field(
        "celery",
        description="Queue the worker consumes and producers publish to. 'celery' is what a plain "
        "Celery client's send_task uses, so other apps need no routing set-up.",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="sentence-transformers model: the packaged default, a directory, or a name "
        "already in the local Hugging Face cache.",
    )
    backend: Literal["torch", "onnx"] = Field(
        "onnx",
        description="Encoder backend: onnx (ONNX Runtime on the same weights, exported once to ONNX_DIR; "
        "faster, smaller, starts in a fraction of a second) or torch (sentence-transformers).",
    )
    onnx_dir: Path | None = Field(None, description="Where the exported ONNX model is kept; default HOME/onnx.")
    precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="ONNX backend: int8 runs the dynamically quantized model (about 2-3x faster on a CPU; "
        "its label vectors are kept apart from fp32's), fp32 the exported weights as they are.",
    )
    torch_threads: int = Field(0, ge=0, description="torch threads per worker process; 0: cores / processes.")
    worker_processes: int = Field(
        2, ge=1, description="Worker processes `labelwise worker` runs (each loads the model)."
    )
    batch_size: int = Field(
        64,
        ge=1,
        description="Most messages a worker process classifies in one batch: one model call (the encoder splits "
        "it by length), one transaction, one acknowledgement.",
    )
    tenant_share: int = Field(
        64,
        ge=0,
        description="Fair sharing between tenants in a worker process: once a tenant has this many messages "
        "waiting there, its next ones are moved to the overflow lane (QUEUE.overflow, which workers also "
        "consume, after the main queue) so another tenant's message never waits behind its flood; tenants "
        "with few messages waiting are classified in a small express batch beside the main one. 0: off "
        "(one first-come, first-served queue).",
    )
    bulk_process: bool = Field(
        False,
        description="With TENANT_SHARE on: each worker process classifies its main lane's batches (a flooding "
        "tenant's) in a child process of its own, in a session of its own at a lower CPU priority than every "
        "other process of the host, with its own model and GIL: light tenants' express batches never wait for "
        "the flood's Python work, and a message that crashes the model kills that child, not the worker. It "
        "costs one more model in memory per worker process (about 250 MB) and a second model load at each "
        "start; beside a flood on 2 cores it lowered a light tenant's p99 in most runs (README, Benchmarks).",
    )
    max_text_chars: int = Field(
        50_000,
        ge=1,
        description="Longer texts fail their job with a clear error. The default fits the default token "
        "budget (8,192 tokens is about 35,000-45,000 characters of English prose).",
    )
    token_budget: int = Field(
        8_192,
        ge=1,
        description="Most tokens of one text the model reads; a longer text is read up to here and its "
        "result says truncated: true. Bounds each message's share of a batch's model calls.",
    )
    window_tokens: int = Field(
        32,
        ge=8,
        description="Texts longer than the model's max_seq_length (256 tokens for all-MiniLM-L6-v2) are read "
        "in windows of this many tokens (capped at max_seq_length), cut on sentence boundaries and "
        "overlapping by up to a quarter; shorter texts are read whole, as before.",
    )
    max_metadata_bytes: int = Field(
        65_536, ge=2, description="Largest job metadata, as compact JSON; larger fails the job (422 on the API)."
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description="A job claimed this many times without finishing (its worker died each time: a message "
        "that crashes the worker) fails with that reason instead of being tried again.",
    )
    reconcile_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often one worker (whoever holds the reconciler lease) publishes again what was "
        "committed but never published (a process died in between, the broker was down).",
    )
    reconcile_stuck_after_s: float = Field(
        600.0,
        gt=0,
        description="A job queued or running, or a delivery due, this long after its message was published "
        "is published again (the broker lost the message). Keep it above the longest queue wait.",
    )
    top_k: int = Field(5, ge=1, description="How many ranked labels a result lists.")
    traffic_keep: int = Field(
        10_000, ge=0, description="Recent message vectors kept per label set to refine its label vectors (0: none)."
    )
    traffic_refresh_every: int = Field(
        1_000, ge=1, description="Label vectors are refined again after this many new messages of a set."
    )
    traffic_refine_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Most share of a worker process's time spent refining label vectors in the background; "
        "a refresh that is due waits until the last one's cost fits in this share.",
    )
    label_cache_size: int = Field(64, ge=1, description="Label-set versions whose embeddings a worker keeps in memory.")
    db_retry_max: int | None = Field(
        None,
        ge=0,
        description="How often a message is retried while the database is unreachable; "
        "unset: until it is back (the message is never dropped).",
    )
    db_retry_backoff_max_s: int = Field(60, ge=1, description="Cap of the exponential back-off between those retries.")
    broker_poll_interval_s: float = Field(
        0.1, gt=0, description="Polling interval of the embedded SQL broker (Redis/RabbitMQ push)."
    )
    classify_wait_s: float = Field(60.0, gt=0, description="How long `labelwise classify` waits for the worker.")
    log_level: str = Field("INFO", description="Log level of the worker and API.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: lines for people; json: one JSON object per line (job_id, task_id, tenant, "
        "label_set, delivery_id, duration_s where known; never texts or secrets).",
    )
    worker_heartbeat_s: float = Field(
        15.0,
        gt=0,
        description="How often a worker process records that it is running; /readyz counts a worker alive "
        "for four of these intervals.",
    )
    task_events: bool = Field(
        True,
        description="Celery task events (published, started, succeeded, failed) for Flower and `celery events`; "
        "they cost one small broker message per event. Not sent on the embedded SQL broker.",
    )
    metrics_tenant_labels: bool = Field(
        False,
        description="Worker metrics: add tenant and label_set labels to the job counter and latency "
        "histogram (one series per tenant and set). Off: no tenant names in metrics.",
    )
    max_labels: int = Field(1_000, ge=1, description="Most labels a label set may have.")
    max_label_set_texts: int = Field(
        5_000,
        ge=1,
        description="Most texts one label-set document gives the worker to embed (one per label plus one per "
        "example); more: 422.",
    )
    max_label_set_chars: int = Field(
        500_000, ge=1, description="Most characters in a label-set document's names, descriptions and examples."
    )
    max_body_bytes: int = Field(1_048_576, ge=1_024, description="Largest HTTP request body; larger: 413.")
    max_page_bytes: int = Field(
        1_048_576,
        ge=1_024,
        description="GET /v1/jobs: a page ends before its jobs pass this many bytes of JSON (at least one "
        "job; next_cursor continues), so large metadata never builds a huge response.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, the API's GET /metrics needs `Authorization: Bearer <this>` (401 otherwise).",
    )
    metrics_cache_s: float = Field(
        10.0,
        ge=0,
        description="The API's /metrics counts jobs and deliveries per status at most once per this many "
        "seconds (scrapes in between reuse the counts).",
    )
    token_cache_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long the API remembers which tenant a bearer token belongs to (or that it is unknown): "
        "a revoked token or a deleted tenant's is refused within this many seconds on every API process; "
        "0 looks the token up on every request.",
    )
    rate_limit_per_min: int = Field(
        0, ge=0, description="Requests per minute per tenant on /v1 (per API process); 0: no limit."
    )
    sync_timeout_s: float = Field(
        10.0, gt=0, description="How long POST /v1/classify waits for the worker before answering 202."
    )
    sync_max_waits: int = Field(
        8,
        ge=1,
        description="POST /v1/classify calls one tenant may have waiting at once, per API process (429 with "
        "Retry-After above; the waits hold no thread, so other tenants' requests are not slowed).",
    )
    preview_timeout_s: float = Field(
        10.0, gt=0, description="How long POST /v1/preview and the console's live preview wait for the worker."
    )
    preview_max_waits: int = Field(
        4, ge=1, description="Previews one tenant may be waiting for at once, per API process (429 above)."
    )
    eval_max_rows: int = Field(5_000, ge=1, description="Most labelled messages one evaluation may score.")
    console_session_s: int = Field(
        28_800,
        ge=60,
        description="Lifetime of a console session made from a tenant token (8 h); it ends "
        "earlier when the token is revoked or the admin signs out.",
    )

    admin_token: SecretStr | None = Field(
        None,
        description="Operator token for the /v1/admin routes (tenant deletion, export, import, retention and "
        "privacy of any tenant), sent as `Authorization: Bearer <token>`. Unset: those routes answer 404.",
    )
    retention_days: int = Field(
        30,
        ge=1,
        description="Days a job keeps its text and metadata (a tenant may set its own); then the purge removes "
        "them and keeps the result, label-set version, status and timestamps. Console previews and "
        "evaluations older than it are deleted.",
    )
    delivery_keep_days: int = Field(
        7,
        ge=1,
        description="Days a settled delivery (delivered or dead) is kept for replay and inspection; pending "
        "and retrying ones are never pruned.",
    )
    inbound_dedupe_days: int = Field(
        7,
        ge=1,
        description="Days an inbound platform event id is remembered, so the platform's retries of it start "
        "nothing twice (Slack, Jira and Zendesk retry within hours).",
    )
    purge_interval_s: float = Field(
        60.0,
        gt=0,
        description="How often one worker (whoever holds the purge lease) runs the retention purge.",
    )
    purge_batch: int = Field(
        250, ge=1, description="Rows the purge changes per transaction (small: it never holds locks for long)."
    )
    purge_pause_s: float = Field(
        0.05,
        ge=0,
        description="Least pause between two purge transactions, leaving the database to classification "
        "(the purge also rests twice as long as its last transaction took).",
    )

    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key(s) encrypting integration secrets at rest, comma-separated: the first "
        "encrypts, all decrypt (rotation: 'new,old', then `labelwise secret-key rekey`, then 'new'). Required "
        "with a PostgreSQL database or a Redis/RabbitMQ broker (`labelwise api` and `labelwise worker` refuse "
        "to start without it); unset on the embedded defaults: a key file is made under HOME on first use.",
    )
    outbound_allow: str = Field(
        "",
        description="Comma-separated CIDRs that outbound deliveries may reach although they are private, "
        "loopback or link-local (e.g. 127.0.0.0/8 for tests, 10.1.0.0/16 for an internal Jira).",
    )
    outbound_timeout_s: float = Field(10.0, gt=0, description="Timeout of one outbound HTTP request.")
    delivery_max_attempts: int = Field(8, ge=1, description="Attempts before a delivery is dead.")
    delivery_backoff_base_s: float = Field(
        2.0, gt=0, description="First retry delay; doubling per attempt (with jitter), up to the cap."
    )
    delivery_backoff_max_s: float = Field(3600.0, gt=0, description="Cap of the delay between delivery attempts.")
    max_hook_body_bytes: int = Field(
        262_144,
        ge=1_024,
        description="Largest body of an inbound platform webhook (/hooks/...); larger: 413 before the "
        "signature is checked, so an unsigned request costs at most this much work.",
    )
    inbound_tolerance_s: int = Field(300, ge=1, description="How old a signed inbound webhook may be.")
    max_response_bytes: int = Field(
        65_536, ge=1_024, description="Most bytes of an outbound response's body that a delivery reads."
    )
    fault_injection: str | None = Field(
        None,
        description="Testing only (bench/chaos.py, the tests): 'api-exit-before-publish=P' makes the API process "
        "exit between committing a job and publishing it (with probability P), to prove the reconciler recovers "
        "it; 'worker-exit-on-text=MARKER' makes a worker exit when it is about to encode a text containing "
        "MARKER (a message that kills its worker).",
    )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``HOME/labelwise.sqlite``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'labelwise.sqlite').resolve()}"

    def threads_per_process(self) -> int:
        """Threads one worker process computes with: ``torch_threads``, else its share of the cores."""
        return self.torch_threads or max(1, (os.cpu_count() or 1) // self.worker_processes)

    def resolved_broker_url(self) -> str:
        """The broker URL, defaulting to kombu's SQL transport on ``HOME/broker.sqlite``."""
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.home / 'broker.sqlite').resolve()}"

    def shares_services(self) -> bool:
        """Whether a database or broker other than the embedded SQLite files is set (several hosts may
        then run API and workers against them, so they must share one LABELWISE_SECRET_KEY)."""
        database = (self.database_url or "sqlite").startswith("sqlite")
        broker = (self.broker_url or "sqla+sqlite").startswith(("sqla+sqlite", "sqlite"))
        return not (database and broker)

    def ensure_home(self) -> None:
        """Create HOME when an embedded default lives there."""
        if not (self.database_url and self.broker_url):
            self.home.mkdir(parents=True, exist_ok=True)
