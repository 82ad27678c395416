"""What a fitted predictor hands back on a user's table: the prediction table and the
evaluation report (``polymodal predict`` and ``polymodal evaluate``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from polymodal.data.cells import number_or_none
from polymodal.data.readers import read_table, table_notes
from polymodal.errors import DataError

# The service reads a request's numbers exactly as a table's numeric column is read.
__all__ = ["check_output_file", "evaluate_to_report", "number_or_none", "prediction_frame"]


def check_output_file(path: str | os.PathLike, *inputs) -> None:
    """Refuse, before any work, an output file that is a folder or one of ``inputs`` (the
    files a command reads): writing the predictions must never replace the user's table."""
    out = Path(path)
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; pass a file name such as {out / 'predictions.csv'}")
    for source in inputs:
        if not isinstance(source, str | os.PathLike):
            continue
        source = Path(source)
        same = (out.exists() and source.exists() and os.path.samefile(out, source)) or (
            out.absolute() == source.absolute())
        if same:
            raise DataError(f"--out {out} is the input table {source}; writing there would "
                            "replace it — choose another file name")


def prediction_frame(predictor, table) -> pd.DataFrame:
    """ID-like columns of ``table`` (a path or DataFrame), the prediction, and one
    probability column per class, in the table's row order."""
    df = read_table(table)
    for note in table_notes(df):  # the rows the reader skipped have no prediction
        warnings.warn(note, UserWarning, stacklevel=2)
    schema = predictor.schema_
    ids = [c for c, col in schema.columns.items()
           if col.modality == "ignored" and "ID-like" in col.reason and c in df.columns]
    frame = df[ids].reset_index(drop=True).copy()
    predictions = predictor.predict(df)  # (N,)
    if predictor.problem_type_ == "multilabel":
        delimiter = schema.columns[schema.label].delimiter or "|"
        predictions = [delimiter.join(map(str, tags)) for tags in predictions]
    frame["prediction"] = predictions
    if predictor.problem_type_ != "regression":
        proba = pd.DataFrame(predictor.predict_proba(df),  # (N, K), in classes_ order
                             columns=list(predictor.classes_))
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
    for note in table_notes(df):  # the rows the reader skipped are not scored
        warnings.warn(note, UserWarning, stacklevel=2)
    try:
        from polymodal.evaluate.predictor_report import write_predictor_report
    except ImportError:  # the report module is optional; the metrics are not
        return {"metrics": predictor.evaluate(df)}
    return write_predictor_report(predictor, df, out_dir, command=command)
