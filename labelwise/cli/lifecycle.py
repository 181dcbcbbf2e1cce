"""A tenant's data: delete, export, import, retention and privacy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from labelwise.cli.apps import tenant_app
from labelwise.cli.common import JsonOpt, emit, fail, get_ctx
from labelwise.errors import InvalidInputError, LabelwiseError
from labelwise.pipeline import lifecycle


@tenant_app.command("delete")
def tenant_delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Tenant name."),
    yes: bool = typer.Option(False, "--yes", help="Really delete: without it nothing is deleted."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete a tenant and every row it owns (jobs, deliveries, inbound event ids, label sets and every
    version, traffic vectors, integrations, tokens, console data). Irreversible: export it first
    (labelwise tenant export NAME --out DIR)."""
    try:
        if not yes:
            raise InvalidInputError(f"deleting tenant {name} cannot be undone; add --yes to do it", field="yes")
        out = lifecycle.delete_tenant(get_ctx(ctx).sessions, name)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    total = sum(out["deleted"].values())
    emit(out, as_json=as_json, human=f"tenant {name} deleted ({total} rows)")


@tenant_app.command("data")
def tenant_data(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Tenant name."),
    retention_days: int = typer.Option(
        None, "--retention-days", min=1, max=36_500, help="Days a job keeps its text and metadata."
    ),
    default_retention: bool = typer.Option(
        False, "--default-retention", help="Back to LABELWISE_RETENTION_DAYS (drops the tenant's own)."
    ),
    privacy: bool = typer.Option(
        None, "--privacy/--no-privacy", help="Privacy mode: the text of new messages is never stored."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Show a tenant's retention and privacy mode, or change them."""
    c = get_ctx(ctx)
    changes: dict[str, object] = {}
    if retention_days is not None or default_retention:
        changes["retention_days"] = None if default_retention else retention_days
    if privacy is not None:
        changes["privacy"] = privacy
    try:
        if retention_days is not None and default_retention:
            raise InvalidInputError("give --retention-days or --default-retention, not both", field="retention_days")
        with c.sessions.begin() as s:
            out = lifecycle.set_data_settings(s, name, default_days=c.settings.retention_days, **changes)  # type: ignore[arg-type]
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    own = "" if out["retention_days"] else " (the default)"
    privacy_mode = "on" if out["privacy"] else "off"
    human = f"tenant {name}: texts kept {out['effective_retention_days']} days{own}; privacy {privacy_mode}"
    emit(out, as_json=as_json, human=human)


def _when(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInputError(f"--{field}: not an ISO 8601 date or time: {value!r}", field=field) from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@tenant_app.command("export")
def tenant_export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Tenant name."),
    out: Path = typer.Option(..., "--out", help="Directory to write (created; must be empty)."),
    since: str = typer.Option(None, "--since", help="Only jobs created at or after this ISO date/time (UTC)."),
    until: str = typer.Option(None, "--until", help="Only jobs created before this ISO date/time (UTC)."),
    as_json: bool = JsonOpt,
) -> None:
    """Export a tenant as JSONL files in a directory: label sets with every version, integrations without
    secrets, token prefixes, and the jobs created in [--since, --until) (README "Data")."""
    from labelwise.pipeline import exporting

    try:
        window = {"since": _when(since, "since"), "until": _when(until, "until")}
        with get_ctx(ctx).sessions() as s:
            counts = exporting.write_directory(exporting.export_records(s, name, **window), out)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit(
        {"tenant": name, "out": str(out), "records": counts},
        as_json=as_json,
        human=f"tenant {name} exported to {out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
    )


@tenant_app.command("import")
def tenant_import(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="An export directory, or the NDJSON file the API's export returns."),
    name: str = typer.Option(None, "--as", help="Import under this name (default: the exported tenant's)."),
    as_json: bool = JsonOpt,
) -> None:
    """Import a tenant exported from another installation; prints its new API token (shown once).
    Integrations come without secrets (set them again) and with new inbound hook URLs."""
    from labelwise.crypto import secret_box
    from labelwise.pipeline import exporting

    c = get_ctx(ctx)
    try:
        if not source.exists():
            raise InvalidInputError(f"{source} does not exist", field="source")
        out = exporting.import_records(c.sessions, secret_box(c.settings), exporting.read_records(source), name=name)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    counts = ", ".join(f"{v} {k}" for k, v in out["imported"].items() if k != "manifest")
    human = f"tenant {out['tenant']} imported: {counts}\ntoken: {out['token']}\n(keep it: it is not shown again)"
    emit(out, as_json=as_json, human=human)
