"""The worker's use case in-process on a real database and the real model (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise import pipeline
from labelwise.classify.classifier import Classifier
from labelwise.errors import ConflictError, NotFoundError
from labelwise.labelset import load_yaml
from labelwise.messages import parse_message
from labelwise.models import jobs as models_jobs
from labelwise.models import tenants

TINY = Path(__file__).parent / "data" / "tiny.yaml"


@pytest.fixture
def seeded(sessions):  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        tenants.create_tenant(s, "acme")
        pipeline.apply_label_set(s, tenant="acme", doc=load_yaml(TINY.read_text()))
    return sessions


def msg(**over: object) -> dict[str, object]:
    return {"tenant": "acme", "label_set": "tiny", "text": "I was charged twice", **over}


def test_classify_message_stores_a_done_job(seeded, encoder) -> None:  # type: ignore[no-untyped-def]
    view = pipeline.classify_message(seeded, Classifier(encoder), task_id="j1", kwargs=msg(), max_text_chars=100).view
    assert view["status"] == "done" and view["chosen"] == ["billing"] and view["label_set_version"] == 1


def test_a_redelivered_message_is_not_classified_twice(seeded, encoder) -> None:  # type: ignore[no-untyped-def]
    classifier = Classifier(encoder)
    first = pipeline.classify_message(seeded, classifier, task_id="j1", kwargs=msg(), max_text_chars=100).view
    again = pipeline.classify_message(seeded, classifier, task_id="j1", kwargs=msg(), max_text_chars=100).view
    assert again == first
    with seeded() as s:
        assert models_jobs.get_job(s, "j1").attempts == 1


def test_submit_job_checks_up_front_and_guards_the_key(seeded) -> None:  # type: ignore[no-untyped-def]
    with seeded.begin() as s:
        with pytest.raises(NotFoundError, match="unknown label set"):
            pipeline.submit_job(s, parse_message(msg(label_set="nope"), max_text_chars=100), job_id="x")
        job, created = pipeline.submit_job(s, parse_message(msg(idempotency_key="k"), max_text_chars=100), job_id="a")
        same, created_again = pipeline.submit_job(
            s, parse_message(msg(idempotency_key="k"), max_text_chars=100), job_id="b"
        )
        assert (created, created_again, same.id) == (True, False, "a")
        with pytest.raises(ConflictError):
            pipeline.submit_job(
                s, parse_message(msg(idempotency_key="k", text="other"), max_text_chars=100), job_id="c"
            )


def test_failed_publish_removes_the_job_so_the_key_can_be_retried(seeded) -> None:  # type: ignore[no-untyped-def]
    def broken(_job: object) -> None:
        raise ConnectionRefusedError("broker down")

    from labelwise.errors import BrokerUnavailableError

    with pytest.raises(BrokerUnavailableError, match="broker down"):
        pipeline.submit_and_enqueue(seeded, parse_message(msg(idempotency_key="k"), max_text_chars=100), publish=broken)
    view, created = pipeline.submit_and_enqueue(
        seeded, parse_message(msg(idempotency_key="k"), max_text_chars=100), publish=lambda job: None
    )
    assert created and view["status"] == "queued"
