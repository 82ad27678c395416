"""The predictor's report: metrics, per-class results, leaderboard, modality ablation,
permutation importance, the schema with reasons and the cleaning findings, as one
:class:`~polymodal.evaluate.report.Document` (``report.md`` + ``report.html``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import numbers
import os
import re
from pathlib import Path

import pandas as pd

from polymodal.evaluate import plots
from polymodal.evaluate.explain import (
    as_table,
    label_targets,
    modality_ablation,
    permutation_importance,
    predictor_outputs,
    primary_metric,
)
from polymodal.evaluate.report import (
    MIN_ROWS_FOR_METRICS,
    Document,
    Figure,
    config_table,
    small_sample_warning,
)
from polymodal.evaluate.unlabelled import unlabelled_sentence


def _scalar_metrics(metrics: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Split ``evaluate()``'s dict into headline numbers and per-label F1.

    Per-label F1 comes as ``f1[tag]`` keys (:func:`~polymodal.evaluate.metrics.multilabel_metrics`)
    or as one dict-valued entry; anything else that is not a number is left out.
    """
    headline, per_label = {}, {}
    for key, value in metrics.items():
        if isinstance(value, dict) and "f1" in str(key):  # {"per_label_f1": {tag: f1}}
            per_label.update(
                {str(k): float(v) for k, v in value.items() if isinstance(v, numbers.Real)}
            )
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            continue
        match = re.fullmatch(r"f1\[(.*)\]", str(key))
        if match:
            per_label[match.group(1)] = float(value)
        else:
            headline[str(key)] = float(value)
    return headline, per_label


def _predictor_config(predictor) -> dict | None:
    """The settings that reproduce the predictor, as plain JSON: the resolved
    ``config_dict()`` when there is one, else ``get_params()`` / ``get_config()`` / ``config_``."""
    for getter in ("config_dict", "get_params", "get_config"):
        if callable(getattr(predictor, getter, None)):
            return _as_json_dict(getattr(predictor, getter)())
    for attribute in ("config_", "config"):
        value = getattr(predictor, attribute, None)
        if value is not None:
            return _as_json_dict(value)
    return None


