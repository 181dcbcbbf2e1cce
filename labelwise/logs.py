"""Logging set-up: lines for people, or one JSON object per line (``LABELWISE_LOG_FORMAT=json``).

A JSON line has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, and whichever of
``FIELDS`` the call passed with ``extra=`` (``log.info("...", extra={"job_id": ...})``); inside a Celery
task ``task_id`` and ``task_name`` are added. Nothing else of a record is written: log calls never pass
message texts or secrets, and Celery's own records (whose extra data carries task arguments) are
reduced to their formatted message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

FIELDS = ("job_id", "task_id", "task_name", "tenant", "label_set", "delivery_id", "integration", "status", "duration_s")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_current_task())
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = round(value, 4) if isinstance(value, float) else value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _current_task() -> dict[str, str]:
    """The running Celery task's id and name, when this thread runs one."""
    if "celery" not in sys.modules:
        return {}
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    task_id = getattr(request, "id", None)
    return {"task_id": task_id, "task_name": current_task.name} if task_id else {}


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``log_format`` (text or json)."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s")


def configure(log_format: str, level: str) -> None:
    """Log to stderr in ``log_format`` at ``level`` (a process that Celery or uvicorn does not set up);
    in JSON, Python's warnings become JSON lines too."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(log_format == "json")


def use_format(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of ``logger`` the formatter of ``log_format`` (Celery's loggers, once set up)."""
    if log_format != "json":
        return
    logging.captureWarnings(True)
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


def uvicorn_log_config(log_format: str, level: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for JSON lines (access log included); None keeps uvicorn's own."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "labelwise.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }
