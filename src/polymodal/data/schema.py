"""The schema: each column's modality, the reason it was chosen, and the label's problem type.

:func:`infer_schema` picks one of :data:`MODALITIES` for every column of a table, with a
reason that quotes the numbers it decided on (the per-column tests are in
:mod:`polymodal.data.column_reasons`), and decides the label's problem type. Anything it
gets wrong is fixed with a one-line override (``zip=categorical``, see
:func:`parse_overrides`).
"""

from __future__ import annotations

import difflib
import numbers
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from polymodal.data.cells import (
    cell_kind,
    hashable_values,
    parse_number_strings,
    present_mask,
)
from polymodal.data.column_reasons import column_reason
from polymodal.data.column_rules import (
    INT_CODE_MAX_DISTINCT,
    all_integers,
    class_limit,
    fmt_count,
    fmt_number,
    fmt_rows,
    fmt_value,
    integer_codes,
)
from polymodal.errors import ConfigError, DataError, SchemaError

MODALITIES = (
    "image",
    "text",
    "audio",
    "numeric",
    "categorical",
    "multilabel",
    "datetime",
    "ignored",
)
PROBLEM_TYPES = ("binary", "multiclass", "regression", "multilabel")
# Modalities a row may lack: they get presence masks, and a table to predict on may leave
# their columns out.
OPTIONAL_MODALITIES = ("image", "audio", "text")


@dataclass
class ColumnSchema:
    """One column: its modality, why, and whether the user said so.

    ``delimiter`` is set for multilabel columns whose cells are strings such as
    ``"a|b"``: the character that separates the tags (``None`` for list cells).
    """

    name: str
    modality: str
    reason: str
    overridden: bool = False
    delimiter: str | None = None


