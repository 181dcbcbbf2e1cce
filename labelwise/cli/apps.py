"""The typer apps every command module registers on."""

from __future__ import annotations

import typer

from labelwise.cli.common import Ctx
from labelwise.settings import Settings

app = typer.Typer(help="labelwise: zero-shot text classification on a message queue.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants and their first token.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of a tenant.", no_args_is_help=True)
labels_app = typer.Typer(
    help="Label sets: apply a YAML document, show, list versions, roll back.", no_args_is_help=True
)
jobs_app = typer.Typer(help="Jobs: what was classified, with status and result.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (from a source checkout: they live in bench/).", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (tenant_app, "tenant"),
    (token_app, "token"),
    (labels_app, "labels"),
    (jobs_app, "jobs"),
    (bench_app, "bench"),
):
    app.add_typer(sub, name=name)


@app.callback()
def _main(ctx: typer.Context) -> None:
    """Settings come from LABELWISE_* environment variables (see README)."""
    ctx.obj = Ctx(Settings())
    ctx.call_on_close(ctx.obj.close)
