"""LABELWISE_LOG_FORMAT=json: the formatter, and the API process's lines (uvicorn's access log included)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from labelwise.logs import JsonFormatter
from tests.stacks import ApiProcess


def test_json_lines_carry_the_known_fields_and_nothing_else_of_the_record() -> None:
    record = logging.LogRecord("labelwise.x", logging.INFO, __file__, 1, "job %s: done", ("j1",), None)
    record.__dict__.update(job_id="j1", tenant="acme", duration_s=0.123456, kwargs={"text": "secret text"})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job j1: done" and line["level"] == "INFO" and line["logger"] == "labelwise.x"
    assert line["job_id"] == "j1" and line["tenant"] == "acme" and line["duration_s"] == 0.1235
    assert "secret text" not in json.dumps(line) and "kwargs" not in line


def test_the_api_logs_json_lines(tmp_path: Path) -> None:
    env = {**os.environ, "LABELWISE_HOME": str(tmp_path), "LABELWISE_LOG_FORMAT": "json"}
    for key in ("LABELWISE_DATABASE_URL", "LABELWISE_BROKER_URL"):
        env.pop(key, None)
    log = tmp_path / "api.log"
    with ApiProcess(env, cwd=tmp_path, log=log):
        pass
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(r["logger"] == "uvicorn.access" and "/healthz" in r["message"] for r in lines)
    assert any(r["logger"] == "uvicorn.error" and "Uvicorn running" in r["message"] for r in lines)
