"""``labelwise eval`` and ``labelwise labels tune``: measure a label set on labelled messages.

Both classify through ``Classifier.classify`` with the classifier the worker builds
(``labelwise.worker.resources.build_classifier``), so what they report is what production does.
``labelwise.cli`` adds them with :func:`register`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml

from labelwise import evaluate
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import Traffic
from labelwise.errors import LabelwiseError
from labelwise.labelset import Calibration, LabelSetDocument, load_yaml
from labelwise.settings import Settings

ClassifierFactory = Callable[[Settings], Classifier]
PROGRESS_MIN_ROWS = 200  # fewer rows finish in a few seconds: no bar


def _default_factory(settings: Settings) -> Classifier:
    from labelwise.worker.resources import build_classifier

    return build_classifier(settings)


def register(app: typer.Typer, labels_app: typer.Typer, *, classifier_factory: ClassifierFactory | None = None) -> None:
    """Add ``eval`` to ``app`` and ``tune`` to ``labels_app``.

    ``classifier_factory`` builds the classifier from the settings (default: the worker's own
    ``build_classifier``); tests pass one that reuses a loaded model.
    """
    factory = classifier_factory or _default_factory

    @app.command("eval")
    def eval_command(
        ctx: typer.Context,
        data: Path = typer.Argument(..., help="CSV (header text,label) or JSONL ({'text', 'label'}) file."),
        labels: Path = typer.Option(..., "--labels", "-l", help="Label-set YAML document."),
        with_sweep: bool = typer.Option(False, "--sweep", help="Also print coverage/accuracy over thresholds."),
        plot: Path | None = typer.Option(None, "--plot", help="Write the sweep curve and a confusion heat map (PNG)."),
        traffic: Path | None = typer.Option(
            None,
            "--traffic",
            help="Unlabeled texts of the set's traffic (one per line, or CSV/JSONL with a text field): score as "
            "the worker will once it has refined the label vectors from them; accuracy without them is shown beside.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON document on stdout."),
    ) -> None:
        """Accuracy, macro-F1, coverage and accuracy on the covered share; per-label table, confusions."""
        doc, outcomes, model, refined = _run(ctx, factory, data, labels, as_json=as_json, traffic_file=traffic)
        result = {**evaluate.report(outcomes, doc, with_sweep=with_sweep), "model": model}
        if refined is not None:
            result["traffic"] = refined
        if plot is not None:
            evaluate.plot(plot, outcomes, doc)
            result["plot"] = str(plot)
        typer.echo(json.dumps(result, indent=2) if as_json else _eval_text(result))

    @labels_app.command("stats")
    def stats_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Label-set name."),
        tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant name."),
        as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON document on stdout."),
    ) -> None:
        """Per label: how much of the set's recent traffic it draws and how far refining moved its vector."""
        from labelwise.cli.common import get_ctx
        from labelwise.models import tenants
        from labelwise.pipeline.traffic import TrafficPolicy, label_stats

        c = get_ctx(ctx)
        try:
            with c.sessions() as s:
                tenant_id = tenants.get_tenant(s, tenant).id
            classifier = factory(c.settings)
            policy = TrafficPolicy(keep=c.settings.traffic_keep, refresh_every=c.settings.traffic_refresh_every)
            result = label_stats(c.sessions, classifier.encoder, tenant_id=tenant_id, name=name, policy=policy)
        except LabelwiseError as e:
            _fail(e.message, as_json=as_json, code_name=e.code)
        typer.echo(json.dumps(result, indent=2) if as_json else _stats_text(result))

    @labels_app.command("tune")
    def tune_command(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="Label-set YAML document."),
        data: Path = typer.Option(..., "--data", help="Labelled sample: CSV (text,label) or JSONL."),
        target_precision: float | None = typer.Option(
            None, "--target-precision", min=0.0, max=1.0, help="Wanted accuracy of the answers given."
        ),
        target_coverage: float | None = typer.Option(
            None, "--target-coverage", min=0.0, max=1.0, help="Wanted share of messages answered."
        ),
        calibrate: bool = typer.Option(
            False,
            "--calibrate",
            help="Also fit a calibration (scores become probabilities); thresholds are then probabilities.",
        ),
        write: Path | None = typer.Option(None, "--write", help="Write the document with the suggestions (YAML)."),
        as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON document on stdout."),
    ) -> None:
        """Suggest the set's threshold (and per-label ones where they help) for a target; default precision 0.9."""
        if target_precision is not None and target_coverage is not None:
            _fail("give --target-precision or --target-coverage, not both", as_json=as_json, code=2)
        if target_precision is None and target_coverage is None:
            target_precision = 0.9
        doc, outcomes, model, _ = _run(ctx, factory, data, file, as_json=as_json, raw=calibrate)
        current = evaluate.metrics(outcomes, doc)
        calibration = None
        if calibrate:
            try:
                calibration = evaluate.fit_calibration(outcomes, use_margin=not doc.multi_label)
            except ValueError as e:
                _fail(str(e), as_json=as_json)
            before = evaluate.reliability(outcomes)["ece"]
            outcomes = evaluate.calibrated(outcomes, calibration)
        found = evaluate.tune(outcomes, doc, target_precision=target_precision, target_coverage=target_coverage)
        target = {"precision": target_precision} if target_precision is not None else {"coverage": target_coverage}
        result = {
            "label_set": doc.name,
            "model": model,
            "target": target,
            **found,
            "current": {"threshold": doc.threshold, **{k: current[k] for k in ("coverage", "covered_accuracy", "n")}},
        }
        if calibration is not None:
            after = evaluate.reliability(outcomes)
            result["calibration"] = calibration.model_dump()
            result["reliability"] = {"ece_before": before, "ece_after": after["ece"], "bins": after["bins"]}
        if write is not None:
            suggested = _suggested(doc, result["threshold"], result["labels"], calibration)
            write.write_text(yaml.safe_dump(suggested, sort_keys=False, allow_unicode=True), encoding="utf-8")
            result["written"] = str(write)
        typer.echo(json.dumps(result, indent=2) if as_json else _tune_text(result))


