"""What a fitted predictor hands back on a user's table: the prediction table and the
evaluation report (``polymodal predict`` and ``polymodal evaluate``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.api.streamed_fit import peak_rss_bytes
from polymodal.data.cells import number_or_none
from polymodal.data.readers import read_table, table_notes
from polymodal.data.streaming import PREDICT_CHUNK_ROWS, open_stream
from polymodal.errors import DataError
from polymodal.files import atomic_path

# The service reads a request's numbers exactly as a table's numeric column is read.
__all__ = ["check_output_file", "evaluate_to_report", "number_or_none", "prediction_frame",
           "unseen_lines", "write_predictions"]


# What a predictions file may be called: its suffix picks how it is written.
OUTPUT_SUFFIXES = ("", ".csv", ".tsv", ".parquet")


def check_output_file(path: str | os.PathLike, *inputs, model_dir=None) -> None:
    """Refuse, before any work, an output file that is a folder, one of ``inputs`` (the
    files a command reads) or inside ``model_dir``: writing the predictions must never
    replace the user's table or a file of the model (and saving a model again replaces
    its folder whole, predictions there included)."""
    out = Path(path)
    if model_dir is not None and out.resolve().is_relative_to(Path(model_dir).resolve()):
        raise DataError(f"--out {out} is inside the model folder {model_dir}, whose files "
                        "are the model's (saving it again replaces the folder whole); "
                        "choose a file outside it")
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; pass a file name such as {out / 'predictions.csv'}")
    if out.suffix.lower() not in OUTPUT_SUFFIXES:  # CSV text in a .xlsx/.json file misleads
        name = out.stem if out.stem.lower().endswith(".csv") else f"{out.stem}.csv"
        raise DataError(f"--out {out}: predictions are written as CSV, TSV or Parquet, not "
                        f"{out.suffix!r}; name the file {name} (or .tsv, .parquet)")
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
    problem, proba = predictor.problem_type_, None
    if problem in ("binary", "multiclass"):  # the classes from the probabilities: one pass
        proba = predictor.predict_proba(df)  # (N, K), in classes_ order
        predictions = np.asarray(predictor.transform_.decode_label(proba),
                                 dtype=predictor.classes_.dtype)
    else:
        predictions = predictor.predict(df)  # (N,)
    if problem == "multilabel":
        delimiter = schema.columns[schema.label].delimiter or "|"
        predictions = [delimiter.join(map(str, tags)) for tags in predictions]
        proba = predictor.predict_proba(df)
    frame["prediction"] = predictions
    if proba is not None:
        proba = pd.DataFrame(proba, columns=list(predictor.classes_))
        frame = pd.concat([frame, proba.add_prefix("proba_")], axis=1)
    return frame


def write_predictions(predictor, table, out_file: str | os.PathLike) -> dict:
    """Predict every row of ``table`` into ``out_file`` (CSV; TSV or Parquet when it ends
    in ``.tsv`` or ``.parquet``), written atomically. A columnar table of more than
    :data:`~polymodal.data.streaming.PREDICT_CHUNK_ROWS` rows, or one too large for memory
    (:func:`~polymodal.data.streaming.open_stream`), is read and written in chunks of about
    that many rows, in order, so memory holds one chunk; the file is the same either way.
    Returns ``{"rows", "streamed", "chunks", "peak_rss_bytes"}``."""
    stream = open_stream(table, min_rows=PREDICT_CHUNK_ROWS)
    frames = [table] if stream is None else stream.frames()
    suffix = Path(out_file).suffix.lower()
    parquet, sep = suffix == ".parquet", "\t" if suffix == ".tsv" else ","
    rows = chunks = 0
    unseen: dict[str, dict[str, int]] = {}
    with atomic_path(out_file) as tmp:
        writer = None
        with open(tmp, "wb") as handle:
            for chunk in frames:
                df = read_table(chunk)
                for note in table_notes(df):  # the rows the reader skipped have no prediction
                    warnings.warn(note, UserWarning, stacklevel=2)
                frame = prediction_frame(predictor, df)  # (a frame carries no notes on)
                for column, counts in predictor.unseen_categories(df).items():
                    totals = unseen.setdefault(column, {})
                    for value, count in counts.items():
                        totals[value] = totals.get(value, 0) + count
                if parquet:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    batch = pa.Table.from_pandas(frame, preserve_index=False)
                    writer = writer or pq.ParquetWriter(handle, batch.schema)
                    writer.write_table(batch)
                else:
                    handle.write(frame.to_csv(index=False, header=chunks == 0, sep=sep).encode("utf-8"))
                rows, chunks = rows + len(frame), chunks + 1
            if writer is not None:
                writer.close()
    return {"rows": rows, "streamed": stream is not None, "chunks": chunks,
            "peak_rss_bytes": peak_rss_bytes(), "unseen": unseen}


def unseen_lines(unseen: dict[str, dict[str, int]], *, shown: int = 3) -> list[str]:
    """One line per column of :meth:`Predictor.unseen_categories`' counts: how many rows
    hold values the model has no category for, the commonest few, and what it means."""
    lines = []
    for column, counts in unseen.items():
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        examples = ", ".join(f"{value!r} ({count:,})" for value, count in ranked[:shown])
        more = f" and {len(ranked) - shown:,} more" if len(ranked) > shown else ""
        lines.append(f"column {column!r}: {sum(counts.values()):,} rows hold values the model "
                     f"never learned, e.g. {examples}{more}; they were predicted as an unknown "
                     "category (fit on rows that have them to learn them)")
    return lines


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
