"""What every command module shares: settings and sessions per invocation, JSON or human output."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import LabelwiseError
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
    if as_json:
        typer.echo(json.dumps({"error": {"code": e.code, "message": e.message}}))
    typer.echo(f"error: {e.message}", err=True)
    raise typer.Exit(code)
