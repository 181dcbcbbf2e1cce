"""A label-set version with many new texts is built in the background; meanwhile the set's previous
version serves (a first version is built inline: no message is ever held back; but never in the express
lane's batch: there its message is left to the main lane), on a real database and the real model."""

from __future__ import annotations

import time

import pytest

from labelwise import pipeline
from labelwise.classify.classifier import Classifier
from labelwise.labelset import parse_document
from labelwise.models import labelsets, tenants
from labelwise.pipeline.claiming import Elsewhere
from labelwise.pipeline.label_vectors import LabelReadiness
from labelwise.priority import TURNS


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


def test_a_restarted_worker_finds_the_previous_version_in_sql(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        tenant_id = tenants.create_tenant(s, "acme").id
        pipeline.apply_label_set(s, tenant="acme", doc=doc(2, salt="v1"))
        pipeline.apply_label_set(s, tenant="acme", doc=doc(40, salt="v2"))
    v2 = ref_of(sessions, tenant_id)
    readiness = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)  # has never seen version 1
    routed = readiness.route(v2)
    assert routed[1] == 1 and routed != v2  # version 1's few texts are cheap: it serves
    deadline = time.monotonic() + 120
    while readiness.route(v2) != v2:
        assert time.monotonic() < deadline, "version 2 was never built"
        time.sleep(0.2)


def test_a_first_version_with_many_texts_is_built_inline_never_held_back(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    """Messages held back while a first version was built filled the worker's prefetch: every other tenant
    waited behind them. With no earlier version to serve, the version is built in the batch, as a small one."""
    with sessions.begin() as s:
        tenant_id = tenants.create_tenant(s, "acme").id
        pipeline.apply_label_set(s, tenant="acme", doc=doc(40, salt="first"))
    readiness = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)
    v1 = ref_of(sessions, tenant_id)
    assert readiness.route(v1) == v1
    assert readiness._building == set()  # nothing built aside: the batch builds it


def test_the_express_lane_leaves_a_big_first_version_to_the_main_lane(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    """A light tenant's first version of thousands of new texts was built inside the express lane's batch:
    every other light tenant's messages waited behind it (5,000 texts: a minute of a core)."""
    with sessions.begin() as s:
        tenant_id = tenants.create_tenant(s, "acme").id
        pipeline.apply_label_set(s, tenant="acme", doc=doc(40, salt="first"))
    v1 = ref_of(sessions, tenant_id)
    here = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)  # the main lane runs in this process
    with TURNS.urgent(), pytest.raises(Elsewhere):
        here.route(v1)
    assert here._building == set()  # the main lane builds it, into the cache both lanes use
    assert here.route(v1) == v1  # in the main lane: inside its batch
    # the main lane in another process (the bulk process): this one builds its own copy in the background
    aside = LabelReadiness(sessions, Classifier(encoder), inline_texts=5, main_lane_here=False)
    with TURNS.urgent(), pytest.raises(Elsewhere):
        aside.route(v1)
    deadline = time.monotonic() + 120
    while aside._building:
        assert time.monotonic() < deadline, "version 1 was never built aside"
        time.sleep(0.1)
    with TURNS.urgent():
        assert aside.route(v1) == v1  # built: the express lane serves it itself


def test_a_big_version_another_process_stored_is_still_built_aside(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    """Its vectors were all in SQL (the bulk process, or another worker, had built it), so it counted as
    cheap and its index was assembled inside the batch that met it first: a second of the express lane
    for a set of 5,000 examples, every light tenant's message waiting (bench/noisy_neighbour.py)."""
    with sessions.begin() as s:
        tenant_id = tenants.create_tenant(s, "acme").id
        pipeline.apply_label_set(s, tenant="acme", doc=doc(2, salt="v1"))
    v1 = ref_of(sessions, tenant_id)
    here = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)
    assert here.route(v1) == v1
    with sessions.begin() as s:
        pipeline.apply_label_set(s, tenant="acme", doc=doc(40, salt="v2"))
    v2 = ref_of(sessions, tenant_id)
    elsewhere = LabelReadiness(sessions, Classifier(encoder), inline_texts=5)
    elsewhere.build(v2[0], lambda: doc(40, salt="v2"))  # every vector of version 2 is stored now

    assert here.route(v2) == (v1[0], v1[1], v1[2], v2[3])  # not inline: the previous version serves
    deadline = time.monotonic() + 120
    while here.route(v2) != v2:
        assert time.monotonic() < deadline, "version 2 was never built"
        time.sleep(0.2)
    assert here.classifier.cache.latest(v2[0], encoder.model_id) is not None  # built here, aside
