"""What a fitted predictor hands back on a user's table: the prediction table and the
evaluation report (``polymodal predict`` and ``polymodal evaluate``)."""

from __future__ import annotations

import os

import pandas as pd

from polymodal.data.readers import read_table


def prediction_frame(predictor, table) -> pd.DataFrame:
    """ID-like columns of ``table`` (a path or DataFrame), the prediction, and one
    probability column per class, in the table's row order."""
    df = read_table(table)
    schema = predictor.schema_
    ids = [c for c, col in schema.columns.items()
           if col.modality == "ignored" and "ID-like" in col.reason and c in df.columns]
    frame = df[ids].reset_index(drop=True).copy()
    predictions = predictor.predict(df).reset_index(drop=True)
    if predictor.problem_type_ == "multilabel":
        delimiter = schema.columns[schema.label].delimiter or "|"
        predictions = predictions.map(lambda tags: delimiter.join(map(str, tags)))
    frame["prediction"] = predictions
    if predictor.problem_type_ != "regression":
        proba = predictor.predict_proba(df).reset_index(drop=True)
        frame = pd.concat([frame, proba.add_prefix("proba_")], axis=1)
    return frame


def evaluate_to_report(predictor, table, out_dir: str | os.PathLike, *,
                       command: str | None = None) -> dict:
    """Score ``predictor`` on ``table`` (a labelled path or DataFrame) and write
    ``report.md`` + ``report.html`` into ``out_dir``.

    Returns ``{"metrics": dict, "report_md": Path, "report_html": Path, ...}``; only
    ``{"metrics": dict}`` (and nothing written) where the report module is not installed.
    """
    df = read_table(table)
    try:
        from polymodal.evaluate.report import write_predictor_report
    except ImportError:  # the report module is optional; the metrics are not
        return {"metrics": predictor.evaluate(df)}
    return write_predictor_report(predictor, df, out_dir, command=command)
