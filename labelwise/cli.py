"""The ``labelwise`` command line (typer). Every data command takes ``--json``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from labelwise import cli_integrations, pipeline
from labelwise.cli_common import Ctx, JsonOpt, TenantOpt, emit, fail, get_ctx
from labelwise.errors import LabelwiseError, NotFoundError
from labelwise.labelset import load_yaml
from labelwise.messages import check_text, parse_message
from labelwise.models import jobs as jobs_q
from labelwise.models import labelsets as labelsets_q
from labelwise.models import tenants as tenants_q
from labelwise.models.db import upgrade
from labelwise.settings import Settings

app = typer.Typer(help="labelwise: zero-shot text classification on a message queue.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants and their first token.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of a tenant.", no_args_is_help=True)
labels_app = typer.Typer(
    help="Label sets: apply a YAML document, show, list versions, roll back.", no_args_is_help=True
)
jobs_app = typer.Typer(help="Jobs: what was classified, with status and result.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(token_app, name="token")
app.add_typer(labels_app, name="labels")
app.add_typer(jobs_app, name="jobs")


@app.callback()
def _main(ctx: typer.Context) -> None:
    """Settings come from LABELWISE_* environment variables (see README)."""
    ctx.obj = Ctx(Settings())
    ctx.call_on_close(ctx.obj.close)


# --- running -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database schema to the latest version."""
    c = get_ctx(ctx)
    c.settings.ensure_home()
    upgrade(c.settings.resolved_database_url())
    typer.echo("database is up to date", err=True)


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
) -> None:
    """Run a worker that consumes labelwise.classify and labelwise.deliver messages until stopped (Ctrl-C).

    Each process batches the messages that arrive together into one model call."""
    settings = get_ctx(ctx).settings
    updates = {
        "worker_processes": processes or settings.worker_processes,
        "batch_size": batch_size or settings.batch_size,
    }
    settings = settings.model_copy(update=updates)
    if settings.worker_processes > 1:
        raise typer.Exit(_run_processes(settings, loglevel))
    from labelwise.worker.app import create_app

    argv = [
        "worker",
        f"--loglevel={loglevel or settings.log_level}",
        f"--queues={settings.queue}",
        f"--hostname=labelwise-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    create_app(settings).worker_main(argv)


def _run_processes(settings: Settings, loglevel: str | None) -> int:
    """N single-process workers side by side, each with its share of the cores; stops them together."""
    threads = settings.torch_threads or max(1, (os.cpu_count() or 1) // settings.worker_processes)
    env = {
        **os.environ,
        "LABELWISE_WORKER_PROCESSES": "1",
        "LABELWISE_TORCH_THREADS": str(threads),
        "LABELWISE_BATCH_SIZE": str(settings.batch_size),
    }
    args = [sys.executable, "-m", "labelwise", "worker", *([f"--loglevel={loglevel}"] if loglevel else [])]
    children = [subprocess.Popen(args, env=env, start_new_session=True) for _ in range(settings.worker_processes)]

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
    """Serve the HTTP API (OpenAPI docs at /docs) until Ctrl-C."""
    import uvicorn

    from labelwise.api.app import create_app as create_api

    settings = get_ctx(ctx).settings
    uvicorn.run(create_api(settings), host=host, port=port, log_level=settings.log_level.lower())


@app.command()
def up(ctx: typer.Context, host: str = HostOpt, port: int = PortOpt) -> None:
    """Migrate the database, then run the worker and the HTTP API together until Ctrl-C."""
    c = get_ctx(ctx)
    c.settings.ensure_home()
    upgrade(c.settings.resolved_database_url())
    typer.echo(f"labelwise up: database {c.settings.resolved_database_url()}", err=True)
    typer.echo(f"labelwise up: broker   {c.settings.resolved_broker_url()}", err=True)
    typer.echo(f"labelwise up: API      http://{host}:{port} (docs at /docs)", err=True)
    # Its own session: Ctrl-C reaches only us, and we stop the worker with one SIGTERM (warm shutdown).
    worker_proc = subprocess.Popen([sys.executable, "-m", "labelwise", "worker"], start_new_session=True)
    try:
        api(ctx, host=host, port=port)  # returns after Ctrl-C / SIGTERM (uvicorn handles both)
    finally:
        if worker_proc.poll() is None:
            worker_proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown: finish the current message
        try:
            worker_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_proc.kill()
        typer.echo("labelwise up: stopped", err=True)


# --- tenants and tokens ------------------------------------------------------------------------


@tenant_app.command("create")
def tenant_create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Tenant name (letters, digits, - and _)."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Succeed without a new token if the tenant exists."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a tenant and print its first API token (shown only this once)."""
    c = get_ctx(ctx)
    try:
        with c.sessions.begin() as s:
            if exist_ok and tenants_q.find_tenant(s, name) is not None:
                emit({"tenant": name, "token": None}, as_json=as_json, human=f"tenant {name} exists")
                return
            tenant = tenants_q.create_tenant(s, _tenant_name(name))
            _, token = tenants_q.create_token(s, tenant_id=tenant.id)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(
        {"tenant": name, "token": token},
        as_json=as_json,
        human=f"tenant {name} created\ntoken: {token}\n(keep it: it is not shown again)",
    )


def _tenant_name(name: str) -> str:
    import re

    from labelwise.errors import InvalidInputError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
        raise InvalidInputError("tenant names are 1-64 letters, digits, - and _", field="name")
    return name


@tenant_app.command("list")
def tenant_list(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """List tenants."""
    with get_ctx(ctx).sessions() as s:
        rows = [{"tenant": t.name, "created_at": t.created_at.isoformat()} for t in tenants_q.list_tenants(s)]
    emit(rows, as_json=as_json, human="\n".join(r["tenant"] for r in rows) or "(no tenants)")


@token_app.command("create")
def token_create(ctx: typer.Context, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Create another API token for a tenant (shown only this once)."""
    c = get_ctx(ctx)
    try:
        with c.sessions.begin() as s:
            row = tenants_q.get_tenant(s, tenant)
            _, token = tenants_q.create_token(s, tenant_id=row.id)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit({"tenant": tenant, "token": token}, as_json=as_json, human=f"token: {token}")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token: str = typer.Argument(..., help="The token, or its first 10 characters."),
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Revoke a token; it stops working at once."""
    c = get_ctx(ctx)
    try:
        with c.sessions.begin() as s:
            row = tenants_q.get_tenant(s, tenant)
            count = tenants_q.revoke_token(s, tenant_id=row.id, token_or_prefix=token)
            if not count:
                raise NotFoundError("no live token matches")
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit({"tenant": tenant, "revoked": count}, as_json=as_json, human=f"revoked {count} token(s)")


# --- label sets --------------------------------------------------------------------------------


@labels_app.command("apply")
def labels_apply(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Label-set YAML document."),
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Store a label-set YAML as a new version (unchanged documents keep their version)."""
    c = get_ctx(ctx)
    try:
        doc = load_yaml(file.read_text(encoding="utf-8"))
        with c.sessions.begin() as s:
            version, created = pipeline.apply_label_set(s, tenant=tenant, doc=doc)
            out = {"tenant": tenant, "label_set": doc.name, "version": version.version, "created": created}
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    what = "created version" if created else "unchanged, still version"
    emit(out, as_json=as_json, human=f"label set {doc.name}: {what} {version.version} ({len(doc.labels)} labels)")


@labels_app.command("show")
def labels_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Label-set name."),
    tenant: str = TenantOpt,
    version: int = typer.Option(None, "--version", help="A past version (default: the current one)."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a label set's current (or a given) version."""
    try:
        with get_ctx(ctx).sessions() as s:
            tenant_row = tenants_q.get_tenant(s, tenant)
            label_set = labelsets_q.get_label_set(s, tenant_id=tenant_row.id, name=name)
            row = labelsets_q.get_version(
                s, tenant_id=tenant_row.id, label_set_id=label_set.id, version=version or label_set.current_version or 0
            )
            out = {"name": name, **pipeline.version_view(row, current=label_set.current_version)}
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    import yaml

    human = f"# {name} version {row.version}\n" + yaml.safe_dump(row.document, sort_keys=False, allow_unicode=True)
    emit(out, as_json=as_json, human=human.rstrip())


@labels_app.command("versions")
def labels_versions(
    ctx: typer.Context, name: str = typer.Argument(...), tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """List a label set's versions, oldest first."""
    try:
        with get_ctx(ctx).sessions() as s:
            tenant_row = tenants_q.get_tenant(s, tenant)
            label_set = labelsets_q.get_label_set(s, tenant_id=tenant_row.id, name=name)
            rows = labelsets_q.list_versions(s, tenant_id=tenant_row.id, label_set_id=label_set.id)
            out = [pipeline.version_view(r, current=label_set.current_version) for r in rows]
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    human = "\n".join(
        f"{'*' if v['current'] else ' '} v{v['version']}  {v['created_at']}  {len(v['document']['labels'])} labels"
        for v in out
    )
    emit(out, as_json=as_json, human=human)


@labels_app.command("rollback")
def labels_rollback(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    to: int = typer.Option(..., "--to", help="Version to make current."),
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Point a label set back at an older version; the next message uses it."""
    try:
        with get_ctx(ctx).sessions.begin() as s:
            tenant_row = tenants_q.get_tenant(s, tenant)
            row = labelsets_q.rollback(s, tenant_id=tenant_row.id, name=name, version=to)
            out = {"label_set": name, "version": row.version}
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(out, as_json=as_json, human=f"label set {name} now uses version {row.version}")


# --- classifying -------------------------------------------------------------------------------


@app.command()
def classify(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="The message to classify."),
    tenant: str = TenantOpt,
    label_set: str = typer.Option(..., "--label-set", "-s", help="Label-set name."),
    key: str = typer.Option(None, "--key", help="Idempotency key: the same key gives the same job."),
    local: bool = typer.Option(False, "--local", help="Classify in this process, without queue, worker or job."),
    wait_s: float = typer.Option(
        None, "--wait", help="Seconds to wait for the worker (default LABELWISE_CLASSIFY_WAIT_S)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Classify one message through the queue (a worker must run: `labelwise up`) and print the result."""
    c = get_ctx(ctx)
    try:
        check_text(text, max_text_chars=c.settings.max_text_chars)
        view = (
            _classify_local(c, tenant, label_set, text)
            if local
            else _classify_queued(c, tenant, label_set, text, key, wait_s)
        )
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(view, as_json=as_json, human=format_result(view))
    if view["status"] == "failed":
        raise typer.Exit(1)
    if view["status"] != "done":
        typer.echo(
            f"the worker has not finished job {view['job_id']} yet; is `labelwise up` running? "
            f"See later with: labelwise jobs show {view['job_id']}",
            err=True,
        )
        raise typer.Exit(3)


def _classify_local(c: Ctx, tenant: str, label_set: str, text: str) -> dict[str, Any]:
    from labelwise.worker.resources import build_classifier

    classifier = build_classifier(c.settings)
    with c.sessions() as s:
        return pipeline.classify_now(s, classifier, tenant=tenant, label_set=label_set, text=text)


def _classify_queued(
    c: Ctx, tenant: str, label_set: str, text: str, key: str | None, wait_s: float | None
) -> dict[str, Any]:
    from labelwise.worker.app import create_app, enqueue_job

    fields = {"tenant": tenant, "label_set": label_set, "text": text, "idempotency_key": key}
    msg = parse_message(fields, max_text_chars=c.settings.max_text_chars)
    celery_app = create_app(c.settings)
    try:
        view, _ = pipeline.submit_and_enqueue(
            c.sessions, msg, publish=lambda job: enqueue_job(celery_app, job, queue=c.settings.queue)
        )
    finally:
        celery_app.close()
    return pipeline.wait_for_job(c.sessions, view["job_id"], timeout_s=wait_s or c.settings.classify_wait_s)


def format_result(view: dict[str, Any]) -> str:
    head = f"job {view['job_id'] or '(local)'} · {view['status']} · {view['label_set']}"
    if view.get("label_set_version"):
        head += f" v{view['label_set_version']} · {view['model']}"
    lines = [head]
    if view.get("error"):
        lines.append(f"  error: {view['error']}")
    width = max((len(str(x["name"])) for x in view["labels"]), default=0)
    for item in view["labels"]:
        mark = "  <- chosen" if item["name"] in view["chosen"] else ""
        lines.append(f"  {item['name']:<{width}}  {item['score']:.3f}{mark}")
    if view.get("abstained"):
        lines.append(
            f"  abstained (no label cleared its threshold); reported: {', '.join(view['chosen']) or 'nothing'}"
        )
    return "\n".join(lines)


# --- jobs --------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's jobs."),
    status: str = typer.Option(None, "--status", help="queued, running, done or failed."),
    label_set: str = typer.Option(None, "--label-set", "-s", help="Only jobs for this label set."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="How many, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """List recent jobs, newest first."""
    try:
        with get_ctx(ctx).sessions() as s:
            tenant_id = tenants_q.get_tenant(s, tenant).id if tenant else None
            rows = jobs_q.list_jobs(s, tenant_id=tenant_id, status=status, label_set=label_set, limit=limit)
            views = [pipeline.job_view(j) for j in rows]
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    human = "\n".join(
        f"{v['job_id']}  {v['status']:<7}  {v['tenant']}/{v['label_set']}  {', '.join(v['chosen']) or v['error'] or ''}"
        for v in views
    )
    emit(views, as_json=as_json, human=human or "(no jobs)")


@jobs_app.command("show")
def jobs_show(
    ctx: typer.Context,
    job_id: str = typer.Argument(None, help="Job id (or use --key with --tenant)."),
    key: str = typer.Option(None, "--key", help="Idempotency key of the job."),
    tenant: str = typer.Option(None, "--tenant", "-t", help="Tenant of --key."),
    as_json: bool = JsonOpt,
) -> None:
    """Show one job in the result shape."""
    try:
        with get_ctx(ctx).sessions() as s:
            view = pipeline.job_view(_find_job(s, job_id, key, tenant))
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(view, as_json=as_json, human=format_result(view))


@jobs_app.command("feedback")
def jobs_feedback(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="Job id."),
    label: str = typer.Option(..., "--label", help="The right label."),
    as_json: bool = JsonOpt,
) -> None:
    """Say which label was right: the job's text becomes an example of it in the label set's next version."""
    try:
        with get_ctx(ctx).sessions.begin() as s:
            job = jobs_q.get_job(s, job_id)
            if job.tenant_id is None:
                raise NotFoundError(f"job {job_id!r} has no known tenant")
            out = pipeline.record_feedback(s, tenant_id=job.tenant_id, job_id=job_id, label=label)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(out, as_json=as_json, human=f"label set {out['label_set']} is now version {out['label_set_version']}")


def _find_job(s: Session, job_id: str | None, key: str | None, tenant: str | None) -> Any:
    from labelwise.errors import InvalidInputError

    if job_id:
        return jobs_q.get_job(s, job_id)
    if not (key and tenant):
        raise InvalidInputError("give a job id, or --key with --tenant")
    job = jobs_q.find_by_key(s, tenant_id=tenants_q.get_tenant(s, tenant).id, key=key)
    if job is None:
        raise NotFoundError(f"no job with key {key!r}")
    return job


def main() -> None:
    app()


cli_integrations.register(app)
