"""The ``labelwise`` command line (typer). Every command that prints data takes ``--json`` and then prints
exactly one JSON document on stdout."""

from __future__ import annotations

from labelwise.cli import admin, bench, evaluation, integrations, jobs, running  # noqa: F401 - they register commands
from labelwise.cli.apps import app, labels_app

evaluation.register(app, labels_app)

__all__ = ["app", "main"]


def main() -> None:
    app()
