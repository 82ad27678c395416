"""Checks over the whole table for the cleaning report: duplicate rows, and feature
columns that alone predict the label (likely leakage)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from polymodal.data.cells import (
    cell_tags,
    column_numbers,
    datetime_seconds,
    hashable_values,
    present_mask,
)
from polymodal.data.schema import Schema

# A single feature that predicts the label at least this well is reported as likely leakage.
LEAKAGE_MIN_ACCURACY = 0.98
LEAKAGE_MIN_ABS_CORR = 0.98
# Leakage needs this many rows whose feature value repeats, or the figure means nothing.
LEAKAGE_MIN_SUPPORT = 20
# Continuous features are cut into this many quantile bins to test value -> class mappings.
LEAKAGE_NUM_BINS = 20
# Leakage is judged on a seeded sample of at most this many rows: a column that predicts
# the label shows it on a sample as well, and the check's cost stops growing with the
# table (bench/RESULTS.md, 'cleaning_probe').
LEAKAGE_MAX_ROWS = 100_000

@dataclass
class LeakageFinding:
    """A feature column that alone predicts the label (almost) perfectly."""

    column: str
    metric: str  # "accuracy" (classification) or "abs_correlation" / "r2" (regression)
    score: float
    support_rows: int
    message: str


# --------------------------------------------------------------------------- duplicates


def _needs_keys(series: pd.Series) -> bool:
    """Object and categorical columns may hold unhashable cells (lists, arrays)."""
    return series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype)


def _comparable(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: hashable_values(df[c].astype(object) if _needs_keys(df[c]) else df[c])
            for c in columns
        },
        index=pd.RangeIndex(len(df)),
    )


def duplicate_rows(df: pd.DataFrame, columns: list[str]) -> dict[int, int]:
    """Duplicate row -> first row with the same values in ``columns``."""
    if not columns or len(df) < 2:
        return {}
    frame = _comparable(df, columns)
    # One 64-bit hash per row (NaN equals NaN here, as a user would expect), then the rows
    # whose hashes collide compared by value (bench/RESULTS.md, 'cleaning_probe').
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    _, first_rows, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    first_of = first_rows[inverse.reshape(-1)]  # (N,) the first row with the same hash
    dup_rows = np.flatnonzero(first_of != np.arange(len(frame)))
    if len(dup_rows):  # a hash is not the values ("1" and 1 hash alike): compare them
        dups = frame.iloc[dup_rows].reset_index(drop=True)
        firsts = frame.iloc[first_of[dup_rows]].reset_index(drop=True)
        same = ((dups == firsts) | (dups.isna() & firsts.isna())).all(axis=1).to_numpy()
        dup_rows = dup_rows[same]
    return {int(r): int(first_of[r]) for r in dup_rows}


# --------------------------------------------------------------------------- leakage


def _classification_leak(keys: pd.Series, labels: pd.Series) -> tuple[float, float, int] | None:
    """``(accuracy, majority baseline, support)`` of predicting the label from the value alone.

    Only rows whose value repeats count: a unique value "predicts" its own row perfectly
    and says nothing.
    """
    sizes = keys.map(keys.value_counts())
    keep = (sizes >= 2).to_numpy()
    support = int(keep.sum())
    if support < LEAKAGE_MIN_SUPPORT:
        return None
    table = pd.crosstab(keys[keep], labels[keep])
    accuracy = table.max(axis=1).sum() / support
    baseline = table.sum(axis=0).max() / support
    return float(accuracy), float(baseline), support


def _feature_keys(series: pd.Series, modality: str) -> pd.Series:
    """A column as hashable keys; continuous numbers are cut into quantile bins."""
    if modality in ("numeric", "datetime"):
        numbers = column_numbers(series) if modality == "numeric" else datetime_seconds(series)
        numbers = np.where(np.isinf(numbers), np.nan, numbers)  # read as missing, as in training
        values = pd.Series(numbers, index=series.index)
        if values.nunique() > LEAKAGE_NUM_BINS:
            values = pd.qcut(values, LEAKAGE_NUM_BINS, labels=False, duplicates="drop")
        return values.astype(object).where(values.notna(), None)
    return hashable_values(series)



def find_leakage(df: pd.DataFrame, schema: Schema, candidates: list[str]) -> list[LeakageFinding]:
    """The ``candidates`` columns that alone predict the label, judged on a seeded sample
    of at most ``LEAKAGE_MAX_ROWS`` rows."""
    if len(df) > LEAKAGE_MAX_ROWS:
        df = df.sample(n=LEAKAGE_MAX_ROWS, random_state=0).sort_index()
    label = schema.label
    label_series = df[label]
    findings = []
    if schema.problem_type == "regression":
        y = column_numbers(label_series)
        for name in candidates:
            if schema.modality(name) != "numeric":
                continue
            x = column_numbers(df[name])
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < LEAKAGE_MIN_SUPPORT or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
                continue
            corr = float(np.corrcoef(x[ok], y[ok])[0, 1])
            if abs(corr) >= LEAKAGE_MIN_ABS_CORR:
                findings.append(
                    LeakageFinding(
                        column=name,
                        metric="abs_correlation",
                        score=abs(corr),
                        support_rows=int(ok.sum()),
                        message=(
                            f"likely leakage: {name!r} alone has correlation {corr:+.3f} with the label "
                            f"{label!r} over {int(ok.sum()):,} rows — check it is known before the label is; "
                            f"drop it with {name}=ignored"
                        ),
                    )
                )
        return findings

    label_mask = present_mask(label_series)
    if schema.problem_type == "multilabel":
        delim = schema.columns[label].delimiter
        labels = label_series.map(lambda c: "|".join(cell_tags(c, delim)))
    else:
        labels = hashable_values(label_series)
    for name in candidates:
        modality = schema.modality(name)
        if modality in ("image", "audio"):
            continue
        keys = _feature_keys(df[name], modality)
        rows = label_mask & present_mask(df[name]) & keys.notna().to_numpy()
        found = _classification_leak(keys[rows].astype(str), labels[rows].astype(str))
        if found is None:
            continue
        accuracy, baseline, support = found
        # Beating the majority class matters: on a 99%-one-class label everything scores 99%.
        if accuracy < LEAKAGE_MIN_ACCURACY or (1 - accuracy) > 0.25 * (1 - baseline):
            continue
        binned = " (binned into quantiles)" if modality in ("numeric", "datetime") else ""
        findings.append(
            LeakageFinding(
                column=name,
                metric="accuracy",
                score=accuracy,
                support_rows=support,
                message=(
                    f"likely leakage: {name!r}{binned} alone predicts the label {label!r} with "
                    f"{accuracy:.1%} accuracy on {support:,} rows whose value repeats "
                    f"(majority-class baseline {baseline:.1%}) — check it is known before the label is; "
                    f"drop it with {name}=ignored"
                ),
            )
        )
    return findings
