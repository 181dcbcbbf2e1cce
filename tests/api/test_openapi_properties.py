"""Property-based run of the OpenAPI schema (schemathesis): no 5xx, no response that breaks the schema.

Fixed seed (derandomized) and a bounded number of cases per operation, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import collections

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from labelwise.api.app import create_app
from tests.apiclient import Api, settings_for

CASES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
RUN: collections.Counter[str] = collections.Counter()

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


def test_no_server_errors_and_responses_match_the_schema(api: Api) -> None:
    """Every operation, CASES_PER_OPERATION generated requests each, authenticated as a tenant with a set."""
    failures: list[str] = []
    RUN.clear()
    with TestClient(create_app(settings_for(api.stack, sync_timeout_s=2.0))) as client:
        _, headers = api.tenant_with_set("support")
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        for result in schema.get_all_operations():
            operation = result.ok()
            run_operation(operation, headers, failures)
    total = sum(RUN.values())
    print(f"\nschemathesis [{api.stack.name}]: {total} cases over {len(RUN)} operations, {len(failures)} failures")
    assert not failures, "\n\n".join(failures[:5])


def run_operation(operation, headers: dict[str, str], failures: list[str]) -> None:  # type: ignore[no-untyped-def]
    @given(case=operation.as_strategy())
    @settings(
        max_examples=CASES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:  # type: ignore[no-untyped-def]
        RUN[f"{case.method} {case.path}"] += 1
        try:
            case.call_and_validate(headers={**headers, **(case.headers or {})}, checks=CHECKS)
        except Exception as e:  # collect, so one run reports every operation that fails
            failures.append(f"{case.method} {case.path}: {e}")
            raise

    try:
        run()
    except Exception:  # recorded in failures above; hypothesis re-raises the shrunk example
        if not failures:
            raise