@dataclass
class Schema:
    """Column name -> modality with reasons, plus the label and its problem type."""

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    label: str | None = None
    problem_type: str | None = None
    problem_reason: str | None = None

    def features(self) -> list[str]:
        """Columns the models use: everything but the label and ignored columns, in table order."""
        return [
            c.name
            for c in self.columns.values()
            if c.name != self.label and c.modality != "ignored"
        ]

    def by_modality(self, modality: str) -> list[str]:
        """Feature columns of one modality, in table order."""
        return [n for n in self.features() if self.columns[n].modality == modality]

    def modality(self, column: str) -> str:
        return self.columns[column].modality

    def summary_rows(self) -> list[tuple[str, str, str]]:
        """``(column, modality, reason)`` for every column in table order, for printing."""
        return [(c.name, c.modality, c.reason) for c in self.columns.values()]

    def to_dict(self) -> dict:
        return {
            "columns": [asdict(c) for c in self.columns.values()],
            "label": self.label,
            "problem_type": self.problem_type,
            "problem_reason": self.problem_reason,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        cols = {c["name"]: ColumnSchema(**c) for c in d["columns"]}
        return cls(
            columns=cols,
            label=d.get("label"),
            problem_type=d.get("problem_type"),
            problem_reason=d.get("problem_reason"),
        )


# --------------------------------------------------------------------------- overrides


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["zip=categorical", "notes=text"]`` -> ``{"zip": "categorical", "notes": "text"}``.

    The column is everything before the last ``=``, so column names may contain ``=``.
    """
    overrides: dict[str, str] = {}
    for item in items:
        column, sep, modality = str(item).rpartition("=")
        column, modality = column.strip(), modality.strip().lower()
        if not sep or not column or not modality:
            raise SchemaError(
                f"override {item!r} is malformed: write COLUMN=MODALITY, e.g. 'zip=categorical' "
                f"(modalities: {', '.join(MODALITIES)})"
            )
        _check_modality(modality, f"override {item!r}")
        if column in overrides and overrides[column] != modality:
            raise SchemaError(
                f"column {column!r} is overridden twice ({overrides[column]!r} and {modality!r}); keep one"
            )
        overrides[column] = modality
    return overrides


def _check_modality(modality: str, where: str) -> None:
    if modality not in MODALITIES:
        close = difflib.get_close_matches(str(modality), MODALITIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SchemaError(
            f"{where}: unknown modality {modality!r}{hint}; choose one of {', '.join(MODALITIES)}"
        )


def _no_such_column(kind: str, name, columns) -> SchemaError:
    close = difflib.get_close_matches(str(name), [str(c) for c in columns], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in list(columns)[:20])
    more = ", ..." if len(columns) > 20 else ""
    return SchemaError(f"{kind} column {name!r} is not in the table{hint} (columns: {shown}{more})")


# --------------------------------------------------------------------------- columns


def infer_column(
    series: pd.Series,
    *,
    base_dir: str | os.PathLike | None = None,
    sample_size: int = 200,
    seed: int = 0,
) -> ColumnSchema:
    """The modality of one column, with the reason, as :func:`infer_schema` picks it."""
    modality, reason, delimiter = column_reason(
        series, base_dir=base_dir, sample_size=sample_size, seed=seed
    )
    return ColumnSchema(name=series.name, modality=modality, reason=reason, delimiter=delimiter)


# --------------------------------------------------------------------------- label


def _label_error(name, message: str) -> SchemaError:
    return SchemaError(f"label {name!r} {message}")


def _single_class_error(name, value, count: int) -> SchemaError:
    return _label_error(
        name,
        f"has a single class {fmt_value(value)} in {fmt_rows(count)}: a classifier needs at least two; "
        f"check that the table was not filtered to one class, or pick another label column",
    )


def _class_counts(present: pd.Series) -> pd.Series:
    return hashable_values(present).value_counts()


def _label_problem(
    series: pd.Series, inferred: ColumnSchema, requested: str
) -> tuple[str, str, str, str | None]:
    """``(problem_type, problem_reason, label modality, delimiter)`` for the label column."""
    name = series.name
    present = series[present_mask(series)]
    n = len(present)
    if n == 0:
        raise _label_error(
            name,
            f"has no labelled rows: all {fmt_count(len(series))} cells are missing; fill in the "
            "label of some rows (at least 2 per class), or pick a label column with values",
        )
    delimiter = inferred.delimiter

    if requested == "regression":
        as_text = present.astype(str)
        numbers_, parsed = parse_number_strings(as_text)
        if pd.api.types.is_bool_dtype(series.dtype) or not parsed.all():
            bad_pos = int(np.flatnonzero(~parsed)[0]) if not parsed.all() else 0
            raise _label_error(
                name,
                f"cannot be a regression target: {fmt_count(int((~parsed).sum()))} of {fmt_count(n)} values are "
                f"not numbers, e.g. {fmt_value(present.iloc[bad_pos])} (row {present.index[bad_pos]}); "
                f"use problem_type='multiclass' or clean the column",
            )
        return "regression", "regression: set by user", "numeric", None

    if requested == "multilabel":
        if inferred.modality != "multilabel":
            delimiter = None  # every cell is one tag
        return "multilabel", "multilabel: set by user", "multilabel", delimiter

    counts = _class_counts(present)
    nd = len(counts)
    if requested in ("binary", "multiclass", "auto_classification"):
        if nd == 1:
            raise _single_class_error(name, counts.index[0], n)
        if requested == "auto_classification":
            problem = "binary" if nd == 2 else "multiclass"
            return (
                problem,
                f"{problem}: set by user (categorical, {fmt_count(nd)} classes)",
                "categorical",
                None,
            )
        if requested == "binary" and nd != 2:
            raise _label_error(
                name,
                f"has {fmt_count(nd)} distinct values in {fmt_rows(n)}, not the 2 a binary problem needs; "
                f"use problem_type='multiclass'",
            )
        return requested, f"{requested}: set by user", "categorical", None

    # problem_type == "auto": decide from the values.
    if (inferred.modality == "multilabel" and inferred.delimiter) or cell_kind(
        present.iloc[0]
    ) == "list":
        return "multilabel", inferred.reason, "multilabel", delimiter
    if nd == 1:
        raise _single_class_error(name, counts.index[0], n)
    if inferred.modality in ("image", "audio"):
        raise _label_error(
            name,
            f"holds {inferred.modality} cells ({inferred.reason}); a predictor's label must be "
            f"classes, numbers or tags — for images from conditions use a Generator",
        )
    values = _label_numbers(present)
    if nd == 2:
        shown = ", ".join(fmt_value(v) for v in sorted(counts.index, key=str))
        return "binary", f"binary: 2 classes ({shown}) in {fmt_rows(n)}", "categorical", None
    if values is None:
        reason = f"multiclass: {fmt_count(nd)} distinct values in {fmt_rows(n)}"
        if nd > class_limit(n):
            reason += f" — more classes than expected (~{class_limit(n)}); check this is the label"
        return "multiclass", reason, "categorical", None
    integral = all_integers(values)
    lo, hi = fmt_number(values.min()), fmt_number(values.max())
    # A few integers are classes (ratings 1-5, digits); many are classes only when numbered
    # like codes, from 0 or 1 (an inspection score 66-100 is a quantity).
    many_codes = (nd <= min(class_limit(n), 0.05 * n)
                  and integer_codes(float(values.min()), float(values.max()), nd))
    if integral and (nd <= INT_CODE_MAX_DISTINCT or many_codes):
        return (
            "multiclass",
            (
                f"multiclass: {nd} distinct integers ({lo}–{hi}) in {fmt_rows(n)} — read as class codes; "
                f"pass problem_type='regression' if they are quantities"
            ),
            "categorical",
            None,
        )
    kind = "integers" if integral else "floats"
    return (
        "regression",
        (f"regression: {kind}, {fmt_count(nd)} distinct values in {fmt_rows(n)} (range {lo} to {hi})"),
        "numeric",
        None,
    )


def _label_numbers(present: pd.Series) -> np.ndarray | None:
    """The label's values as floats when all of them are numbers (or number strings), else None."""
    if pd.api.types.is_bool_dtype(present.dtype):
        return None
    if pd.api.types.is_numeric_dtype(present.dtype):
        return present.to_numpy(dtype=np.float64)
    if any(cell_kind(c) not in ("str", "number") for c in present.iloc[:50]):
        return None
    text = present.astype(str).str.strip()
    if text.str.match(r"^0\d").any():
        return None  # '02134' is a code, not a number
    numbers_, parsed = parse_number_strings(text)
    return numbers_ if parsed.all() else None


_MODALITY_TO_PROBLEM = {"numeric": "regression", "multilabel": "multilabel"}


# --------------------------------------------------------------------------- schema


def infer_schema(
    df: pd.DataFrame,
    *,
    label: str | None = None,
    overrides: dict[str, str] | None = None,
    problem_type: str = "auto",
    sample_size: int = 200,
    base_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Schema:
    """Pick every column's modality, with a one-line reason, and the label's problem type.

    Args:
        df: the table. Image/audio cells may be paths, bytes, arrays (or PIL images).
        label: the column to predict; kept in ``Schema.columns`` but not a feature.
        overrides: ``{column: modality}`` that wins over inference (see :func:`parse_overrides`).
            Overriding the label to ``numeric``/``categorical``/``multilabel`` sets its problem type.
        problem_type: ``"auto"`` or one of :data:`PROBLEM_TYPES`.
        sample_size: how many cells per column are decoded to test for images/audio.
        base_dir: folder that relative paths resolve against; default ``df.attrs["base_dir"]``.
        seed: seeds the sample of cells, so the same table always gets the same schema.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"infer_schema needs a pandas DataFrame; got {type(df).__name__}")
    if not isinstance(sample_size, numbers.Integral) or sample_size < 1:
        raise ConfigError(f"sample_size must be a positive integer; got {sample_size!r}")
    if problem_type not in ("auto", *PROBLEM_TYPES):
        raise ConfigError(
            f"problem_type {problem_type!r} is unknown; choose 'auto' or one of {', '.join(PROBLEM_TYPES)}"
        )
    names = list(df.columns)
    bad_names = [c for c in names if not isinstance(c, str)]
    if bad_names:
        raise SchemaError(
            f"column names must be strings; got {bad_names[0]!r} ({type(bad_names[0]).__name__}); "
            f"rename with df.columns = df.columns.astype(str)"
        )
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise SchemaError(
            f"column name(s) {', '.join(map(repr, dupes))} appear more than once; rename them"
        )
    overrides = dict(overrides or {})
    for column, modality in overrides.items():
        if column not in df.columns:
            raise _no_such_column("overridden", column, names)
        _check_modality(modality, f"override for column {column!r}")
    if label is not None and label not in df.columns:
        raise _no_such_column("label", label, names)
    if problem_type != "auto" and label is None:
        raise ConfigError(f"problem_type={problem_type!r} needs a label column; pass label=...")
    if base_dir is None:
        base_dir = df.attrs.get("base_dir")

    schema = Schema(label=label)
    for name in names:
        inferred = infer_column(df[name], base_dir=base_dir, sample_size=sample_size, seed=seed)
        if name in overrides:
            schema.columns[name] = _overridden(df[name], inferred, overrides[name])
        else:
            schema.columns[name] = inferred

    if label is not None:
        requested = problem_type
        if label in overrides and requested == "auto":
            requested = _requested_from_override(label, overrides[label])
        problem, reason, modality, delimiter = _label_problem(
            df[label], schema.columns[label], requested
        )
        column = schema.columns[label]
        schema.problem_type, schema.problem_reason = problem, reason
        column.modality = modality
        column.delimiter = delimiter if modality == "multilabel" else None
        column.reason = f"label — {reason}"
        column.overridden = column.overridden or problem_type != "auto"
    # The reader's word on how a column was recognised (a Hugging Face feature, a metadata
    # file, a folder layout) travels with the column's reason.
    for name, origin in (df.attrs.get("column_notes") or {}).items():
        if name in schema.columns:
            schema.columns[name].reason += f" — read as {origin}"
    return schema


def _requested_from_override(label: str, modality: str) -> str:
    if modality in _MODALITY_TO_PROBLEM:
        return _MODALITY_TO_PROBLEM[modality]
    if modality == "categorical":
        return "auto_classification"
    raise SchemaError(
        f"label {label!r} is overridden to {modality!r}, which cannot be predicted; "
        f"override it to categorical, numeric or multilabel"
    )


def _overridden(series: pd.Series, inferred: ColumnSchema, modality: str) -> ColumnSchema:
    """The user's modality for a column, with the inferred one kept in the reason for reference."""
    delimiter = inferred.delimiter
    present = series[present_mask(series)]
    if (
        modality == "multilabel"
        and delimiter is None
        and len(present)
        and isinstance(present.iloc[0], str)
    ):
        delimiter = (
            "|"  # strings with no detected delimiter: one tag per cell unless '|' splits them
        )
    return ColumnSchema(
        name=inferred.name,
        modality=modality,
        reason=f"{modality}: set by user (inferred {inferred.reason})",
        overridden=True,
        delimiter=delimiter if modality == "multilabel" else None,
    )
