"""`labelwise bench ...`: the benchmark scripts of a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from labelwise.cli.apps import bench_app

BENCH = Path(__file__).resolve().parents[2] / "bench"


@bench_app.command("throughput", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_throughput(ctx: typer.Context) -> None:
    """Ceiling vs labelwise vs a one-message-per-call peer (bench/throughput.py; options after the name)."""
    _run_bench("throughput", ctx.args)


@bench_app.command("latency", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_latency(ctx: typer.Context) -> None:
    """p50/p95/p99 from enqueue to committed result at a steady load (bench/latency.py)."""
    _run_bench("latency", ctx.args)


def _run_bench(name: str, args: list[str]) -> None:
    import runpy

    script = BENCH / f"{name}.py"
    if not script.exists():
        typer.echo(f"error: {script} not found; benchmarks run from a source checkout", err=True)
        raise typer.Exit(2)
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")
