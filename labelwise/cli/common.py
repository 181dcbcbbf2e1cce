"""What every command module shares: settings and sessions per invocation, JSON or human output."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import DatabaseUnavailableError, LabelwiseError
from labelwise.models.db import make_engine, make_session_factory
from labelwise.settings import Settings

JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")
TenantOpt = typer.Option(..., "--tenant", "-t", help="Tenant name.")


class Ctx:
    """Settings plus a lazily made session factory, shared by the commands of one invocation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self.settings.ensure_home()
            self._engine = make_engine(self.settings.resolved_database_url())
            self._sessions = make_session_factory(self._engine)
        return self._sessions

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def get_ctx(ctx: typer.Context) -> Ctx:
    assert isinstance(ctx.obj, Ctx)
    return ctx.obj


def emit(data: Any, *, as_json: bool, human: str) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else human)


def fail(e: LabelwiseError, *, as_json: bool, code: int = 1) -> NoReturn:
    """Print the error (one line on stderr; with ``as_json`` also a JSON error on stdout) and exit."""
    error_code, message = e.code, e.message
    if isinstance(e, DatabaseUnavailableError):
        error_code, message = database_problem(e.__cause__ or e, Settings())
    if as_json:
        typer.echo(json.dumps({"error": {"code": error_code, "message": message}}))
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def database_problem(e: Exception, settings: Settings) -> tuple[str, str]:
    """An error code and one line for a database error: what is wrong, where, and what to run."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url()).render_as_string(hide_password=True)
    where = f"the database {url} (LABELWISE_HOME={settings.home.resolve()})"
    detail = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        return "database_not_migrated", f"{where} has no labelwise tables yet; run: labelwise db upgrade"
    if url.startswith("sqlite") and "unable to open database file" in detail:
        return "database_unavailable", f"cannot open {where}; is LABELWISE_HOME right? then: labelwise db upgrade"
    hint = "check LABELWISE_DATABASE_URL and that the server is running"
    return "database_unavailable", f"cannot use {where}: {detail}; {hint}"
