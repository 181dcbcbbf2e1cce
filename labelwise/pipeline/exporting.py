"""A tenant's export (JSONL records) and its import into another installation.

The format (``FORMAT``, version 1) is a sequence of JSON objects, one a line, each naming its kind in
``record``: one ``manifest`` first, then ``label_set``, ``label_set_version`` (every version),
``integration`` (configuration without secrets), ``token`` (prefix and dates only: the secret part is
never stored) and ``job`` (those created in the export's window) records. ``labelwise tenant export``
writes each kind to its own file in a directory (``manifest.json``, ``label_sets.jsonl``, ...); the API
streams them all as one NDJSON document. Times are ISO 8601 in UTC. README "Data" lists every field.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise.crypto import SecretBox
from labelwise.errors import ConflictError, InvalidInputError
from labelwise.labelset import LabelSetDocument
from labelwise.models import exports, tenants
from labelwise.models.tables import Job, utcnow
from labelwise.pipeline.common import database_errors

FORMAT = "labelwise-tenant-export"
FORMAT_VERSION = 1
FILES = {  # record kind -> file in an export directory
    "manifest": "manifest.json",
    "label_set": "label_sets.jsonl",
    "label_set_version": "label_set_versions.jsonl",
    "integration": "integrations.jsonl",
    "token": "tokens.jsonl",
    "job": "jobs.jsonl",
}
UNFINISHED = "imported while unfinished: send the message again"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as e:
        raise InvalidInputError(f"{field}: not an ISO 8601 time: {value!r}", field=field) from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def export_records(
    session: Session, name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """The tenant's records, manifest first; jobs created in [since, until). Raises NotFoundError."""
    tenant = tenants.get_tenant(session, name)
    yield {
        "record": "manifest",
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tenant": tenant.name,
        "exported_at": utcnow().isoformat(),
        "jobs_since": _iso(since),
        "jobs_until": _iso(until),
        "retention_days": tenant.retention_days,
        "privacy": tenant.privacy,
    }
    for s in exports.label_sets(session, tenant_id=tenant.id):
        yield {
            "record": "label_set",
            "name": s.name,
            "current_version": s.current_version,
            "created_at": _iso(s.created_at),
            "deleted_at": _iso(s.deleted_at),
        }
    numbers: dict[int, tuple[str, int]] = {}
    for set_name, v in exports.versions(session, tenant_id=tenant.id):
        numbers[v.id] = (set_name, v.version)
        yield {
            "record": "label_set_version",
            "label_set": set_name,
            "version": v.version,
            "document": v.document,
            "content_hash": v.content_hash,
            "created_at": _iso(v.created_at),
            "created_by": v.created_by,
        }
    for i in exports.integrations(session, tenant_id=tenant.id):
        yield {
            "record": "integration",
            "name": i.name,
            "kind": i.kind,
            "label_set": i.label_set,
            "config": i.config,
            "created_at": _iso(i.created_at),
            "updated_at": _iso(i.updated_at),
        }
    for t in exports.tokens(session, tenant_id=tenant.id):
        yield {"record": "token", "prefix": t.prefix, "created_at": _iso(t.created_at)} | {
            "revoked_at": _iso(t.revoked_at)
        }
    for job in exports.jobs_between(session, tenant_id=tenant.id, since=since, until=until):
        yield _job_record(job, numbers)


def _job_record(job: Job, numbers: dict[int, tuple[str, int]]) -> dict[str, Any]:
    version = numbers.get(job.label_set_version_id) if job.label_set_version_id else None
    return {
        "record": "job",
        "id": job.id,
        "label_set": job.label_set_name,
        "label_set_version": version[1] if version else None,
        "idempotency_key": job.idempotency_key,
        "duplicate_of": job.duplicate_of,
        "text": job.text,  # null: purged (retention) or never stored (privacy mode)
        "metadata": job.metadata_,
        "reply_to": job.reply_to,
        "status": job.status,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "feedback_label": job.feedback_label,
        "feedback_at": _iso(job.feedback_at),
    }


