"""The ``labelwise`` command line (typer). Every command that prints data takes ``--json`` and then prints
exactly one JSON document on stdout."""

from __future__ import annotations

from labelwise.cli import admin, bench, integrations, jobs, running  # noqa: F401 - they register their commands
from labelwise.cli.apps import app

__all__ = ["app", "main"]


def main() -> None:
    app()