def _as_json_dict(value) -> dict:
    """A config object (dict or dataclass) as a JSON-ready dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def _schema_frame(schema) -> pd.DataFrame:
    rows = []
    for column, modality, reason in schema.summary_rows():
        role = (
            "label"
            if column == schema.label
            else ("ignored" if modality == "ignored" else "feature")
        )
        rows.append({"column": column, "modality": modality, "role": role, "reason": reason})
    return pd.DataFrame(rows, columns=["column", "modality", "role", "reason"])


def _add_cleaning(doc: Document, report) -> None:
    """The cleaning findings: the one-line issues, then the per-column actions."""
    issues = list(getattr(report, "issues", []) or [])
    doc.add_list(issues or ["no issues found"])
    columns = getattr(report, "columns", None)
    if isinstance(columns, dict) and columns:
        frame = pd.DataFrame(
            [
                {
                    "column": c.name,
                    "modality": c.modality,
                    "missing": c.missing_count,
                    "missing_share": c.missing_fraction,
                    "action": c.action,
                }
                for c in columns.values()
            ]
        )
        doc.add_table(frame, caption="What the transforms do with each column")
    elif not issues and callable(getattr(report, "to_markdown", None)):
        doc.add_code(report.to_markdown(), language="markdown")


def write_predictor_report(
    predictor,
    df,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    command: str | None = None,
    n_repeats: int = 3,
    seed: int = 0,
    max_rows: int = 2000,
) -> dict:
    """Evaluate a fitted predictor on ``df`` and write ``report.md`` + ``report.html`` into ``out_dir``.

    ``df`` is a DataFrame with the label column, or a path to a table (read with
    :func:`~polymodal.data.readers.read_table`, so relative media paths resolve).

    The report holds the metrics, the figures for the problem type (confusion matrix
    and calibration, predicted-vs-true, or F1 per label), the leaderboard, the
    per-modality ablation and permutation importance (``n_repeats``, ``seed`` and
    ``max_rows`` go to :func:`~polymodal.evaluate.explain.permutation_importance`), the
    training curve when there is a history, the schema with its reasons, the
    cleaning findings, and the command (when given) and config that reproduce the model.

    Returns ``{"metrics": dict, "rows": int, "rows_scored": int (those with a label the
    predictor knows), "ablation": DataFrame, "importance": DataFrame, "report_md": Path,
    "report_html": Path, "figures": [Path, ...]}``.
    """
    out_dir = Path(out_dir)
    df = as_table(df)  # read once: every step below re-scores the same rows
    schema = predictor.schema_
    problem = predictor.problem_type_
    metric_name, direction = primary_metric(predictor)

    # 1. Numbers: the predictor's own metrics, then the two explanations.
    metrics = predictor.evaluate(df)
    headline, per_label = _scalar_metrics(metrics)
    ablation = modality_ablation(predictor, df)
    importance = permutation_importance(
        predictor, df, n_repeats=n_repeats, seed=seed, max_rows=max_rows
    )
    y_true, scored = label_targets(predictor, df)
    outputs = predictor_outputs(predictor, df)
    y_true, outputs = y_true[scored], outputs[scored]

    doc = Document(title or f"Predictor report: {schema.label}")
    better = "higher" if direction == "max" else "lower"
    doc.add_text(
        f"Label {schema.label!r}, problem type {problem}, {int(scored.sum()):,} of {len(df):,} rows "
        f"scored (rows without a known label are left out). Primary metric: {metric_name} "
        f"({better} is better). Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."
    )

    # 2. Metrics and the figures that go with them.
    doc.add_heading("Metrics")
    warning = small_sample_warning(int(scored.sum()), MIN_ROWS_FOR_METRICS, unit="rows",
                                   what="These metrics (and the explanations below)")
    if warning:
        doc.add_warning(warning)
    doc.add_table(pd.DataFrame({"metric": list(headline), "value": list(headline.values())}))
    if problem in ("binary", "multiclass"):
        class_names = [str(c) for c in predictor.classes_]
        confusion = plots.confusion_matrix_png(y_true, outputs.argmax(axis=1), class_names)
        if confusion is not None:
            doc.add_image(
                confusion,
                "Confusion matrix, normalised per true class (cell: share, count)",
                filename="confusion_matrix.png",
            )
        else:
            doc.add_text(
                f"Confusion matrix skipped: {len(class_names)} classes is more than "
                f"{plots.MAX_CONFUSION_CLASSES}."
            )
        doc.add_image(
            plots.calibration_png(y_true, outputs),
            "Reliability diagram: accuracy vs confidence of the top class",
            filename="calibration.png",
        )
    elif problem == "regression":
        doc.add_image(
            plots.regression_scatter_png(y_true, outputs, label=schema.label),
            "Predicted vs true values; the dashed line is a perfect prediction",
            filename="predicted_vs_true.png",
        )
    elif problem == "multilabel" and per_label:
        doc.add_image(
            plots.per_label_f1_png(per_label), "F1 per label", filename="per_label_f1.png"
        )

    # 3. Model selection.
    leaderboard = (
        predictor.leaderboard() if callable(getattr(predictor, "leaderboard", None)) else None
    )
    if leaderboard is not None and len(leaderboard):
        doc.add_heading("Leaderboard")
        doc.add_text(
            "Candidate models scored on the validation split; the chosen one makes the predictions."
        )
        doc.add_table(leaderboard.reset_index(drop=True))
    unlabelled = unlabelled_sentence(getattr(predictor, "unlabelled_", None))
    if unlabelled:
        doc.add_text(unlabelled)

    # 4. Explanations.
    doc.add_heading("What each modality contributes")
    doc.add_text(
        f"The primary metric ({metric_name}) with every modality, then with each modality's "
        "columns masked out as if missing. 'contribution' is how much worse the predictor does "
        "without the modality (positive = it helps)."
    )
    doc.add_table(ablation)
    if len(ablation) > 1:
        doc.add_image(
            plots.ablation_png(ablation),
            f"How much {metric_name} is lost when each modality is masked",
            filename="ablation.png",
        )
    doc.add_heading("Permutation importance")
    doc.add_text(
        f"How much {metric_name} is lost when one column's cells are shuffled across rows "
        f"(mean ± std over {n_repeats} shuffles, "
        f"{importance.attrs.get('num_rows_scored', 0):,} rows, seed {seed})."
    )
    doc.add_table(importance)
    if len(importance):
        doc.add_image(
            plots.importance_png(importance),
            "Permutation importance per column",
            filename="importance.png",
        )

    # 5. Training.
    history = list(getattr(predictor, "training_history_", None) or [])
    curve = plots.training_curve_png(history, metric=metric_name)
    if curve is not None:
        doc.add_heading("Training")
        doc.add_image(
            curve,
            "Training of the neural candidate: loss and validation metric vs step",
            filename="training_curve.png",
        )

    # 6. Data: what each column was taken for, and what cleaning found.
    doc.add_heading("Schema")
    if schema.problem_reason:
        doc.add_text(f"Problem type: {schema.problem_reason}")
    doc.add_table(_schema_frame(schema), max_rows=200)
    cleaning = getattr(predictor, "cleaning_report_", None)
    if cleaning is not None:
        doc.add_heading("Cleaning findings")
        _add_cleaning(doc, cleaning)

    # 7. How to get the same model again.
    config = _predictor_config(predictor)
    if command or config:
        doc.add_heading("Reproduce")
        if command:
            doc.add_text("Command:")
            doc.add_code(command, language="bash")
        if config:
            doc.add_table(config_table(config), caption="Resolved config", max_rows=500)

    md_path, html_path = doc.write(out_dir)
    figures = [out_dir / s.filename for s in doc.sections if isinstance(s, Figure)]
    return {
        "metrics": metrics,
        "rows": len(df),
        "rows_scored": int(scored.sum()),
        "ablation": ablation,
        "importance": importance,
        "report_md": md_path,
        "report_html": html_path,
        "figures": figures,
    }
