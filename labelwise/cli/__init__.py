"""The ``labelwise`` command line (typer). Every command that prints data takes ``--json`` and then prints
exactly one JSON document on stdout."""

from __future__ import annotations

import json
import sys

from labelwise.cli import admin, bench, demo, evaluation, integrations, jobs, lifecycle, running  # noqa: F401 - they register commands
from labelwise.cli.apps import app, labels_app
from labelwise.cli.common import database_problem
from labelwise.settings import Settings

evaluation.register(app, labels_app)

__all__ = ["app", "main"]


def main() -> None:
    """The ``labelwise`` command. A database that is missing, unmigrated or unreachable ends the command
    with one line saying what is wrong and what to run (with ``--json``, a JSON error on stdout)."""
    from sqlalchemy.exc import DBAPIError

    from labelwise.errors import ConfigurationError, DatabaseUnavailableError

    try:
        app()
    except ConfigurationError as e:
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": {"code": e.code, "message": e.message}}))
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(2)
    except (DBAPIError, DatabaseUnavailableError) as e:
        code, message = database_problem(e, Settings())
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": {"code": code, "message": message}}))
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
