"""A tenant that touches every table, and a scan of every table of the schema for a tenant's rows.

The scan reads the table list from the SQLAlchemy metadata, so a table added later is scanned too; and
``populate`` must put a row of the tenant in every table but the few named in ``GLOBAL`` (the test fails
otherwise), so a new table cannot be left out of the deletion unnoticed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelwise import pipeline
from labelwise.classify.labels import label_texts
from labelwise.labelset import LabelSetDocument
from labelwise.models import tenants
from labelwise.models.tables import (
    Base,
    ConsoleDraft,
    ConsoleSession,
    Delivery,
    Evaluation,
    InboundEvent,
    Integration,
    Job,
    JobAlias,
    Preview,
    TextEmbedding,
    TrafficVector,
    utcnow,
)

# tables that hold no tenant's data: which process holds a periodic duty, which worker processes run
GLOBAL = {"leases", "worker_heartbeats"}


def populate(session: Session, name: str) -> dict[str, Any]:
    """Create tenant ``name`` with a row in every tenant-owned table; its markers (strings found only in
    its rows) and ids."""
    marker = f"mark-{name}"
    tenant = tenants.create_tenant(session, name)
    token_row, _ = tenants.create_token(session, tenant_id=tenant.id)
    doc = LabelSetDocument.model_validate(
        {
            "name": "support",
            "labels": [
                {"name": "billing", "description": f"Invoices and charges {marker}", "examples": [f"charged {marker}"]},
                {"name": "bugs", "description": f"Crashes {marker}"},
            ],
        }
    )
    version, _ = pipeline.apply_label_set(session, tenant=name, doc=doc, created_by="test")
    doc2 = doc.model_copy(update={"threshold": 0.4})
    version2, _ = pipeline.apply_label_set(session, tenant=name, doc=doc2, created_by="test")
    hashes = sorted({hashlib.sha256(t.encode()).hexdigest() for label in doc.labels for t in label_texts(label)})
    for h in hashes:
        session.add(TextEmbedding(model_id="test-model", text_hash=h, vector=b"\x00" * 8))
    session.add(TrafficVector(label_set_id=version.label_set_id, model_id="test-model", vector=b"\x01" * 8))
    integration = Integration(
        public_id=uuid.uuid4().hex,
        tenant_id=tenant.id,
        name="hook",
        kind="webhook",
        label_set="support",
        config={"url": f"http://127.0.0.1:9/{marker}"},
        secrets="opaque",
    )
    session.add(integration)
    old = utcnow() - dt.timedelta(days=400)
    jobs = []
    for i in range(3):
        job = Job(
            id=f"{name}-job-{i}",
            tenant_id=tenant.id,
            tenant_name=name,
            label_set_name="support",
            label_set_version_id=version2.id,
            idempotency_key=f"{marker}-{i}",
            text=f"text {i} {marker}",
            metadata_={"ticket": marker},
            status="done",
            result={"chosen": ["billing"]},
            created_at=old if i == 0 else utcnow(),
        )
        session.add(job)
        jobs.append(job)
    # a message that named the tenant before it existed
    session.add(Job(id=f"{name}-orphan", tenant_id=None, tenant_name=name, label_set_name="x", text=marker))
    session.flush()
    session.add(JobAlias(task_id=f"{name}-alias", job_id=jobs[0].id, tenant_id=tenant.id))
    session.add(
        Delivery(
            id=f"{name}-dlv",
            tenant_id=tenant.id,
            job_id=jobs[0].id,
            integration_id=integration.id,
            status="delivered",
            created_at=old,
        )
    )
    session.add(InboundEvent(integration_id=integration.id, event_id=f"{marker}-ev", job_id=jobs[1].id, created_at=old))
    session.add(
        ConsoleSession(
            id=hashlib.sha256(marker.encode()).hexdigest(),
            tenant_id=tenant.id,
            token_id=token_row.id,
            csrf="x",
            expires_at=utcnow() + dt.timedelta(hours=1),
        )
    )
    session.add(ConsoleDraft(tenant_id=tenant.id, name="support", document={"name": marker}, base_version=1))
    session.add(Preview(id=f"{name}-pv", tenant_id=tenant.id, label_set="support", texts=[marker], created_at=old))
    session.add(
        Evaluation(id=f"{name}-ev", tenant_id=tenant.id, label_set="support", rows=[{"text": marker, "label": "x"}])
    )
    session.flush()
    return {"id": tenant.id, "name": name, "markers": [name, marker, *hashes]}


def _rows(session: Session) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for table in Base.metadata.sorted_tables:
        out[table.name] = [dict(r._mapping) for r in session.execute(select(table))]
    return out


def owned_rows(session: Session, tenant: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table that belongs to ``tenant``: its tenants row, rows whose ``tenant_id`` is
    its id, rows whose foreign key points at such a row (transitively), and rows whose any value contains
    one of its markers (its name, texts, label texts' hashes)."""
    rows = _rows(session)
    owned: dict[str, list[dict[str, Any]]] = {name: [] for name in rows}
    keys: dict[tuple[str, str], set[Any]] = {}  # (table, column) -> values of owned rows
    changed = True
    while changed:
        changed = False
        for table in Base.metadata.sorted_tables:
            for row in rows[table.name]:
                if row in owned[table.name] or not _belongs(table, row, tenant, keys):
                    continue
                owned[table.name].append(row)
                for column in table.columns:
                    if isinstance(row[column.name], (int, str)):  # what a foreign key can point at
                        keys.setdefault((table.name, column.name), set()).add(row[column.name])
                changed = True
    return {name: found for name, found in owned.items() if found}


def _belongs(table: Any, row: dict[str, Any], tenant: dict[str, Any], keys: dict[tuple[str, str], set[Any]]) -> bool:
    if table.name == "tenants" and row["id"] == tenant["id"]:
        return True
    if "tenant_id" in row and row["tenant_id"] == tenant["id"]:
        return True
    for column in table.columns:
        for fk in column.foreign_keys:
            target = keys.get((fk.column.table.name, fk.column.name), set())
            if row[column.name] is not None and row[column.name] in target:
                return True
    text = json.dumps(row, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    return any(m in text for m in tenant["markers"])
