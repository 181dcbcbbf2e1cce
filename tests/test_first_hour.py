"""The first hour of a new user, as a trial found it: each rough edge it hit, now a test.

Commands run as the user runs them: the real ``labelwise`` entry point in a subprocess where the way it
fails matters (tracebacks, stdout), typer's runner otherwise; README lines are run as written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.cli.jobs import result_summary

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
SUPPORT = ROOT / "examples" / "support.yaml"


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """Environment of a fresh, embedded labelwise in tmp_path (nothing migrated yet)."""
    return {
        **os.environ,
        "LABELWISE_HOME": str(tmp_path / "home"),
        "LABELWISE_DATABASE_URL": "",
        "LABELWISE_BROKER_URL": "",
        "HF_HUB_OFFLINE": "1",
    }


def labelwise(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labelwise", *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd
    )


def invoke(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result.stdout


def test_make_run_seeds_the_demo_set_only_when_missing_and_prints_the_token_last(home: dict[str, str]) -> None:
    """A second `make run` keeps an admin's edit; a new tenant's token is the last line, an old one's
    replaced by where to find or make one."""
    first = invoke(home, "demo", "--labels", str(SUPPORT), "--port", "8001").rstrip().splitlines()
    token = re.fullmatch(r"demo's API token \(shown only this once, keep it\): (lw_\S+)", first[-1])
    assert token, first[-1]
    assert any("http://127.0.0.1:8001/v1/classify" in line and token.group(1) in line for line in first)
    edited = SUPPORT.read_text().replace("threshold: 0.25", "threshold: 0.3", 1)
    assert edited != SUPPORT.read_text()
    (Path(home["LABELWISE_HOME"]) / "edited.yaml").write_text(edited)
    invoke(home, "labels", "apply", str(Path(home["LABELWISE_HOME"]) / "edited.yaml"), "--tenant", "demo")
    again = json.loads(invoke(home, "demo", "--labels", str(SUPPORT), "--json"))
    assert again["version"] == 2 and again["outcome"] == "kept" and again["token"] is None
    shown = json.loads(invoke(home, "labels", "show", "support", "--tenant", "demo", "--json"))
    assert shown["version"] == 2 and shown["document"]["threshold"] == 0.3
    last = invoke(home, "demo", "--labels", str(SUPPORT)).rstrip().splitlines()[-1]
    assert "token list --tenant demo" in last and "lw_" not in last


def test_make_run_takes_a_port() -> None:
    out = subprocess.run(["make", "-n", "run", "PORT=8001"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "demo --labels examples/support.yaml --port 8001" in out.stdout and "up --port 8001" in out.stdout


def test_readme_curl_lines_follow_port() -> None:
    curls = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("curl ")]
    assert curls and all("http://127.0.0.1:${PORT:-8000}/" in line for line in curls)


def test_readme_token_line_can_be_run_again(home: dict[str, str], tmp_path: Path) -> None:
    """The README's `tenant create` + `TOKEN=$(...)` lines, run twice as written, give a token each time."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TOKEN=$("))
    script = "\n".join([*lines[start - 1 : start + 1], 'echo "$TOKEN"'])
    assert "tenant create acme" in script
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    invoke(home, "db", "upgrade")
    tokens = []
    for _ in range(2):
        run = subprocess.run(["bash", "-ec", script], cwd=tmp_path, env=home, capture_output=True, text=True)
        assert run.returncode == 0 and "KeyError" not in run.stderr, run.stderr
        tokens.append(run.stdout.strip().splitlines()[-1])
    assert all(t.startswith("lw_") for t in tokens) and tokens[0] != tokens[1]
    listed = json.loads(invoke(home, "token", "list", "--tenant", "acme", "--json"))
    assert len(listed) == 3 and [t["prefix"] for t in listed[1:]] == [t[:10] for t in tokens]  # + the first one
    assert all(set(t) == {"prefix", "created_at", "revoked_at"} for t in listed)  # never the secret part


