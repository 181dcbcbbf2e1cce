"""``labelwise demo``: what ``make run`` prepares before ``labelwise up``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from labelwise.cli.admin import apply_file
from labelwise.cli.apps import app
from labelwise.cli.common import Ctx, JsonOpt, emit, fail, get_ctx
from labelwise.errors import LabelwiseError
from labelwise.models import tenants as tenants_q
from labelwise.models.db import upgrade


@app.command()
def demo(
    ctx: typer.Context,
    labels: Path = typer.Option(..., "--labels", help="Label-set YAML to seed when the tenant has no such set."),
    tenant: str = typer.Option("demo", "--tenant", "-t", help="Tenant to create when missing."),
    host: str = typer.Option("127.0.0.1", "--host", help="Where `labelwise up` will serve (for the hints)."),
    port: int = typer.Option(8000, "--port", help="Port `labelwise up` will serve on (for the hints)."),
    as_json: bool = JsonOpt,
) -> None:
    """Migrate, create the tenant and its label set only when missing (admin edits are kept), then print
    what to try next, with a new tenant's API token last."""
    c = get_ctx(ctx)
    try:
        c.settings.ensure_home()
        upgrade(c.settings.resolved_database_url())
        token = _tenant_token(c, tenant)
        applied = apply_file(c, labels, tenant=tenant, if_missing=True)
    except LabelwiseError as e:
        fail(e, as_json=as_json)
    out = {**applied, "token": token, "api": f"http://{host}:{port}"}
    emit(out, as_json=as_json, human=_next_steps(out, tenant=tenant))


def _tenant_token(c: Ctx, tenant: str) -> str | None:
    """A new tenant's first token, or None when the tenant exists (its tokens were shown when made)."""
    with c.sessions.begin() as s:
        if tenants_q.find_tenant(s, tenant) is not None:
            return None
        row = tenants_q.create_tenant(s, tenant)
        return tenants_q.create_token(s, tenant_id=row.id)[1]


def command_name() -> str:
    """How to call labelwise from here: ``.venv/bin/labelwise`` when that is what runs, else ``labelwise``."""
    exe, here = Path(os.path.abspath(sys.argv[0])), Path(os.getcwd())
    if exe.name == "labelwise" and exe.exists() and exe.is_relative_to(here):
        return str(exe.relative_to(here))
    return "labelwise"


def _next_steps(out: dict[str, Any], *, tenant: str) -> str:
    lw, api, name = command_name(), out["api"], out["label_set"]
    kept = " (kept: your edits stay; `labels apply` replaces it)" if out["outcome"] == "kept" else ""
    token = out["token"] or "$TOKEN"
    lines = [
        f"label set {name} of tenant {tenant}: version {out['version']}{kept}",
        "",
        f"Starting labelwise: worker + HTTP API on {api} (docs at {api}/docs); Ctrl-C stops it.",
        f"Admin console: {api}/console (sign in with the tenant's API token).",
        "In a second terminal:",
        f'  {lw} classify "I was charged twice for my subscription" --tenant {tenant} --label-set {name}',
        f"  curl -s -X POST {api}/v1/classify -H 'Authorization: Bearer {token}' \\",
        f'    -H \'Content-Type: application/json\' -d \'{{"label_set": "{name}", "text": "My invoice is wrong"}}\'',
        f"  {lw} jobs list",
        "",
    ]
    if out["token"]:
        lines.append(f"{tenant}'s API token (shown only this once, keep it): {out['token']}")
    else:
        lines.append(
            f"{tenant}'s API token was shown when the tenant was created; its tokens: "
            f"{lw} token list --tenant {tenant}; a new one: TOKEN=$({lw} token create --tenant {tenant} --json "
            "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')"
        )
    return "\n".join(lines)
