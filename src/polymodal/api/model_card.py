"""``MODEL_CARD.md``: what a saved model is, what it saw and where it stops being reliable.

Written beside the weights by every save (:mod:`polymodal.api.predictor_folder`,
:mod:`polymodal.api.generator_folder`) from what the fitted model already holds: the data
fingerprint (:mod:`polymodal.data.fingerprint`), the schema with each column's reason,
the cleaning findings, the candidates and the chosen one, the validation metrics, the
known limits, the library versions and the resolved recipe. The card is for people:
loading a folder never reads it, and a folder saved before cards existed loads as before.
Sections follow Mitchell et al. 2019, "Model Cards for Model Reporting", trimmed to what
a fit can know.
"""

from __future__ import annotations

import json

from polymodal.evaluate.unlabelled import unlabelled_sentence
from polymodal.files import json_safe

CARD_FILE = "MODEL_CARD.md"
# A class with fewer training rows than this is named as a limit: its validation score
# rests on a handful of rows.
FEW_ROWS = 20
MAX_TABLE_ROWS = 50  # rows of a table in the card; the JSON files hold the rest


def predictor_card(p, versions: dict) -> str:
    """The card of a fitted :class:`~polymodal.api.predictor.Predictor` ``p``."""
    metric = _val_metric_name(p)
    lines = [f"# Model card: predictor of `{p.schema_.label}`", "",
             f"A polymodal Predictor for **{p.problem_type_}** "
             f"({p.schema_.problem_reason or 'problem type as given'}). "
             f"Chosen model: **{p.chosen_}**, validation {metric} {p.val_metric_:.4f}.", ""]
    chosen = next((r for r in reversed(p.train_log_) if r.get("event") == "chosen"), {})
    val_rows = chosen.get("num_val_rows", getattr(p, "num_val_rows_", None))
    lines += _data_section(getattr(p, "data_fingerprint_", None),
                           train_rows=chosen.get("num_train_rows"), val_rows=val_rows)
    unlabelled = unlabelled_sentence(getattr(p, "unlabelled_", None))
    if unlabelled:
        lines += [unlabelled, ""]
    lines += _schema_section(p.schema_)
    lines += _cleaning_section(p.cleaning_report_)
    lines += ["## Candidates", "",
              "Every candidate trained, scored on the validation rows; the chosen one "
              "predicts (an ensemble blends the weighted members).", ""]
    lines += _frame_table(p.leaderboard_)
    cv = next((r for r in p.train_log_ if r.get("event") == "cross_validation"), None)
    if cv is not None:  # a small table: the choice was judged out of fold
        lines += ["", f"Chosen on {cv['folds']}-fold x{cv['repeats']} cross-validation: "
                  f"out-of-fold predictions on all {cv['rows']} labelled rows (`cv_{metric}`; "
                  "a model whose `judged_on` is hold-out: on the held-out rows only)."]
    if p.ensemble_weights_:
        weights = ", ".join(f"{k} {v:.2f}" for k, v in p.ensemble_weights_.items() if v > 0)
        lines += ["", f"Ensemble weights: {weights}."]
    lines += ["", "## Validation metrics", "",
              f"- {metric}: {p.val_metric_:.4f} on {val_rows if val_rows is not None else '?'} "
              "held-out rows (the primary metric; the choice among candidates used it)",
              "- test metrics: not measured at save time; `polymodal evaluate DIR TABLE` "
              "scores a labelled test table and writes the report with the per-modality "
              "ablation", ""]
    lines += _use_section(p)
    lines += _versions_section(versions, getattr(p, "recipe_", None))
    return "\n".join(lines) + "\n"


