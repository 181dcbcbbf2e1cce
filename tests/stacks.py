"""Test stacks: a database, a broker and a real ``labelwise worker`` process.

Every stack uses its own database (a SQLite file, or a fresh PostgreSQL database) and its own queue
name, so runs never see each other's messages even on a shared Redis or RabbitMQ.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from labelwise.brokers.lanes import side_queues

PG_URL = os.environ.get("LABELWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LABELWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("LABELWISE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REQUIRE = os.environ.get("LABELWISE_TEST_REQUIRE_SERVICES") == "1"
ROOT = Path(__file__).parent.parent
ONNX_DIR = Path(tempfile.gettempdir()) / "labelwise-test-onnx"


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) when nothing listens at host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as e:
        message = f"{name} is not reachable at {host}:{port} ({e})"
        if REQUIRE:
            pytest.fail(message + "; LABELWISE_TEST_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    need_service("PostgreSQL", "127.0.0.1", make_url(PG_URL).port or 5432)
    name = f"lw_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiProcess:
    """``labelwise api`` as a process of its own on a free port of 127.0.0.1, as it is deployed; started
    (``/healthz`` answers) when the constructor returns. ``env`` is its whole environment; its output goes
    to ``log`` (or nowhere)."""

    def __init__(self, env: dict[str, str], *, cwd: Path, log: Path | None = None, timeout_s: float = 60) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") if log is not None else open(os.devnull, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "labelwise", "api", "--port", str(self.port)],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                told = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
                raise RuntimeError(f"the API did not start (exit {self.proc.returncode}): {told}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within 20 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ApiProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class Stack:
    name: str
    home: Path
    database_url: str
    broker_url: str
    queue: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    secret_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    @property
    def env(self) -> dict[str, str]:
        return {
            "LABELWISE_HOME": str(self.home),
            "LABELWISE_DATABASE_URL": self.database_url,
            "LABELWISE_BROKER_URL": self.broker_url,
            "LABELWISE_QUEUE": self.queue,
            "LABELWISE_SECRET_KEY": self.secret_key,
            # deliveries in tests go to stand-in servers on loopback, quickly retried
            "LABELWISE_OUTBOUND_ALLOW": "127.0.0.0/8,::1/128",
            "LABELWISE_OUTBOUND_TIMEOUT_S": "1",
            "LABELWISE_DELIVERY_MAX_ATTEMPTS": "4",
            "LABELWISE_DELIVERY_BACKOFF_BASE_S": "0.2",
            "LABELWISE_DELIVERY_BACKOFF_MAX_S": "1",
            "LABELWISE_RECONCILE_INTERVAL_S": "0.5",  # the reconciler picks up unpublished work quickly
            "LABELWISE_ONNX_DIR": str(ONNX_DIR),  # one export per test session, shared by every stack
            "LABELWISE_WORKER_PROCESSES": "1",  # one process per test worker keeps the suite light
            "HF_HUB_OFFLINE": "1",
        }

    def settings(self, **over: Any) -> Any:
        """Settings as the CLI and the worker of this stack see them."""
        from labelwise.settings import Settings

        prefix = "LABELWISE_"
        fields = {k[len(prefix) :].lower(): v for k, v in self.env.items() if k.startswith(prefix)}
        return Settings.model_validate({**fields, **over})

    def start_worker(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        """Start ``labelwise worker ARGS`` as its own process; stopped when the stack closes."""
        log = open(self.home / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 - lives as long as the worker
        proc = subprocess.Popen(
            [sys.executable, "-m", "labelwise", "worker", *args],
            env={**os.environ, **self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def start_api(self, **extra_env: str) -> ApiProcess:
        """Start ``labelwise api`` on this stack as its own process (its output in ``api-N.log``); the
        caller stops it (``stop()``, or use it as a context manager)."""
        log = self.home / f"api-{len(list(self.home.glob('api-*.log')))}.log"
        return ApiProcess({**os.environ, **self.env, **extra_env}, cwd=self.home, log=log)

    def warm_up(self, *, timeout_s: float = 180) -> None:
        """Wait until a worker has loaded the model (a cold start takes seconds, more on a busy machine)."""
        tenant = f"warmup{uuid.uuid4().hex[:6]}"
        self.cli("tenant", "create", tenant)
        self.cli("labels", "apply", str(Path(__file__).parent / "data" / "tiny.yaml"), "--tenant", tenant)
        job = self.wait_job(self.send({"tenant": tenant, "label_set": "tiny", "text": "warm up"}), timeout_s=timeout_s)
        assert job["status"] == "done", job

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.workers.clear()

    def worker_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.glob("worker-*.log")))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real ``labelwise`` command line against this stack."""
        proc = subprocess.run(
            [sys.executable, "-m", "labelwise", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.home,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"labelwise {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cli_json(self, *args: str, check: bool = True) -> Any:
        return json.loads(self.cli(*args, "--json", check=check).stdout)

    def send(self, kwargs: dict[str, Any], *, task_id: str | None = None, args: list[Any] | None = None) -> str:
        """Publish a labelwise.classify message with a plain Celery client, as another app would."""
        return self.send_many([kwargs], task_ids=[task_id or str(uuid.uuid4())], args=args)[0]

    def send_many(
        self, calls: list[dict[str, Any]], *, task_ids: list[str] | None = None, args: list[Any] | None = None
    ) -> list[str]:
        """Publish one message per kwargs over one connection (a burst); their task ids."""
        from celery import Celery

        from labelwise import brokers

        if self.broker_url.startswith("sqla+"):
            brokers.install()
        app = Celery(broker=self.broker_url, set_as_current=False)
        app.conf.task_serializer = "json"
        ids = task_ids or [str(uuid.uuid4()) for _ in calls]
        try:
            with app.producer_or_acquire() as producer:
                for kwargs, task_id in zip(calls, ids, strict=True):
                    app.send_task(
                        "labelwise.classify",
                        args=args,
                        kwargs=kwargs,
                        task_id=task_id,
                        queue=self.queue,
                        producer=producer,
                    )
        finally:
            app.close()
        return ids

    def wait_job(self, job_id: str, *, timeout_s: float = 90) -> dict[str, Any]:
        """Poll the jobs table until the job is done or failed."""
        from labelwise import pipeline
        from labelwise.models import jobs
        from labelwise.models.db import make_engine, make_session_factory

        engine = make_engine(self.database_url)
        sessions = make_session_factory(engine)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                with sessions() as s:
                    job = jobs.find_job(s, job_id)
                    view = pipeline.job_view(job) if job else None
                if view and view["status"] in ("done", "failed"):
                    return view
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"job {job_id} not finished after {timeout_s}s: {view}\n{self.worker_log()[-3000:]}"
                    )
                time.sleep(0.1)
        finally:
            engine.dispose()


@contextlib.contextmanager
def make_stack(kind: str, *, home: Path, queue: str) -> Iterator[Stack]:
    from labelwise.models.db import upgrade

    if kind == "embedded":
        stack = Stack(
            kind, home, f"sqlite:///{home / 'labelwise.sqlite'}", f"sqla+sqlite:///{home / 'broker.sqlite'}", queue
        )
        upgrade(stack.database_url)
        try:
            yield stack
        finally:
            stack.stop_workers()
        return
    broker = {"pg-redis": REDIS_URL, "pg-rabbitmq": AMQP_URL}[kind]
    from kombu.utils.url import url_to_parts

    parts = url_to_parts(broker)
    need_service(kind.split("-")[1], parts.hostname or "127.0.0.1", parts.port or (6379 if "redis" in kind else 5672))
    with postgres_database() as url:
        upgrade(url)
        stack = Stack(kind, home, url, broker, queue)
        try:
            yield stack
        finally:
            stack.stop_workers()
            _delete_queue(broker, queue)
            for side in side_queues(queue):
                _delete_queue(broker, side)


def _delete_queue(broker_url: str, queue: str) -> None:
    from kombu import Connection, Queue

    with contextlib.suppress(Exception), Connection(broker_url) as conn, conn.channel() as channel:
        Queue(queue, channel=channel).delete()
