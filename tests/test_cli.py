"""The command line in-process (typer's runner) on SQLite: --json documents, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelwise.cli import app

DATA = Path(__file__).parent / "data"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"LABELWISE_HOME": str(tmp_path / "home"), "LABELWISE_DATABASE_URL": "", "LABELWISE_BROKER_URL": ""}
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> dict | list:  # type: ignore[type-arg]
        result = runner.invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == code, (result.exit_code, result.output)
        return json.loads(result.stdout)

    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    return invoke


def test_tenant_create_prints_one_json_document_with_the_token(run) -> None:  # type: ignore[no-untyped-def]
    out = run("tenant", "create", "acme")
    assert out["tenant"] == "acme" and out["token"].startswith("lw_")
    assert run("tenant", "create", "acme", code=1)["error"]["code"] == "conflict"
    assert run("tenant", "create", "acme", "--exist-ok") == {"tenant": "acme", "token": None}
    assert run("tenant", "create", "bad name", code=1)["error"]["code"] == "invalid_input"


def test_labels_apply_show_versions_rollback(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("tenant", "create", "acme")
    assert run("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")["created"] is True
    edited = tmp_path / "e.yaml"
    edited.write_text((DATA / "tiny.yaml").read_text().replace("threshold: 0.2", "threshold: 0.25"))
    assert run("labels", "apply", str(edited), "--tenant", "acme")["version"] == 2
    assert run("labels", "show", "tiny", "--tenant", "acme")["document"]["threshold"] == 0.25
    assert [v["current"] for v in run("labels", "versions", "tiny", "--tenant", "acme")] == [False, True]
    run("labels", "rollback", "tiny", "--to", "1", "--tenant", "acme")
    assert run("labels", "show", "tiny", "--tenant", "acme")["version"] == 1


def test_invalid_label_set_is_rejected_with_the_field(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("tenant", "create", "acme")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlabels:\n  - name: a\n  - name: a\n")
    out = run("labels", "apply", str(bad), "--tenant", "acme", code=1)
    assert out["error"]["code"] == "invalid_label_set" and "duplicate label name 'a'" in out["error"]["message"]


def test_local_classify_prints_the_result_shape(run, encoder) -> None:  # type: ignore[no-untyped-def]
    run("tenant", "create", "acme")
    run("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")
    out = run("classify", "The app crashes when I export", "--tenant", "acme", "--label-set", "tiny", "--local")
    assert out["chosen"] == ["bug-report"] and out["model"] == "all-MiniLM-L6-v2" and out["job_id"] is None


def test_unknown_things_are_clear_errors(run) -> None:  # type: ignore[no-untyped-def]
    assert run("jobs", "show", "nope", code=1)["error"]["message"] == "unknown job 'nope'"
    assert run("labels", "show", "x", "--tenant", "ghost", code=1)["error"]["code"] == "not_found"
    assert (
        run("classify", " ", "--tenant", "t", "--label-set", "s", code=1)["error"]["message"]
        == "text: must not be empty"
    )


def test_the_human_result_says_how_a_long_text_was_read() -> None:
    from labelwise.cli.jobs import format_result

    view = {
        "job_id": "j", "status": "done", "label_set": "tiny", "label_set_version": 1, "model": "m",
        "labels": [{"name": "billing", "score": 0.4}], "chosen": ["billing"], "abstained": False, "error": None,
        "windows": 112, "truncated": True,
        "evidence": [{"label": "billing", "start": 9880, "end": 9957, "score": 0.66}],
    }  # fmt: skip
    text = format_result(view)
    assert "read in 112 windows (truncated" in text and "evidence for billing: characters 9880-9957" in text
    assert "windows" not in format_result({**view, "windows": 1, "evidence": []})
