"""The worker's use case in-process on a real database and the real model (no broker)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from labelwise import pipeline
from labelwise.classify.classifier import Classifier
from labelwise.errors import ConflictError, NotFoundError
from labelwise.labelset import load_yaml
from labelwise.messages import parse_message
from labelwise.models import jobs as models_jobs
from labelwise.models import labelsets, tenants
from labelwise.pipeline import claiming
from labelwise.pipeline.claiming import Limits

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


def test_submit_job_never_reads_a_label_sets_document(seeded) -> None:  # type: ignore[no-untyped-def]
    """Every POST /v1/jobs and /v1/classify checks its label set: a set near the caps holds a document of
    megabytes, which the check loaded and decoded for each message (one query more, too)."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = seeded.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        with seeded.begin() as s:
            pipeline.submit_job(s, parse_message(msg(), max_text_chars=100), job_id="checked")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    reads = [st for st in statements if "label_set_versions" in st]
    assert len(reads) == 1 and "document" not in reads[0], reads


def test_a_failed_publish_keeps_the_job_for_the_reconciler(seeded) -> None:  # type: ignore[no-untyped-def]
    """The broker is down after the commit: the job stays queued and unpublished (not deleted, not a 503),
    a repeat of its key gets it back, and the reconciler's next pass publishes it once."""
    from labelwise.pipeline import reconciling

    def broken(_job: object) -> None:
        raise ConnectionRefusedError("broker down")

    message = parse_message(msg(idempotency_key="k"), max_text_chars=100)
    view, created = pipeline.submit_and_enqueue(seeded, message, publish=broken)
    again, created_again = pipeline.submit_and_enqueue(seeded, message, publish=broken)
    assert created and not created_again and again["job_id"] == view["job_id"] and view["status"] == "queued"
    published: list[str] = []
    policy = reconciling.Policy(grace_s=0.0)
    run = reconciling.reconcile(
        seeded, holder="me", policy=policy, publish_job=lambda job: published.append(job.id), publish_delivery=print
    )
    assert run == reconciling.Pass(jobs=1, deliveries=0) and published == [view["job_id"]]
    assert reconciling.reconcile(
        seeded, holder="me", policy=policy, publish_job=lambda job: published.append(job.id), publish_delivery=print
    ) == reconciling.Pass(0, 0)
    assert (
        reconciling.reconcile(seeded, holder="other", policy=policy, publish_job=print, publish_delivery=print) is None
    )


def test_a_batch_mixing_new_repeated_keyed_and_bad_messages(seeded, encoder) -> None:  # type: ignore[no-untyped-def]
    """One batch: new jobs inserted together, a key repeated inside the batch is one job, a bad
    message fails alone, and a message whose job is already done comes back as it was."""
    classifier = Classifier(encoder)
    done = pipeline.classify_message(seeded, classifier, task_id="old", kwargs=msg(), max_text_chars=100).view
    batch = [
        pipeline.Message("a", msg(text="The app crashes on start", idempotency_key="k1")),
        pipeline.Message("b", msg(text="The app crashes on start", idempotency_key="k1")),
        pipeline.Message("c", msg(text="")),
        pipeline.Message("old", msg()),
        pipeline.Message("d", msg(text="Reset my password please")),
    ]
    out = pipeline.classify_batch(seeded, classifier, batch, max_text_chars=100)
    views = [o.view for o in out]
    assert views[0]["job_id"] == views[1]["job_id"] == "a" and views[0]["status"] == "done"
    assert views[2]["status"] == "failed" and "text" in views[2]["error"]
    assert views[3] == done
    assert views[4]["status"] == "done" and views[4]["chosen"] == ["account-access"]
    with seeded() as s:
        assert models_jobs.find_job(s, "b") is None  # the repeated key made no second job
        assert [models_jobs.get_job(s, j).attempts for j in ("a", "d", "old")] == [1, 1, 1]