def generator_card(g, versions: dict) -> str:
    """The card of a fitted :class:`~polymodal.api.generator.Generator` ``g``."""
    channels, height, width = g.image_shape_
    conditions = ", ".join(f"`{c}` ({i['modality']})" for c, i in g.conditions_.items())
    training = g.train_result_ or {}
    lines = [f"# Model card: image generator of `{g.image}`", "",
             f"A polymodal Generator (rectified flow, UNet) of {width}x{height} images with "
             f"{channels} channel(s), conditioned on {conditions or 'nothing (unconditional)'}.",
             ""]
    lines += _data_section(getattr(g, "data_fingerprint_", None),
                           train_rows=training.get("num_images"), val_rows=None)
    lines += _schema_section(g.schema_)
    lines += ["## Cleaning findings", "",
              f"- rows whose image was missing or unreadable were skipped: "
              f"{training.get('skipped_rows', 'not recorded')}", ""]
    lines += ["## Training", ""]
    shown = {k: v for k, v in training.items() if isinstance(v, int | float | str)}
    lines += [f"- {k}: {_number(v)}" for k, v in shown.items()] or ["- not recorded"]
    lines += ["", "## Validation metrics", "",
              "- the training log (`train_log.jsonl`) holds the validation loss at fixed noise; "
              "`polymodal generate evaluate DIR TABLE` measures FD, KID, precision/recall "
              "and conditional accuracy on real images", ""]
    lines += ["## Intended use and known limits", "",
              "- Intended: images like the training images, for the condition values seen in "
              "training (sample grids in `samples/`); generated images are synthetic and "
              "should be marked as such when they join a table (`is_synthetic`).",
              "- A condition value never seen in training reads as unknown: its images come "
              "from the unconditional model."]
    for column, info in g.conditions_.items():
        if info.get("modality") == "numeric" and "min" in info:
            lines.append(f"- `{column}` was seen between {_number(info['min'])} and "
                         f"{_number(info['max'])}; values outside extrapolate.")
    lines.append("")
    lines += _versions_section(versions, getattr(g, "recipe_", None))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- sections


def _data_section(fingerprint: dict | None, *, train_rows, val_rows) -> list[str]:
    lines = ["## Data", ""]
    if fingerprint:
        lines += [f"- training table: {fingerprint['rows']:,} rows x {fingerprint['columns']} "
                  "columns",
                  f"- sha256 of its cells: `{fingerprint['sha256']}` (file paths hashed as "
                  "paths, not contents)"]
        if fingerprint.get("sample_of_rows"):
            lines.append(f"- the table streamed ({fingerprint['sample_of_rows']:,} rows); the "
                         "rows and hash above are its seeded sample's")
    else:
        lines.append("- training table fingerprint: not recorded (saved by an older polymodal)")
    if train_rows:
        lines.append(f"- rows trained on: {train_rows:,}")
    if val_rows is not None:
        lines.append(f"- validation rows: {val_rows:,}")
    return [*lines, ""]


def _schema_section(schema) -> list[str]:
    lines = ["## Schema", "", "| column | modality | why |", "|---|---|---|"]
    for name, modality, reason in schema.summary_rows():
        role = " (label)" if name == schema.label else ""
        lines.append(f"| {_cell(name)}{role} | {modality} | {_cell(reason)} |")
    return [*lines, ""]


def _cleaning_section(report) -> list[str]:
    lines = ["## Cleaning findings", ""]
    lines += [f"- {issue}" for issue in report.issues] or ["- none found"]
    return [*lines, ""]


def _use_section(p) -> list[str]:
    lines = ["## Intended use and known limits", "",
             f"- Intended: predicting `{p.schema_.label}` for rows like the training rows, with the "
             "same columns (image, audio and text columns may be absent; they then count "
             "as missing)."]
    balance = getattr(p.cleaning_report_, "class_balance", None)
    if balance is not None:
        few = sorted((k for k, v in balance.counts.items() if v < FEW_ROWS), key=str)
        if few:
            shown = ", ".join(f"`{k}` ({balance.counts[k]})" for k in few[:MAX_TABLE_ROWS])
            lines.append(f"- Classes with fewer than {FEW_ROWS} rows, whose predictions rest "
                         f"on little evidence: {shown}.")
        if balance.imbalanced:
            lines.append(f"- {balance.message}")
    for finding in getattr(p.cleaning_report_, "leakage", []):
        lines.append(f"- Possible leakage: {finding.message}")
    lines.append("- Modalities that did not help: not measured at save time; the evaluation "
                 "report's per-modality ablation (`polymodal evaluate`) shows them.")
    lines.append("- Categories never seen in training read as unknown; numbers far outside "
                 "the training range are clipped to 10 standard deviations.")
    return [*lines, ""]


def _versions_section(versions: dict, recipe) -> list[str]:
    from polymodal.recipes.base import to_dict

    lines = ["## Versions", ""]
    lines += [f"- {k} {v}" for k, v in versions.items()]
    lines += ["", "## Resolved recipe", ""]
    if recipe is None:
        lines.append("Not recorded (saved before recipes existed).")
    else:
        lines += ["```json", json.dumps(json_safe(to_dict(recipe)), indent=2), "```"]
    return [*lines, ""]


# ---------------------------------------------------------------------- helpers


def _val_metric_name(p) -> str:
    columns = [c for c in p.leaderboard_.columns if str(c).startswith("val_")]
    return columns[0][4:] if columns else "metric"


def _frame_table(frame) -> list[str]:
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.head(MAX_TABLE_ROWS).itertuples(index=False):
        lines.append("| " + " | ".join(_cell(_number(v)) for v in row) + " |")
    return lines


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