def _stats_text(r: dict[str, Any]) -> str:
    lines = [
        f"{r['label_set']} version {r['version']} · {r['model']} · {r['messages_kept']} recent messages kept "
        f"({r['messages_seen']} seen)" + ("" if r["refined"] else " · label vectors not refined"),
        f"  {'label':32s} {'drawn':>6s} {'share':>6s} {'moved':>6s}",
    ]
    total = max(r["messages_kept"], 1)
    lines += [
        f"  {x['name'][:32]:32s} {x['drawn']:6d} {_pct(x['drawn'] / total)} {x['moved']:6.3f}" for x in r["labels"]
    ]
    return "\n".join(lines)


def _suggested(
    doc: LabelSetDocument, threshold: float, overrides: dict[str, float], calibration: Calibration | None
) -> dict[str, Any]:
    """The document with the suggested thresholds (and calibration, replacing any it had)."""
    labels = [
        label.model_copy(update={"threshold": overrides.get(label.name, None if calibration else label.threshold)})
        for label in doc.labels
    ]
    update: dict[str, Any] = {"threshold": threshold, "labels": labels}
    if calibration is not None:
        update["calibration"] = calibration
    return doc.model_copy(update=update).model_dump(mode="json", exclude_none=True)


def _run(
    ctx: typer.Context,
    factory: ClassifierFactory,
    data: Path,
    labels: Path,
    *,
    as_json: bool,
    raw: bool = False,
    traffic_file: Path | None = None,
) -> tuple[LabelSetDocument, list[evaluate.Outcome], str, dict[str, Any] | None]:
    """Load the files and classify every row; errors end the command with exit code 1.

    ``raw``: classify with the document's calibration left out (raw scores, to fit a new one).
    ``traffic_file``: classify with label vectors refined from its texts; the last item then says how
    many there were and the accuracy without them (else None).
    """
    try:
        doc = load_yaml(labels.read_text(encoding="utf-8"))
        if raw:
            doc = doc.model_copy(update={"calibration": None})
        rows = evaluate.read_labelled(data)
        texts = evaluate.read_texts(traffic_file) if traffic_file is not None else None
    except OSError as e:
        _fail(f"cannot read {labels}: {e}", as_json=as_json)
    except LabelwiseError as e:
        _fail(e.message, as_json=as_json, code_name=e.code)
    # cli.py's callback puts its Settings on ctx.obj; built here only when registered elsewhere
    settings = getattr(ctx.obj, "settings", None) or Settings()  # type: ignore[call-arg]  # fields come from env
    classifier = factory(settings)
    if texts is None:
        return doc, _predict(classifier, doc, rows), classifier.model_id, None
    traffic = Traffic(
        f"eval:{hashlib.sha256(chr(0).join(texts).encode()).hexdigest()}", classifier.encoder.encode(texts)
    )
    without = evaluate.metrics(_predict(classifier, doc, rows), doc)
    refined = {"messages": len(texts), "accuracy_without": without["accuracy"], "macro_f1_without": without["macro_f1"]}
    return doc, _predict(classifier, doc, rows, traffic=traffic), classifier.model_id, refined


