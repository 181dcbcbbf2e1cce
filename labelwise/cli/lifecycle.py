"""A tenant's data: delete, export, import, retention and privacy."""

from __future__ import annotations

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
