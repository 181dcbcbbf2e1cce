"""Integration secrets at rest: a shared stack refuses to start without LABELWISE_SECRET_KEY, and keys
rotate (MultiFernet: 'new,old' opens both, `labelwise secret-key --rekey` moves every secret to 'new')."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from labelwise import pipeline
from labelwise.crypto import SecretBox, require_secret_key, secret_box
from labelwise.errors import ConfigurationError, LabelwiseError
from labelwise.models import tenants
from labelwise.models.db import make_engine, make_session_factory, upgrade
from labelwise.settings import Settings

ROOT = Path(__file__).parent.parent
PG = "postgresql+psycopg://lw@127.0.0.1:1/lw"


def labelwise(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    return subprocess.run(
        [sys.executable, "-m", "labelwise", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "env",
    [{"LABELWISE_DATABASE_URL": PG}, {"LABELWISE_BROKER_URL": "redis://127.0.0.1:1/0"}],
    ids=["postgresql", "redis"],
)
@pytest.mark.parametrize("command", [["api"], ["worker"], ["up"]])
def test_a_shared_stack_without_a_secret_key_refuses_to_start_in_one_line(
    tmp_path: Path, env: dict[str, str], command: list[str]
) -> None:
    proc = labelwise({"LABELWISE_HOME": str(tmp_path), **env}, *command)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "LABELWISE_SECRET_KEY is required" in proc.stderr
    assert "labelwise secret-key" in proc.stderr and not (tmp_path / "secret.key").exists()


def test_the_embedded_defaults_need_no_key(tmp_path: Path) -> None:
    require_secret_key(Settings(home=tmp_path))
    require_secret_key(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.sqlite'}"))
    with pytest.raises(ConfigurationError, match="labelwise secret-key"):
        require_secret_key(Settings(home=tmp_path, database_url=PG))


def test_secret_key_prints_a_fernet_key(tmp_path: Path) -> None:
    proc = labelwise({"LABELWISE_HOME": str(tmp_path)}, "secret-key", "--json")
    Fernet(json.loads(proc.stdout)["secret_key"])  # a usable key
    assert labelwise({"LABELWISE_HOME": str(tmp_path)}, "secret-key").stdout.strip() != ""


def test_a_key_that_is_not_a_fernet_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        secret_box(Settings(home=tmp_path, secret_key="not-a-key"))


def test_rotation_new_key_first_opens_old_secrets_and_rekey_drops_the_old_key(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    doc = {"name": "hook", "kind": "webhook", "settings": {"url": "https://example.com/h"}}
    with sessions.begin() as s:
        tenant = tenants.create_tenant(s, "acme")
        pipeline.apply_integration(
            s,
            SecretBox([old.encode()]),
            tenant_id=tenant.id,
            data={**doc, "secrets": {"signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}},
        )
    both = secret_box(Settings(home=tmp_path, secret_key=f"{new},{old}"))
    only_new = secret_box(Settings(home=tmp_path, secret_key=new))
    with sessions() as s:
        assert pipeline.get_integration(s, both, tenant_id=tenant.id, name="hook")["secrets_set"] == ["signing_secrets"]
        with pytest.raises(LabelwiseError, match="cannot be decrypted"):
            pipeline.get_integration(s, only_new, tenant_id=tenant.id, name="hook")
    env = {"LABELWISE_HOME": str(tmp_path), "LABELWISE_DATABASE_URL": url, "LABELWISE_SECRET_KEY": f"{new},{old}"}
    proc = labelwise(env, "secret-key", "--rekey", "--json")
    assert json.loads(proc.stdout) == {"rekeyed": 1}, proc.stderr
    with sessions() as s:
        assert pipeline.get_integration(s, only_new, tenant_id=tenant.id, name="hook")["secrets_set"] == [
            "signing_secrets"
        ]
    engine.dispose()