def test_an_unmigrated_database_is_one_line_saying_what_to_run(home: dict[str, str], tmp_path: Path) -> None:
    proc = labelwise(home, "jobs", "list", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "run: labelwise db upgrade" in proc.stderr and f"LABELWISE_HOME={tmp_path / 'home'}" in proc.stderr
    as_json = labelwise(home, "labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "t", "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["error"]["code"] == "database_not_migrated"


def test_an_unreachable_postgresql_is_one_line_without_the_password(home: dict[str, str]) -> None:
    env = {**home, "LABELWISE_DATABASE_URL": "postgresql+psycopg://lw:hunter2@127.0.0.1:1/lw"}
    proc = labelwise(env, "tenant", "list", "--json")
    error = json.loads(proc.stdout)["error"]
    assert proc.returncode == 1 and error["code"] == "database_unavailable"
    assert "127.0.0.1:1" in error["message"] and "hunter2" not in proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_missing_file_is_a_json_error(home: dict[str, str]) -> None:
    invoke(home, "db", "upgrade")
    for args in (["labels", "apply"], ["integrations", "apply"]):
        out = json.loads(invoke(home, *args, "missing.yaml", "--tenant", "t", "--json", code=1))
        assert out["error"] == {
            "code": "invalid_input",
            "message": "cannot read missing.yaml: No such file or directory",
        }


def test_classify_wait_0_returns_at_once(home: dict[str, str]) -> None:
    invoke(home, "db", "upgrade")
    invoke(home, "tenant", "create", "acme")
    invoke(home, "labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")
    started = time.monotonic()
    out = json.loads(invoke(home, "classify", "hello", "-t", "acme", "-s", "tiny", "--wait", "0", "--json", code=3))
    assert out["status"] == "queued" and time.monotonic() - started < 10  # no worker runs: it did not wait 60 s
    listed = invoke(home, "jobs", "list").splitlines()
    assert listed[0].split() == ["JOB", "STATUS", "CREATED", "TENANT/LABEL", "SET", "RESULT"]
    assert listed[1].startswith(out["job_id"]) and " queued " in listed[1]


def test_jobs_list_shows_an_abstention_as_such() -> None:
    abstained = {"status": "done", "abstained": True, "chosen": ["needs-triage"], "error": None}
    assert result_summary(abstained) == "(abstained; fallback needs-triage)"
    assert result_summary({**abstained, "chosen": []}) == "(abstained)"
    assert result_summary({"status": "done", "abstained": False, "chosen": ["billing"], "error": None}) == "billing"
    assert result_summary({"status": "failed", "abstained": False, "chosen": [], "error": "boom"}) == "error: boom"


def test_labels_list_and_delete_and_integrations_delete(home: dict[str, str], tmp_path: Path) -> None:
    invoke(home, "db", "upgrade")
    invoke(home, "tenant", "create", "acme")
    invoke(home, "labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")
    assert json.loads(invoke(home, "labels", "list", "-t", "acme", "--json")) == [
        {"name": "tiny", "current_version": 1}
    ]
    invoke(home, "labels", "delete", "tiny", "-t", "acme")
    assert json.loads(invoke(home, "labels", "list", "-t", "acme", "--json")) == []
    hook = tmp_path / "hook.yaml"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    hook.write_text(
        f"name: hook\nkind: webhook\nsettings: {{url: 'https://example.com/x'}}\n"
        f"secrets: {{signing_secrets: [{secret}]}}\n"
    )
    invoke(home, "integrations", "apply", str(hook), "-t", "acme")
    invoke(home, "integrations", "delete", "hook", "-t", "acme")
    assert json.loads(invoke(home, "integrations", "list", "-t", "acme", "--json")) == []
    gone = json.loads(invoke(home, "integrations", "delete", "hook", "-t", "acme", "--json", code=1))
    assert gone["error"]["code"] == "not_found"


def test_readme_result_shape_is_what_jobs_show_prints() -> None:
    """The README's result shape lists every field of a job view (feedback and warnings included)."""
    import datetime as dt

    from labelwise.models.tables import Job
    from labelwise.pipeline import job_view

    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Result shape", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    shown = json.loads(block.replace("…", ""))
    job = Job(id="j", status="done", tenant_name="t", label_set_name="s", created_at=dt.datetime.now(dt.UTC))
    assert set(shown) == set(job_view(job))
