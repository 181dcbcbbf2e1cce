"""``labelwise integrations ...`` and ``labelwise deliveries ...``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from labelwise import pipeline
from labelwise.cli.admin import read_file
from labelwise.cli.apps import app
from labelwise.cli.common import JsonOpt, TenantOpt, emit, fail, get_ctx
from labelwise.crypto import secret_box
from labelwise.errors import InvalidDocumentError, LabelwiseError
from labelwise.models import tenants as tenants_q

integrations_app = typer.Typer(help="Integrations: Slack, Jira, Zendesk and signed webhooks.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Deliveries of results to integrations: list, replay the dead.", no_args_is_help=True)


@integrations_app.command("apply")
def integrations_apply(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Integration YAML document."),
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create or update an integration from YAML (secrets are encrypted; omit them to keep the stored ones)."""
    c = get_ctx(ctx)
    try:
        try:
            data = yaml.safe_load(read_file(file))
        except yaml.YAMLError as e:
            raise InvalidDocumentError(f"not valid YAML: {e}") from e
        with c.sessions.begin() as s:
            view, created = pipeline.apply_integration(
                s, secret_box(c.settings), tenant_id=tenants_q.get_tenant(s, tenant).id, data=data
            )
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    hook = f"; events in at {view['hook_path']}" if view["hook_path"] else ""
    emit(
        view,
        as_json=as_json,
        human=f"integration {view['name']} ({view['kind']}) {'created' if created else 'updated'}{hook}",
    )


@integrations_app.command("list")
def integrations_list(ctx: typer.Context, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """List a tenant's integrations (never their secrets)."""
    c = get_ctx(ctx)
    try:
        with c.sessions() as s:
            views = pipeline.list_integrations(s, secret_box(c.settings), tenant_id=tenants_q.get_tenant(s, tenant).id)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    human = "\n".join(f"{v['name']}  {v['kind']}  {v['hook_path'] or ''}" for v in views) or "(no integrations)"
    emit(views, as_json=as_json, human=human)


@integrations_app.command("show")
def integrations_show(
    ctx: typer.Context, name: str = typer.Argument(...), tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Show one integration (secret names only)."""
    c = get_ctx(ctx)
    try:
        with c.sessions() as s:
            view = pipeline.get_integration(
                s, secret_box(c.settings), tenant_id=tenants_q.get_tenant(s, tenant).id, name=name
            )
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(view, as_json=as_json, human=json.dumps(view, indent=2))


@integrations_app.command("delete")
def integrations_delete(
    ctx: typer.Context, name: str = typer.Argument(...), tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Delete an integration and its deliveries; events for it are refused from now on."""
    try:
        with get_ctx(ctx).sessions.begin() as s:
            pipeline.delete_integration(s, tenant_id=tenants_q.get_tenant(s, tenant).id, name=name)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit({"tenant": tenant, "integration": name, "deleted": True}, as_json=as_json, human=f"integration {name} deleted")


@deliveries_app.command("list")
def deliveries_list(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", help="pending, retrying, delivered or dead."),
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's deliveries."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = JsonOpt,
) -> None:
    """List deliveries, newest first."""
    c = get_ctx(ctx)
    try:
        with c.sessions() as s:
            tenant_id = tenants_q.get_tenant(s, tenant).id if tenant else None
            views = pipeline.list_deliveries(s, tenant_id=tenant_id, status=status, limit=limit)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    lines = [f"{'DELIVERY':<38} {'INTEGRATION':<20} {'STATUS':<9} {'JOB':<38} ATTEMPTS  LAST ERROR"]
    lines += [
        f"{v['delivery_id']:<38} {v['integration'] or '?':<20} {v['status']:<9} {v['job_id']:<38} "
        f"{v['attempts']:<9} {v['last_error'] or ''}"
        for v in views
    ]
    emit(views, as_json=as_json, human="\n".join(lines) if views else "(no deliveries)")


@deliveries_app.command("replay")
def deliveries_replay(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(None, help="Delivery ids; none: every dead delivery (of --tenant)."),
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's deliveries."),
    as_json: bool = JsonOpt,
) -> None:
    """Send dead deliveries again, with a fresh set of attempts and the same delivery id."""
    from labelwise.worker.app import create_app, enqueue_delivery

    c = get_ctx(ctx)
    try:
        with c.sessions.begin() as s:
            tenant_id = tenants_q.get_tenant(s, tenant).id if tenant else None
            replayed = pipeline.replay_deliveries(s, tenant_id=tenant_id, ids=list(ids or []))
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    celery_app = create_app(c.settings)
    try:
        for delivery_id in replayed:
            enqueue_delivery(celery_app, delivery_id, queue=c.settings.queue)
    finally:
        celery_app.close()
    emit({"replayed": replayed}, as_json=as_json, human=f"replaying {len(replayed)} deliveries")


app.add_typer(integrations_app, name="integrations")
app.add_typer(deliveries_app, name="deliveries")
