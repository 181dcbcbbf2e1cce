"""The API in-process (FastAPI's TestClient) on a real stack: database, broker and worker process.

The ``api`` fixture itself lives in tests/conftest.py."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from labelwise.models import tenants
from labelwise.settings import Settings
from tests.stacks import Stack

TINY: dict[str, Any] = {
    "threshold": 0.2,
    "fallback": "needs-triage",
    "labels": [
        {
            "name": "billing",
            "description": "Invoices, charges, refunds and payment methods.",
            "examples": ["I was charged twice this month"],
        },
        {"name": "account-access", "description": "Logging in, passwords and two-factor authentication."},
        {"name": "bug-report", "description": "Something in the product is broken, crashes or shows an error."},
    ],
}


def settings_for(stack: Stack, **over: Any) -> Settings:
    """The settings the stack's CLI and worker use (same database, broker, queue and secret key)."""
    settings = stack.settings(**over)
    assert isinstance(settings, Settings)
    return settings


@dataclass
class Api:
    client: TestClient
    stack: Stack

    def tenant(self) -> tuple[str, dict[str, str]]:
        """A fresh tenant and the headers that authenticate as it."""
        name = f"t{uuid.uuid4().hex[:8]}"
        sessions = self.client.app.state.labelwise.sessions  # type: ignore[attr-defined]
        with sessions.begin() as s:
            tenant = tenants.create_tenant(s, name)
            _, token = tenants.create_token(s, tenant_id=tenant.id)
        return name, {"Authorization": f"Bearer {token}"}

    def tenant_with_set(self, name: str = "tiny") -> tuple[str, dict[str, str]]:
        tenant, headers = self.tenant()
        assert self.client.put(f"/v1/label-sets/{name}", json=TINY, headers=headers).status_code == 201
        return tenant, headers

    def wait(self, job_id: str, headers: dict[str, str], timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            body = self.client.get(f"/v1/jobs/{job_id}", headers=headers).json()
            if body["status"] in ("done", "failed") or time.monotonic() > deadline:
                return body
            time.sleep(0.05)
