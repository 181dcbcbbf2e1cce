"""A label-set version with many new texts is built in the background; meanwhile the set's previous
version serves (or, with none at hand, its messages wait), on a real database and the real model."""

from __future__ import annotations

import time

from labelwise import pipeline
from labelwise.classify.classifier import Classifier
from labelwise.labelset import parse_document
from labelwise.models import labelsets, tenants
from labelwise.pipeline.readiness import LabelReadiness


def doc(examples: int, *, salt: str) -> object:
    return parse_document(
        {
            "name": "big",
            "labels": [
                {"name": "billing", "examples": [f"invoice question {salt} {i}" for i in range(examples)]},
                {"name": "bugs", "description": "Something is broken."},
            ],
        }
    )


def ref_of(sessions, tenant_id: int) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return labelsets.current_version_ref(s, tenant_id=tenant_id, name="big")


def test_a_big_new_version_is_built_aside_while_the_previous_one_serves(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        tenant_id = tenants.create_tenant(s, "acme").id
        pipeline.apply_label_set(s, tenant="acme", doc=doc(2, salt="v1"))
    readiness = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)
    v1 = ref_of(sessions, tenant_id)
    assert readiness.route(v1) == v1  # few new texts: built inside the batch, as before
    with sessions.begin() as s:
        pipeline.apply_label_set(s, tenant="acme", doc=doc(40, salt="v2"))
    v2 = ref_of(sessions, tenant_id)
    assert v2[1] == 2
    assert readiness.route(v2) == (v1[0], v1[1], v1[2], v2[3])  # the previous version serves meanwhile
    deadline = time.monotonic() + 120
    while readiness.route(v2) != v2:
        assert time.monotonic() < deadline, "version 2 was never built"
        time.sleep(0.2)


def test_a_first_version_with_many_texts_makes_its_messages_wait(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        tenant_id = tenants.create_tenant(s, "acme").id
        pipeline.apply_label_set(s, tenant="acme", doc=doc(40, salt="first"))
    readiness = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)
    v1 = ref_of(sessions, tenant_id)
    assert readiness.route(v1) is None  # nothing at hand to serve with: wait
    deadline = time.monotonic() + 120
    while readiness.route(v1) is None:
        assert time.monotonic() < deadline, "version 1 was never built"
        time.sleep(0.2)
    assert readiness.route(v1) == v1