def test_a_message_the_lane_leaves_elsewhere_stays_queued_beside_its_batch(seeded, encoder) -> None:  # type: ignore[no-untyped-def]
    """The express lane leaves a message whose set's first version it must not build (``route`` raises
    Elsewhere): its job is stored queued, neither running nor tried, and its batch-mates are classified."""
    with seeded.begin() as s:
        pipeline.apply_label_set(s, tenant="acme", doc=load_yaml(TINY.read_text().replace("name: tiny", "name: big")))
    with seeded() as s:
        big = labelsets.current_version_ref(s, tenant_id=tenants.get_tenant(s, "acme").id, name="big")

    def route(ref: claiming.Ref) -> claiming.Ref:
        if ref[2] == big[2]:
            raise claiming.Elsewhere("for the main lane")
        return ref

    batch = [
        pipeline.Message("left", msg(label_set="big")),
        pipeline.Message("left", msg(label_set="big")),  # the same message twice: both left
        pipeline.Message("here", msg()),
    ]
    out = pipeline.classify_batch(seeded, Classifier(encoder), batch, max_text_chars=100, route=route)
    assert [type(o).__name__ for o in out] == ["Elsewhere", "Elsewhere", "Classified"]
    assert out[2].view["status"] == "done"
    with seeded() as s:
        left = models_jobs.get_job(s, "left")
        assert (left.status, left.attempts, left.started_at) == ("queued", 0, None)
    again = pipeline.classify_batch(seeded, Classifier(encoder), batch[:1], max_text_chars=100)  # the main lane
    assert again[0].view["status"] == "done" and again[0].view["label_set"] == "big"


def test_a_job_inserted_by_another_worker_mid_claim_is_not_lost(seeded, encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The bulk insert conflicts (the other worker's row appeared after our read): the batch is
    claimed again row by row and the existing job is used, not duplicated or failed."""
    with seeded.begin() as s:
        job, _ = pipeline.submit_job(s, parse_message(msg(), max_text_chars=100), job_id="raced")
    real_by_ids = models_jobs.by_ids
    reads: list[list[str]] = []

    def stale_first_read(session, ids, **kw):  # type: ignore[no-untyped-def]
        reads.append(ids)
        return {} if len(reads) == 1 else real_by_ids(session, ids, **kw)  # the first read missed the row

    monkeypatch.setattr(models_jobs, "by_ids", stale_first_read)
    batch = [pipeline.Message("raced", msg()), pipeline.Message("fresh", msg(text="The app crashes"))]
    out = pipeline.classify_batch(seeded, Classifier(encoder), batch, max_text_chars=100)
    assert len(reads) == 2  # bulk claim, then the row-by-row one
    assert [o.view["status"] for o in out] == ["done", "done"]
    assert [o.view["chosen"] for o in out] == [["billing"], ["bug-report"]]


def test_a_job_finished_by_another_worker_mid_claim_stays_classified_once(seeded, encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two messages for one job (a republished one beside the original): another worker claims and
    finishes the job after this worker's claim read it queued. The claim must wait for that worker, not
    set the job running over its result: the job is classified once (the chaos benchmark on pg-rabbitmq
    once counted 5 jobs classified twice)."""
    with seeded.begin() as s:
        pipeline.submit_job(s, parse_message(msg(), max_text_chars=100), job_id="raced")

    stored: list[set[str]] = []

    def they_claim_and_store() -> None:
        (theirs,), _ = claiming.claim_batch(seeded, [pipeline.Message("raced", msg())], limits=Limits(100), bulk=True)
        models_jobs.mark_done(theirs.job, result={"chosen": ["billing"], "labels": []}, version_id=theirs.version_id)
        with seeded.begin() as s:
            stored.append(models_jobs.store_done(s, [theirs.job]))

    real_by_ids = models_jobs.by_ids
    other = threading.Thread(target=they_claim_and_store)

    def they_finish_after_our_read(session, ids, **kw):  # type: ignore[no-untyped-def]
        found = real_by_ids(session, ids, **kw)
        if other.ident is None:  # our read: the other worker goes now
            other.start()
            other.join(timeout=1.0)  # done at once, unless our claim holds the row (then: after our commit)
        return found

    monkeypatch.setattr(models_jobs, "by_ids", they_finish_after_our_read)
    batch = [pipeline.Message("raced", msg())]
    (ours,) = pipeline.classify_batch(seeded, Classifier(encoder), batch, max_text_chars=100)
    other.join(timeout=30)
    assert len(stored) == 1  # the other worker got through (an error in its thread leaves this empty)
    with seeded() as s:
        job = models_jobs.get_job(s, "raced")
        assert (job.status, job.classifications) == ("done", 1)
    assert ours.view["status"] == "done"
