"""The evaluation tool: metrics on hand-made outcomes, sweep and tuner on the shipped sample, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from labelwise import evaluate
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelCache
from labelwise.cli.evaluation import register
from labelwise.errors import InvalidInputError
from labelwise.evaluate import Outcome
from labelwise.labelset import load_yaml, parse_document

ROOT = Path(__file__).parent.parent
SUPPORT = ROOT / "examples" / "support.yaml"
MESSAGES = ROOT / "tests" / "data" / "support_messages.csv"


def o(gold: str, top: str, score: float, *, abstained: bool = False, second: float = 0.0) -> Outcome:
    return Outcome(gold, top, score, second, () if abstained else (top,), abstained)


TINY = parse_document({"name": "t", "threshold": 0.5, "fallback": "other", "labels": [{"name": "a"}, {"name": "b"}]})
# gold a,a,a,b,b and an out-of-set "z"; top-ranked a,a,b,b,a,a; the 3rd and 6th abstain
CASE = [
    o("a", "a", 0.9),
    o("a", "a", 0.8),
    o("a", "b", 0.4, abstained=True),
    o("b", "b", 0.7),
    o("b", "a", 0.6),
    o("z", "a", 0.3, abstained=True),
]


def test_metrics_on_a_hand_made_case() -> None:
    m = evaluate.metrics(CASE, TINY)
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(3 / 6)
    # top-1 F1: a: p=2/4, r=2/3 -> 4/7; b: p=1/2, r=1/2 -> 1/2
    assert m["macro_f1"] == pytest.approx((4 / 7 + 1 / 2) / 2)
    assert m["coverage"] == pytest.approx(4 / 6) and m["covered_accuracy"] == pytest.approx(3 / 4)
    assert m["decision_accuracy"] == pytest.approx(4 / 6)  # 3 right answers + the out-of-set abstention
    assert (m["out_of_set"], m["out_of_set_abstained"]) == (1, 1.0)


def test_per_label_table_counts_abstentions_as_misses() -> None:
    table = {row["label"]: row for row in evaluate.per_label(CASE, TINY)}
    assert table["a"]["precision"] == pytest.approx(2 / 3) and table["a"]["recall"] == pytest.approx(2 / 3)
    assert table["b"]["precision"] == pytest.approx(1 / 1) and table["b"]["recall"] == pytest.approx(1 / 2)
    assert (table["a"]["support"], table["b"]["support"]) == (3, 2)


def test_confused_pairs_and_confusion_matrix() -> None:
    assert evaluate.confused_pairs(CASE)[0] in (
        {"gold": "a", "predicted": "b", "count": 1},
        {"gold": "b", "predicted": "a", "count": 1},
    )
    assert sum(p["count"] for p in evaluate.confused_pairs(CASE)) == 3
    rows, counts = evaluate.confusion(CASE, TINY)
    assert rows == ["a", "b", "z"] and counts.tolist() == [[2, 1], [1, 1], [1, 0]]


def test_threshold_and_margin_decide_coverage() -> None:
    assert evaluate.at_threshold(CASE, 0.65)["coverage"] == pytest.approx(3 / 6)
    assert evaluate.at_threshold(CASE, 0.65)["covered_accuracy"] == pytest.approx(1.0)
    close = [o("a", "a", 0.9, second=0.89), o("a", "a", 0.9, second=0.5)]
    assert evaluate.at_threshold(close, 0.0, margin=0.05)["coverage"] == pytest.approx(0.5)


def test_auroc_matches_pairwise_counting() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)  # ties on purpose
    positive = rng.random(60) > 0.4
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[positive] for n in scores[~positive]]
    assert evaluate.auroc(scores, positive) == pytest.approx(np.mean(pairs))


def test_reads_csv_and_jsonl_and_names_the_bad_line(tmp_path: Path) -> None:
    assert len(evaluate.read_labelled(MESSAGES)) >= 40
    rows = evaluate.read_labelled(ROOT / "tests" / "data" / "support_eval.jsonl")
    assert rows[-1] == evaluate.Row("What is the weather like in Lisbon tomorrow?", "smalltalk")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "a"}\n{"text": "no label"}\n')
    with pytest.raises(InvalidInputError, match="bad.jsonl:2"):
        evaluate.read_labelled(bad)


@pytest.fixture(scope="module")
def support_outcomes(encoder):  # type: ignore[no-untyped-def]
    doc = load_yaml(SUPPORT.read_text())
    rows = evaluate.read_labelled(MESSAGES)
    return doc, evaluate.predict(Classifier(encoder=encoder, cache=LabelCache()), doc, rows, batch_size=16)


def test_eval_uses_the_worker_path_and_reaches_the_accuracy_bar(support_outcomes, encoder) -> None:  # type: ignore[no-untyped-def]
    doc, outcomes = support_outcomes
    direct = Classifier(encoder=encoder).classify(1, doc, [evaluate.read_labelled(MESSAGES)[0].text])[0]
    assert (outcomes[0].top, outcomes[0].top_score) == (direct.labels[0]["name"], direct.labels[0]["score"])
    assert evaluate.metrics(outcomes, doc)["accuracy"] >= 0.80


def test_sweep_coverage_never_rises_with_the_threshold(support_outcomes) -> None:  # type: ignore[no-untyped-def]
    _, outcomes = support_outcomes
    points = evaluate.sweep(outcomes)
    assert len(points) > 10 and points[0]["coverage"] == 1.0
    thresholds = [p["threshold"] for p in points]
    coverages = [p["coverage"] for p in points]
    assert thresholds == sorted(thresholds) and coverages == sorted(coverages, reverse=True)


@pytest.mark.parametrize("target", [0.9, 0.95])
def test_tuner_meets_a_precision_target_on_the_sample(support_outcomes, target: float) -> None:  # type: ignore[no-untyped-def]
    doc, outcomes = support_outcomes
    found = evaluate.tune(outcomes, doc, target_precision=target, min_support=5)
    assert found["reached"]
    limits = {o_.top: found["labels"].get(o_.top, found["threshold"]) for o_ in outcomes}
    covered = [x for x in outcomes if x.top_score >= limits[x.top]]
    assert np.mean([x.top == x.gold for x in covered]) >= target
    assert found["expected"]["coverage"] == pytest.approx(len(covered) / len(outcomes))


def test_tuner_meets_a_coverage_target_with_the_highest_threshold(support_outcomes) -> None:  # type: ignore[no-untyped-def]
    doc, outcomes = support_outcomes
    found = evaluate.tune(outcomes, doc, target_coverage=0.75)
    assert found["expected"]["coverage"] >= 0.75
    assert evaluate.at_threshold(outcomes, found["threshold"] + 0.001)["coverage"] < 0.75


@pytest.fixture(scope="module")
def cli(encoder):  # type: ignore[no-untyped-def]
    app = typer.Typer()
    labels_app = typer.Typer()
    app.add_typer(labels_app, name="labels")
    register(app, labels_app, classifier_factory=lambda settings: Classifier(encoder=encoder, top_k=settings.top_k))
    return app


def test_cli_eval_json_is_one_object_with_the_headline_figures(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "eval.png"
    args = ["eval", str(MESSAGES), "--labels", str(SUPPORT), "--sweep", "--plot", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "coverage", "covered_accuracy", "n", "per_label", "sweep"} <= set(data)
    assert data["n"] == len(evaluate.read_labelled(MESSAGES)) and data["accuracy"] >= 0.8
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_eval_text_output_and_bad_input(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["eval", str(MESSAGES), "--labels", str(SUPPORT)])
    assert result.exit_code == 0 and "macro-F1" in result.stdout and "billing" in result.stdout
    missing = CliRunner().invoke(cli, ["eval", str(tmp_path / "none.csv"), "--labels", str(SUPPORT), "--json"])
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["code"] == "invalid_input"


def test_cli_labels_tune_suggests_a_threshold(cli) -> None:  # type: ignore[no-untyped-def]
    args = ["labels", "tune", str(SUPPORT), "--data", str(MESSAGES), "--target-precision", "0.9", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"] == {"precision": 0.9} and data["expected"]["covered_accuracy"] >= 0.9
    assert -1 <= data["threshold"] <= 1 and isinstance(data["labels"], dict)
    both = CliRunner().invoke(
        cli,
        [
            "labels",
            "tune",
            str(SUPPORT),
            "--data",
            str(MESSAGES),
            "--target-precision",
            "0.9",
            "--target-coverage",
            "0.5",
        ],
    )
    assert both.exit_code == 2


def test_calibration_fit_turns_overconfident_scores_into_probabilities() -> None:
    """Top scores that overstate the chance of being right: after fitting, the ECE is small."""
    rng = np.random.default_rng(0)
    top = rng.uniform(0.3, 0.9, 4000)
    second = top - rng.uniform(0.0, 0.3, 4000)
    truth = 1 / (1 + np.exp(-(4 * top + 10 * (top - second) - 3)))
    right = rng.uniform(size=4000) < truth
    outcomes = [
        o("a" if r else "b", "a", float(t), second=float(s)) for t, s, r in zip(top, second, right, strict=True)
    ]
    cal = evaluate.fit_calibration(outcomes[:2000])
    assert cal.score > 0 and cal.margin > 0
    held = outcomes[2000:]
    before, after = evaluate.reliability(held), evaluate.reliability(evaluate.calibrated(held, cal))
    assert after["ece"] < 0.03 < before["ece"]
    assert [x.top for x in evaluate.calibrated(held, cal)] == [x.top for x in held]
    with pytest.raises(ValueError):
        evaluate.fit_calibration([o("a", "a", 0.9), o("a", "a", 0.5)])


def test_reliability_bins_on_a_hand_made_case() -> None:
    rel = evaluate.reliability([o("a", "a", 0.95), o("a", "b", 0.95), o("a", "a", 0.75), o("a", "a", 0.2)])
    bins = {b["bin"]: b for b in rel["bins"]}
    assert bins["0.9-1.0"]["accuracy"] == 0.5 and bins["0.7-0.9"]["n"] == 1 and bins["0.5-0.7"]["n"] == 0
    # |0.5-0.95| * 2/4 + |1-0.75| * 1/4 + |1-0.2| * 1/4
    assert rel["ece"] == pytest.approx(0.225 + 0.0625 + 0.2)


def test_cli_labels_tune_calibrates_and_writes_the_document(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "tuned.yaml"
    args = ["labels", "tune", str(SUPPORT), "--data", str(MESSAGES), "--calibrate", "--write", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reliability"]["ece_after"] < data["reliability"]["ece_before"]
    assert 0 <= data["threshold"] <= 1 and data["calibration"]["score"] >= 0
    tuned = load_yaml(out.read_text())
    assert tuned.calibration is not None and tuned.threshold == data["threshold"]
    raw, calibrated = (
        json.loads(CliRunner().invoke(cli, ["eval", str(MESSAGES), "--labels", str(path), "--json"]).stdout)
        for path in (SUPPORT, out)
    )
    assert calibrated["accuracy"] == raw["accuracy"]  # the ranking is unchanged
    assert calibrated["coverage"] == pytest.approx(data["expected"]["coverage"], abs=0.05)


def test_cli_eval_with_traffic_scores_after_refining_and_shows_the_figures_without(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`eval --traffic FILE`: the rows scored with label vectors refined from FILE's texts, beside the
    figures without them; a traffic file without texts is a clear error."""
    traffic = tmp_path / "traffic.txt"
    texts = [row.text for row in evaluate.read_labelled(MESSAGES)]
    traffic.write_text("\n".join(texts * 3) + "\n", encoding="utf-8")
    plain = json.loads(CliRunner().invoke(cli, ["eval", str(MESSAGES), "--labels", str(SUPPORT), "--json"]).stdout)
    result = CliRunner().invoke(
        cli, ["eval", str(MESSAGES), "--labels", str(SUPPORT), "--traffic", str(traffic), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["traffic"]["messages"] == 3 * len(texts)
    assert data["traffic"]["accuracy_without"] == plain["accuracy"]
    assert data["accuracy"] >= plain["accuracy"] - 0.01  # refining from the set's own traffic never costs
    text = CliRunner().invoke(cli, ["eval", str(MESSAGES), "--labels", str(SUPPORT), "--traffic", str(traffic)])
    assert text.exit_code == 0 and f"after {3 * len(texts)} messages of traffic" in text.stdout
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"label": "x"}\n', encoding="utf-8")
    bad = CliRunner().invoke(cli, ["eval", str(MESSAGES), "--labels", str(SUPPORT), "--traffic", str(empty), "--json"])
    assert bad.exit_code == 1 and "no texts" in json.loads(bad.stdout)["error"]["message"]
