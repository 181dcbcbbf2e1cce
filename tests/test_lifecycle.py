"""The data lifecycle on SQLite and PostgreSQL: a tenant's deletion leaves no row of it in any table."""

from __future__ import annotations

import pytest

from labelwise.errors import NotFoundError
from labelwise.models.tables import Base
from labelwise.pipeline import lifecycle
from tests.lifecycle_data import GLOBAL, owned_rows, populate


def test_the_fixture_tenant_touches_every_table(sessions) -> None:  # type: ignore[no-untyped-def]
    """A table added to the schema must get a row in populate() (and so be covered by the deletion test)."""
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
    with sessions() as s:
        owned = owned_rows(s, doomed)
    missing = {t.name for t in Base.metadata.sorted_tables} - GLOBAL - set(owned)
    assert not missing, f"populate() puts no row of the tenant in {sorted(missing)}"


def test_tenant_delete_leaves_no_row_of_it_in_any_table_and_spares_the_others(sessions) -> None:  # type: ignore[no-untyped-def]
    """Every table of the metadata is scanned after the deletion; the other tenant's rows are all still there."""
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
        kept = populate(s, "kept")
    with sessions() as s:
        kept_before = owned_rows(s, kept)
        assert owned_rows(s, doomed)

    out = lifecycle.delete_tenant(sessions, "doomed", batch=2)  # several job batches

    with sessions() as s:
        assert owned_rows(s, doomed) == {}
        assert owned_rows(s, kept) == kept_before
    assert out["deleted"]["jobs"] == 4 and out["deleted"]["tenants"] == 1
    with pytest.raises(NotFoundError):
        lifecycle.delete_tenant(sessions, "doomed")


@pytest.fixture
def cli(sqlite_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """The command line in-process on a migrated SQLite database."""
    import json

    from typer.testing import CliRunner

    from labelwise.cli import app

    env = {"LABELWISE_HOME": str(tmp_path / "home"), "LABELWISE_DATABASE_URL": sqlite_url, "LABELWISE_BROKER_URL": ""}
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> dict:  # type: ignore[type-arg]
        result = runner.invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == code, (result.exit_code, result.output)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    return invoke


def _sessions(url: str):  # type: ignore[no-untyped-def]
    from labelwise.models.db import make_engine, make_session_factory

    return make_session_factory(make_engine(url))


def test_cli_tenant_delete_needs_yes_then_removes_everything(cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    sessions = _sessions(sqlite_url)
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
    assert cli("tenant", "delete", "doomed", code=1)["error"]["code"] == "invalid_input"
    with sessions() as s:
        assert owned_rows(s, doomed)  # nothing deleted without --yes
    out = cli("tenant", "delete", "doomed", "--yes")
    assert out["tenant"] == "doomed" and out["deleted"]["tenants"] == 1
    with sessions() as s:
        assert owned_rows(s, doomed) == {}
    assert cli("tenant", "delete", "doomed", "--yes", code=1)["error"]["code"] == "not_found"


def test_api_tenant_delete_takes_the_operator_token_only(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No operator token configured: 404; a tenant's own token or a wrong one: 401; the operator's: deleted."""
    from fastapi.testclient import TestClient

    from labelwise.api.app import create_app
    from labelwise.models import tenants
    from labelwise.settings import Settings

    sessions = _sessions(sqlite_url)
    with sessions.begin() as s:
        doomed = populate(s, "doomed")
        _, tenant_token = tenants.create_token(s, tenant_id=doomed["id"])
    base = {"home": tmp_path / "home", "database_url": sqlite_url}
    with TestClient(create_app(Settings(**base))) as client:
        r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with TestClient(create_app(Settings(**base, admin_token="op-secret-123"))) as client:
        for token in (tenant_token, "op-secret-12"):
            r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, r.text
        with sessions() as s:
            assert owned_rows(s, doomed)
        r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": "Bearer op-secret-123"})
        assert r.status_code == 200 and r.json()["deleted"]["tenants"] == 1
        with sessions() as s:
            assert owned_rows(s, doomed) == {}
        r = client.delete("/v1/admin/tenants/doomed", headers={"Authorization": "Bearer op-secret-123"})
        assert r.status_code == 404
        r = client.delete("/v1/admin/tenants/bad%20name", headers={"Authorization": "Bearer op-secret-123"})
        assert r.status_code == 422
