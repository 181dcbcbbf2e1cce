"""Tenants, tokens and label sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from labelwise import pipeline
from labelwise.cli.apps import labels_app, tenant_app, token_app
from labelwise.cli.common import Ctx, JsonOpt, TenantOpt, emit, fail, get_ctx
from labelwise.errors import InvalidInputError, LabelwiseError, NotFoundError
from labelwise.labelset import load_yaml
from labelwise.models import labelsets as labelsets_q
from labelwise.models import tenants as tenants_q


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
                human = (
                    f"tenant {name} exists; its tokens: labelwise token list --tenant {name}; "
                    f"a new one: labelwise token create --tenant {name}"
                )
                emit({"tenant": name, "token": None}, as_json=as_json, human=human)
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


@token_app.command("list")
def token_list(ctx: typer.Context, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """List a tenant's tokens: prefix, created, revoked (the secret part is never stored, so never shown)."""
    try:
        with get_ctx(ctx).sessions() as s:
            rows = tenants_q.list_tokens(s, tenant_id=tenants_q.get_tenant(s, tenant).id)
            out = [
                {
                    "prefix": r.prefix,
                    "created_at": r.created_at.isoformat(),
                    "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                }
                for r in rows
            ]
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    lines = [f"{'PREFIX':<12} {'CREATED':<32} REVOKED"]
    lines += [f"{r['prefix']:<12} {r['created_at']:<32} {r['revoked_at'] or '-'}" for r in out]
    emit(out, as_json=as_json, human="\n".join(lines) if out else "(no tokens)")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token: str = typer.Argument(..., help="The token, or its first 10 characters."),
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Revoke a token: the console refuses it at once, each API process within LABELWISE_TOKEN_CACHE_S (5 s)."""
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


@labels_app.command("apply")
def labels_apply(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Label-set YAML document."),
    tenant: str = TenantOpt,
    if_missing: bool = typer.Option(
        False, "--if-missing", help="Store it only if the tenant has no label set of that name (keeps admin edits)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Store a label-set YAML as a new version (unchanged documents keep their version)."""
    try:
        out = apply_file(get_ctx(ctx), file, tenant=tenant, if_missing=if_missing)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    what = {"created": "created version", "unchanged": "unchanged, still version", "kept": "exists, kept version"}
    human = f"label set {out['label_set']}: {what[out['outcome']]} {out['version']}"
    emit(out, as_json=as_json, human=human)


def read_file(file: Path) -> str:
    """A document's text; raises InvalidInputError naming the file when it cannot be read."""
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read {file}: {getattr(e, 'strerror', None) or e}", field="file") from e


def apply_file(c: Ctx, file: Path, *, tenant: str, if_missing: bool = False) -> dict[str, Any]:
    """Apply a label-set YAML file; with ``if_missing`` an existing set is left as it is."""
    doc = load_yaml(read_file(file))
    with c.sessions.begin() as s:
        if if_missing:
            tenant_id = tenants_q.get_tenant(s, tenant).id
            current = {r["name"]: r["current_version"] for r in pipeline.label_set_summaries(s, tenant_id=tenant_id)}
            if current.get(doc.name) is not None:
                out = {"tenant": tenant, "label_set": doc.name, "version": current[doc.name], "created": False}
                return {**out, "outcome": "kept"}
        version, created = pipeline.apply_label_set(s, tenant=tenant, doc=doc, created_by="cli")
    out = {"tenant": tenant, "label_set": doc.name, "version": version.version, "created": created}
    return {**out, "outcome": "created" if created else "unchanged"}


@labels_app.command("list")
def labels_list(ctx: typer.Context, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """List a tenant's label sets and their current versions."""
    try:
        with get_ctx(ctx).sessions() as s:
            out = pipeline.label_set_summaries(s, tenant_id=tenants_q.get_tenant(s, tenant).id)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    lines = [f"{'NAME':<32} CURRENT"] + [f"{r['name']:<32} v{r['current_version']}" for r in out]
    emit(out, as_json=as_json, human="\n".join(lines) if out else "(no label sets)")


@labels_app.command("delete")
def labels_delete(
    ctx: typer.Context, name: str = typer.Argument(...), tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Delete a label set: new messages can no longer use it; jobs keep their history."""
    try:
        with get_ctx(ctx).sessions.begin() as s:
            pipeline.delete_label_set(s, tenant_id=tenants_q.get_tenant(s, tenant).id, name=name)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    emit({"tenant": tenant, "label_set": name, "deleted": True}, as_json=as_json, human=f"label set {name} deleted")


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
            tenant_id = tenants_q.get_tenant(s, tenant).id
            out = pipeline.label_set_version(s, tenant_id=tenant_id, name=name, version=version)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    import yaml

    human = f"# {name} version {out['version']}\n" + yaml.safe_dump(
        out["document"], sort_keys=False, allow_unicode=True
    )
    emit(out, as_json=as_json, human=human.rstrip())


@labels_app.command("versions")
def labels_versions(
    ctx: typer.Context, name: str = typer.Argument(...), tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """List a label set's versions, oldest first."""
    try:
        with get_ctx(ctx).sessions() as s:
            out = pipeline.label_set_versions(s, tenant_id=tenants_q.get_tenant(s, tenant).id, name=name)
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