def write_directory(records: Iterable[dict[str, Any]], out: Path) -> dict[str, int]:
    """Write records to ``out`` (created; must be empty), one file per kind; how many of each."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise InvalidInputError(f"{out} is not empty", field="out")
    counts = dict.fromkeys(FILES, 0)
    handles = {kind: (out / name).open("w", encoding="utf-8") for kind, name in FILES.items()}
    try:
        for record in records:
            kind = record["record"]
            handles[kind].write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[kind] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return counts


def read_records(source: Path) -> Iterator[dict[str, Any]]:
    """Records from an export directory (files in ``FILES`` order) or one NDJSON file (the API's export)."""
    paths = [source / name for name in FILES.values()] if source.is_dir() else [source]
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as e:
                    raise InvalidInputError(f"{path.name} line {number}: not JSON ({e})", field="file") from e
                if not isinstance(record, dict) or record.get("record") not in FILES:
                    raise InvalidInputError(f"{path.name} line {number}: not an export record", field="file")
                yield record


def import_records(
    sessions: sessionmaker[Session], box: SecretBox, records: Iterable[dict[str, Any]], *, name: str | None = None
) -> dict[str, Any]:
    """Create the exported tenant (as ``name`` when given) with everything the records hold, in one
    transaction; returns counts and the tenant's new API token (its old tokens cannot come along: only
    their prefixes were exported). Integrations come without secrets (set them again) and with new inbound
    hook URLs; jobs that were unfinished come back failed. Raises ConflictError when the tenant exists,
    InvalidInputError for a record that does not fit the format."""
    iterator = iter(records)
    manifest = next(iterator, None)
    if not manifest or manifest.get("record") != "manifest" or manifest.get("format") != FORMAT:
        raise InvalidInputError("not a labelwise tenant export (no manifest first)", field="file")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(f"export format version {manifest.get('format_version')!r} is not 1", field="file")
    counts = dict.fromkeys(FILES, 0)
    counts["manifest"] = 1
    with database_errors(), sessions.begin() as session:
        tenant_name = name or str(manifest["tenant"])
        if tenants.find_tenant(session, tenant_name) is not None:
            raise ConflictError(f"tenant {tenant_name!r} already exists here")
        tenant = tenants.create_tenant(session, tenant_name)
        exports.set_tenant_data(
            session, tenant, retention_days=manifest.get("retention_days"), privacy=bool(manifest.get("privacy"))
        )
        state = _Import(session, box, tenant.id, tenant_name)
        for record in iterator:
            try:
                state.add(record)
            except (KeyError, TypeError, ValueError) as e:
                raise InvalidInputError(f"bad {record.get('record')} record: {type(e).__name__}: {e}") from e
            counts[record["record"]] += 1
        state.flush_jobs()
        _, token = tenants.create_token(session, tenant_id=tenant.id)
    return {"tenant": tenant_name, "imported": counts, "token": token}


class _Import:
    """Rows of one import, added in record order (sets before their versions, versions before jobs)."""

    def __init__(self, session: Session, box: SecretBox, tenant_id: int, tenant_name: str) -> None:
        self.session, self.box, self.tenant_id, self.tenant_name = session, box, tenant_id, tenant_name
        self.sets: dict[str, Any] = {}
        self.versions: dict[tuple[str, int], int] = {}
        self.jobs: list[dict[str, Any]] = []

    def add(self, r: dict[str, Any]) -> None:
        getattr(self, "_" + r["record"])(r)

    def _manifest(self, r: dict[str, Any]) -> None:
        raise ValueError("a second manifest")

    def _label_set(self, r: dict[str, Any]) -> None:
        self.sets[r["name"]] = exports.add_label_set(
            self.session,
            tenant_id=self.tenant_id,
            name=str(r["name"]),
            current_version=r.get("current_version"),
            created_at=_time(r.get("created_at"), "created_at") or utcnow(),
            deleted_at=_time(r.get("deleted_at"), "deleted_at"),
        )

    def _label_set_version(self, r: dict[str, Any]) -> None:
        LabelSetDocument.model_validate(r["document"])  # a valid document only (raises ValueError)
        row = exports.add_version(
            self.session,
            tenant_id=self.tenant_id,
            label_set_id=self.sets[r["label_set"]].id,
            version=int(r["version"]),
            document=dict(r["document"]),
            content_hash=str(r["content_hash"]),
            created_at=_time(r.get("created_at"), "created_at") or utcnow(),
            created_by=r.get("created_by"),
        )
        self.versions[(r["label_set"], row.version)] = row.id

    def _integration(self, r: dict[str, Any]) -> None:
        exports.add_integration(
            self.session,
            tenant_id=self.tenant_id,
            secrets=self.box.seal({}),
            name=str(r["name"]),
            kind=str(r["kind"]),
            label_set=r.get("label_set"),
            config=dict(r["config"]),
            created_at=_time(r.get("created_at"), "created_at") or utcnow(),
            updated_at=_time(r.get("updated_at"), "updated_at") or utcnow(),
        )

    def _token(self, r: dict[str, Any]) -> None:
        pass  # only a prefix: nothing that could authenticate; the import makes a new token

    def _job(self, r: dict[str, Any]) -> None:
        version = r.get("label_set_version")
        unfinished = r["status"] not in ("done", "failed")
        self.jobs.append(
            {
                "id": str(r["id"]),
                "tenant_name": self.tenant_name,
                "label_set_name": str(r["label_set"]),
                "label_set_version_id": self.versions.get((r["label_set"], version)) if version else None,
                "idempotency_key": r.get("idempotency_key"),
                "duplicate_of": r.get("duplicate_of"),
                "text": r.get("text"),
                "metadata_": r.get("metadata"),
                "reply_to": r.get("reply_to"),
                "status": "failed" if unfinished else r["status"],
                "result": r.get("result"),
                "error": UNFINISHED if unfinished else r.get("error"),
                "attempts": int(r.get("attempts") or 0),
                "created_at": _time(r["created_at"], "created_at"),
                "started_at": _time(r.get("started_at"), "started_at"),
                "finished_at": _time(r.get("finished_at"), "finished_at") or (utcnow() if unfinished else None),
                "feedback_label": r.get("feedback_label"),
                "feedback_at": _time(r.get("feedback_at"), "feedback_at"),
                "enqueued_at": _time(r["created_at"], "created_at"),
            }
        )
        if len(self.jobs) >= 1_000:
            self.flush_jobs()

    def flush_jobs(self) -> None:
        exports.add_jobs(self.session, tenant_id=self.tenant_id, rows=self.jobs)
        self.jobs = []
