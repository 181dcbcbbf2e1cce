"""Classifying from the command line, and the jobs it made."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.orm import Session

from labelwise import pipeline
from labelwise.cli.apps import app, jobs_app
from labelwise.cli.common import Ctx, JsonOpt, TenantOpt, emit, fail, get_ctx
from labelwise.errors import LabelwiseError, NotFoundError
from labelwise.messages import check_text, parse_message
from labelwise.models import jobs as jobs_q
from labelwise.models import tenants as tenants_q


@app.command()
def classify(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="The message to classify."),
    tenant: str = TenantOpt,
    label_set: str = typer.Option(..., "--label-set", "-s", help="Label-set name."),
    key: str = typer.Option(None, "--key", help="Idempotency key: the same key gives the same job."),
    local: bool = typer.Option(False, "--local", help="Classify in this process, without queue, worker or job."),
    wait_s: float = typer.Option(
        None,
        "--wait",
        min=0,
        help="Seconds to wait for the worker (default LABELWISE_CLASSIFY_WAIT_S); 0: enqueue and return at once.",
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
    timeout_s = c.settings.classify_wait_s if wait_s is None else wait_s
    return pipeline.wait_for_job(c.sessions, view["job_id"], timeout_s=timeout_s)


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
    if (view.get("windows") or 1) > 1:
        lines.append(
            f"  read in {view['windows']} windows"
            + (" (truncated: the end was not read)" if view.get("truncated") else "")
        )
        lines += [
            f"  evidence for {e['label']}: characters {e['start']}-{e['end']} ({e['score']:.3f})"
            for e in view.get("evidence") or []
        ]
    return "\n".join(lines)


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
    lines = [f"{'JOB':<36}  {'STATUS':<7}  {'CREATED':<19}  {'TENANT/LABEL SET':<30}  RESULT"]
    lines += [
        f"{v['job_id']:<36}  {v['status']:<7}  {(v['created_at'] or '')[:19]:<19}  "
        f"{v['tenant'] + '/' + v['label_set']:<30}  {result_summary(v)}"
        for v in views
    ]
    emit(views, as_json=as_json, human="\n".join(lines) if views else "(no jobs)")


def result_summary(view: dict[str, Any]) -> str:
    """One line: the chosen labels, or that the job abstained (and which fallback it reported), or its error."""
    if view["status"] == "failed":
        return f"error: {view['error']}"
    if view.get("abstained"):
        fallback = f"; fallback {', '.join(view['chosen'])}" if view["chosen"] else ""
        return f"(abstained{fallback})"
    return ", ".join(view["chosen"])


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
    text: str = typer.Option(
        None, "--text", help="The message's text again, for a job that no longer keeps it (retention, privacy mode)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Say which label was right: the job's text becomes an example of it in the label set's next version."""
    try:
        with get_ctx(ctx).sessions.begin() as s:
            job = jobs_q.get_job(s, job_id)
            if job.tenant_id is None:
                raise NotFoundError(f"job {job_id!r} has no known tenant")
            out = pipeline.record_feedback(
                s, tenant_id=job.tenant_id, job_id=job_id, label=label, text=text, created_by="cli"
            )
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
