"""Traffic: the worker keeps recent message vectors per label set and refines label vectors from them
in the background, while scoring goes on with the index in hand."""

from __future__ import annotations

import time
from pathlib import Path

from labelwise import pipeline
from labelwise.classify import refining
from labelwise.classify.classifier import Classifier
from labelwise.labelset import load_yaml
from labelwise.models import tenants, traffic
from labelwise.pipeline.traffic import Refiner, TrafficPolicy
from labelwise.pipeline.working import Message, classify_batch

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def seed(sessions):  # type: ignore[no-untyped-def]
    """Tenant ``acme`` with the tiny label set; its version row."""
    with sessions.begin() as s:
        tenants.create_tenant(s, "acme")
        version, _ = pipeline.apply_label_set(s, tenant="acme", doc=load_yaml(TINY.read_text()))
    return version


def let_refinement_through(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """These tests are about the worker's plumbing, with a handful of messages: the acceptance test
    (2,000+ messages; tests/classify/test_refining.py) would keep the tiny set's head unrefined."""
    monkeypatch.setattr(refining, "passes_acceptance", lambda *_: True)


def test_traffic_is_kept_pruned_and_refines_in_the_background(sessions, encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    let_refinement_through(monkeypatch)
    version = seed(sessions)
    label_set_id = version.label_set_id
    classifier = Classifier(encoder)
    refiner = Refiner(sessions, classifier.cache, TrafficPolicy(keep=6, refresh_every=4))
    texts = ["I was charged twice", "The app crashes", "Reset my password", "Invoice is wrong", "Error 500 again"]
    for n, text in enumerate(texts):
        message = Message(f"job-{n}", {"tenant": "acme", "label_set": "tiny", "text": text})
        [done] = classify_batch(sessions, classifier, [message], max_text_chars=1000, refiner=refiner)
        assert done.view["status"] == "done"
    with sessions() as s:
        kept = traffic.latest(s, label_set_id=label_set_id, model_id=encoder.model_id, limit=100)
    assert len(kept) == 5  # pruned at the refresh (4 seen), keep=6: nothing to drop yet
    deadline = time.monotonic() + 30
    while refiner.rebuilt < 1:  # the 5th message saw 4 seen -> epoch 1 -> a background rebuild
        assert time.monotonic() < deadline
        time.sleep(0.05)
    refined = classifier.cache.peek(version.id, encoder.model_id, f"{label_set_id}:1")
    assert refined is not None
    plain = classifier.cache.peek(version.id, encoder.model_id, None)
    assert plain is not None and not (refined.vectors == plain.vectors).all()


def test_a_due_refresh_waits_until_the_last_rebuild_fits_the_cpu_share(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    """A rebuild that took 1 s with a 10% share holds the next one back for 9 s; then it runs."""
    version = seed(sessions)
    label_set_id = version.label_set_id
    classifier = Classifier(encoder)
    now = [100.0]
    refiner = Refiner(
        sessions, classifier.cache, TrafficPolicy(keep=50, refresh_every=2), max_share=0.1, clock=lambda: now[0]
    )
    refiner._rebuild = lambda **_: now.__setitem__(0, now[0] + 1.0)  # type: ignore[method-assign]  # takes 1 s

    def ask(seen: int) -> None:
        refiner.index_for(
            version_id=version.id,
            label_set_id=label_set_id,
            seen=seen,
            load_doc=lambda: load_yaml(TINY.read_text()),
            encoder=encoder,
        )

    def wait_idle() -> None:
        deadline = time.monotonic() + 10
        while refiner._pending:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    ask(2)  # epoch 1 is due: scheduled at once
    wait_idle()
    assert now[0] == 101.0  # the rebuild ran and took 1 s
    ask(4)  # epoch 2 is due, but 1 s of rebuilding buys 9 s of waiting
    now[0] = 109.9
    ask(4)
    wait_idle()
    assert now[0] == 109.9  # nothing ran
    now[0] = 110.0
    ask(6)
    wait_idle()
    assert now[0] == 111.0  # the next one ran


def test_labels_stats_shows_per_label_traffic_drawn_and_vector_moved(
    db_url, sessions, encoder, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """`labels stats NAME`: the kept messages each label draws, and how far refining moved its vector;
    an unknown set is a clear not-found error."""
    import json

    import typer
    from typer.testing import CliRunner

    from labelwise.cli.common import Ctx
    from labelwise.cli.evaluation import register
    from labelwise.settings import Settings

    let_refinement_through(monkeypatch)
    seed(sessions)
    classifier = Classifier(encoder)
    refiner = Refiner(sessions, classifier.cache, TrafficPolicy(keep=50, refresh_every=1_000))
    texts = ["I was charged twice", "Refund my last invoice", "My card payment failed", "Billing is wrong"] * 3
    messages = [Message(f"job-{n}", {"tenant": "acme", "label_set": "tiny", "text": t}) for n, t in enumerate(texts)]
    classify_batch(sessions, classifier, messages, max_text_chars=1000, refiner=refiner)
    app, labels_app = typer.Typer(), typer.Typer()
    app.add_typer(labels_app, name="labels")
    register(app, labels_app, classifier_factory=lambda settings: classifier)
    ctx = Ctx(Settings(database_url=db_url, home=tmp_path))  # type: ignore[call-arg]
    try:
        result = CliRunner().invoke(app, ["labels", "stats", "tiny", "--tenant", "acme", "--json"], obj=ctx)
        assert result.exit_code == 0, result.output
        stats = json.loads(result.stdout)
        assert stats["messages_seen"] == stats["messages_kept"] == len(texts) and stats["refined"]
        doc = load_yaml(TINY.read_text())
        assert [x["name"] for x in stats["labels"]] == [label.name for label in doc.labels]
        assert sum(x["drawn"] for x in stats["labels"]) == len(texts)
        assert all(x["moved"] >= 0 for x in stats["labels"]) and any(x["moved"] > 0 for x in stats["labels"])
        text = CliRunner().invoke(app, ["labels", "stats", "tiny", "--tenant", "acme"], obj=ctx)
        assert text.exit_code == 0 and "drawn" in text.stdout and "12 recent messages kept" in text.stdout
        missing = CliRunner().invoke(app, ["labels", "stats", "nope", "--tenant", "acme", "--json"], obj=ctx)
        assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["code"] == "not_found"
    finally:
        ctx.close()
