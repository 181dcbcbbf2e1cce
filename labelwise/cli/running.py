"""Running labelwise: the schema, the worker, the API, both together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import typer

from labelwise import logs
from labelwise.brokers.lanes import side_queues
from labelwise.cli.apps import app, db_app
from labelwise.cli.common import JsonOpt, emit, get_ctx
from labelwise.crypto import new_key, require_secret_key, secret_box
from labelwise.models.db import upgrade
from labelwise.priority import freeze_startup_objects
from labelwise.settings import Settings


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database schema to the latest version."""
    c = get_ctx(ctx)
    c.settings.ensure_home()
    upgrade(c.settings.resolved_database_url())
    typer.echo(f"database is up to date: {_where(c.settings)}", err=True)


def _where(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url()).render_as_string(hide_password=True)
    return f"{url} (LABELWISE_HOME={settings.home.resolve()})"


@app.command()
def worker(
    ctx: typer.Context,
    processes: int = typer.Option(
        None, "--processes", "-p", min=1, help="Worker processes (default LABELWISE_WORKER_PROCESSES)."
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", "-b", min=1, help="Most messages per model call (default LABELWISE_BATCH_SIZE)."
    ),
    loglevel: str = typer.Option(None, "--loglevel", "-l", help="Log level (default LABELWISE_LOG_LEVEL)."),
    metrics_port: int = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve worker metrics (Prometheus) on this port at /metrics, summed over the worker's processes.",
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address the metrics endpoint binds to."),
) -> None:
    """Run a worker that consumes labelwise.classify and labelwise.deliver messages until stopped (Ctrl-C).

    Each process batches the messages that arrive together into one model call."""
    settings = get_ctx(ctx).settings
    require_secret_key(settings)
    updates = {
        "worker_processes": processes or settings.worker_processes,
        "batch_size": batch_size or settings.batch_size,
    }
    settings = settings.model_copy(update=updates)
    logs.configure(settings.log_format, loglevel or settings.log_level)
    if settings.worker_processes > 1:
        with _metrics_dir(metrics_port) as multiproc_dir:
            if metrics_port:
                _serve_metrics(settings, metrics_port, metrics_host)
            raise typer.Exit(_run_processes(settings, loglevel, multiproc_dir))
    from labelwise.worker.app import create_app

    if metrics_port:
        _serve_metrics(settings, metrics_port, metrics_host)

    argv = [
        *(["--quiet"] if settings.log_format == "json" else []),  # no banner: every line is a JSON object
        "worker",
        f"--loglevel={loglevel or settings.log_level}",
        f"--queues={','.join([settings.queue, *side_queues(settings.queue)])}",  # main first (brokers/lanes.py)
        f"--hostname=labelwise-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    create_app(settings).worker_main(argv)


@contextlib.contextmanager
def _metrics_dir(metrics_port: int | None) -> Iterator[str | None]:
    """With a metrics port: a directory for prometheus-client's multiprocess mode (the children write
    their metrics there, this process serves the sum), unless PROMETHEUS_MULTIPROC_DIR names one."""
    from labelwise.worker.metrics import MULTIPROC_ENV

    if not metrics_port or os.environ.get(MULTIPROC_ENV):
        yield os.environ.get(MULTIPROC_ENV)
        return
    with tempfile.TemporaryDirectory(prefix="labelwise-metrics-") as path:
        os.environ[MULTIPROC_ENV] = path
        try:
            yield path
        finally:
            del os.environ[MULTIPROC_ENV]


def _serve_metrics(settings: Settings, port: int, host: str) -> None:
    from labelwise.worker import metrics
    from labelwise.worker.app import create_app

    queues = [settings.queue, *side_queues(settings.queue)]
    metrics.serve(port, host=host, celery=create_app(settings), queues=queues)


def _run_processes(settings: Settings, loglevel: str | None, multiproc_dir: str | None = None) -> int:
    """N single-process workers side by side, each with its share of the cores; stops them together."""
    from labelwise.worker.metrics import MULTIPROC_ENV

    threads = settings.threads_per_process()
    env = {
        **os.environ,
        **({MULTIPROC_ENV: multiproc_dir} if multiproc_dir else {}),
        "LABELWISE_WORKER_PROCESSES": "1",
        "LABELWISE_TORCH_THREADS": str(threads),
        "LABELWISE_BATCH_SIZE": str(settings.batch_size),
        # glibc gives every thread its own malloc arena; with a pool of threads that fragments memory
        # and the resident size creeps up. Two arenas keep it flat (measured by bench/memory.py).
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
    }
    args = [sys.executable, "-m", "labelwise", "worker", *([f"--loglevel={loglevel}"] if loglevel else [])]
    # Same process group: a signal to the group (Ctrl-C, a supervisor) reaches every worker too.
    children = [subprocess.Popen(args, env=env) for _ in range(settings.worker_processes)]

    def _stop(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return max(child.wait() for child in children)


HostOpt = typer.Option("127.0.0.1", "--host", help="Address the HTTP API binds to.")
PortOpt = typer.Option(8000, "--port", help="Port of the HTTP API.")


@app.command()
def api(ctx: typer.Context, host: str = HostOpt, port: int = PortOpt) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) until Ctrl-C or SIGTERM."""
    require_secret_key(get_ctx(ctx).settings)
    _serve_api(get_ctx(ctx).settings, host=host, port=port)


def _serve_api(settings: Settings, *, host: str, port: int) -> None:
    """Run the API until SIGINT or SIGTERM, then return."""
    import uvicorn

    from labelwise.api.app import create_app as create_api
    from labelwise.logs import uvicorn_log_config

    class Server(uvicorn.Server):
        """uvicorn.run re-raises the signal that stopped it, which ends the process before ``up`` can stop
        its worker; this server only returns."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    log_config = uvicorn_log_config(settings.log_format, settings.log_level)
    kwargs: dict[str, Any] = {"log_config": log_config} if log_config else {}
    config = uvicorn.Config(create_api(settings), host=host, port=port, log_level=settings.log_level.lower(), **kwargs)
    freeze_startup_objects()  # the app is built: its objects stay out of full collections (labelwise.priority)
    Server(config).run()


@app.command()
def up(ctx: typer.Context, host: str = HostOpt, port: int = PortOpt) -> None:
    """Migrate the database, then run the worker and the HTTP API together until Ctrl-C or SIGTERM."""
    c = get_ctx(ctx)
    require_secret_key(c.settings)
    c.settings.ensure_home()
    upgrade(c.settings.resolved_database_url())
    typer.echo(f"labelwise up: database {c.settings.resolved_database_url()}", err=True)
    typer.echo(f"labelwise up: broker   {c.settings.resolved_broker_url()}", err=True)
    typer.echo(f"labelwise up: API      http://{host}:{port} (docs at /docs)", err=True)
    # Its own session: Ctrl-C reaches only us, and we stop the worker with one SIGTERM (warm shutdown).
    worker_proc = subprocess.Popen([sys.executable, "-m", "labelwise", "worker"], start_new_session=True)
    try:
        _serve_api(c.settings, host=host, port=port)  # returns after Ctrl-C or SIGTERM
    finally:
        if worker_proc.poll() is None:
            worker_proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown: finish the current message
        try:
            worker_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_proc.kill()
        typer.echo("labelwise up: stopped", err=True)


@app.command("secret-key")
def secret_key(
    ctx: typer.Context,
    rekey: bool = typer.Option(
        False,
        "--rekey",
        help="Instead: re-encrypt every stored integration secret with the first key of LABELWISE_SECRET_KEY "
        "(run it with 'new,old'; afterwards 'new' alone opens them all).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Print a new LABELWISE_SECRET_KEY (a Fernet key), or rotate the stored secrets to the first key."""
    if not rekey:
        key = new_key()
        emit({"secret_key": key}, as_json=as_json, human=key)
        return
    from labelwise import pipeline

    c = get_ctx(ctx)
    with c.sessions.begin() as session:
        count = pipeline.rekey_integrations(session, secret_box(c.settings))
    emit({"rekeyed": count}, as_json=as_json, human=f"{count} integrations re-encrypted with the first key")