def _predict(
    classifier: Classifier, doc: LabelSetDocument, rows: list[evaluate.Row], *, traffic: Traffic | None = None
) -> list[evaluate.Outcome]:
    """Every row classified as the worker would, with a progress bar on stderr for long files."""
    if len(rows) < PROGRESS_MIN_ROWS:
        return evaluate.predict(classifier, doc, rows, traffic=traffic)
    with typer.progressbar(length=len(rows), label="classifying", file=sys.stderr) as bar:
        return evaluate.predict(classifier, doc, rows, on_batch=bar.update, traffic=traffic)


def _fail(message: str, *, as_json: bool, code: int = 1, code_name: str = "invalid_input") -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": {"code": code_name, "message": message}}))
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def _eval_text(r: dict[str, Any]) -> str:
    lines = [
        f"{r['label_set']} · {r['model']} · {r['n']} messages",
        f"  accuracy (top label)      {_pct(r['accuracy'])}",
        f"  macro-F1                  {_pct(r['macro_f1'])}",
        f"  coverage                  {_pct(r['coverage'])}   (threshold {r['threshold']}"
        + (f", margin {r['margin']})" if r["margin"] else ")"),
        f"  accuracy on covered       {_pct(r['covered_accuracy'])}",
    ]
    if r["out_of_set"]:
        lines.append(f"  out-of-set messages       {r['out_of_set']}, abstained {_pct(r['out_of_set_abstained'])}")
    lines += ["", f"  {'label':32s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'support':>7s}"]
    lines += [
        f"  {x['label'][:32]:32s} {_pct(x['precision'])} {_pct(x['recall'])} {_pct(x['f1'])} {x['support']:7d}"
        for x in r["per_label"]
    ]
    if r["confused"]:
        lines += ["", "  most confused (gold -> top label)"]
        lines += [f"  {c['count']:5d}  {c['gold']} -> {c['predicted']}" for c in r["confused"]]
    if "sweep" in r:
        lines += ["", f"  {'threshold':>9s} {'coverage':>9s} {'accuracy':>9s}"]
        lines += [
            f"  {p['threshold']:9.4f} {_pct(p['coverage']):>9s} {_pct(p['covered_accuracy']):>9s}" for p in r["sweep"]
        ]
    if "plot" in r:
        lines += ["", f"  plot written to {r['plot']}"]
    if "traffic" in r:
        t = r["traffic"]
        lines.insert(
            1,
            f"  after {t['messages']} messages of traffic (label vectors refined from them); "
            f"without them: accuracy {_pct(t['accuracy_without'])}, macro-F1 {_pct(t['macro_f1_without'])}",
        )
    return "\n".join(lines)


def _tune_text(r: dict[str, Any]) -> str:
    target = ", ".join(f"{k} {v}" for k, v in r["target"].items())
    exp, cur = r["expected"], r["current"]
    lines = [
        f"{r['label_set']} · {r['model']} · target {target}"
        + ("" if r["reached"] else "  (NOT reachable on this sample)"),
        f"  now:       threshold {cur['threshold']}: coverage {_pct(cur['coverage'])}, "
        f"accuracy on covered {_pct(cur['covered_accuracy'])}",
        f"  suggested: threshold {r['threshold']}: coverage {_pct(exp['coverage'])}, "
        f"accuracy on covered {_pct(exp['covered_accuracy'])} (on {exp['n']} messages)",
        "",
        f"threshold: {r['threshold']}",
    ]
    if r["labels"]:
        lines.append("# per-label overrides (set `threshold:` on these labels):")
        lines += [f"#   {name}: {t}" for name, t in r["labels"].items()]
    if "calibration" in r:
        c, rel = r["calibration"], r["reliability"]
        lines.insert(
            4,
            f"  calibrated: expected calibration error {_pct(rel['ece_before'])} -> {_pct(rel['ece_after'])} "
            "on this sample; the threshold below is a probability",
        )
        lines.append(f"calibration: {{score: {c['score']}, margin: {c['margin']}, bias: {c['bias']}}}")
    if "written" in r:
        lines.append(f"# written to {r['written']}")
    return "\n".join(lines)
