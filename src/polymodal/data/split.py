"""Which rows train and which validate: labelled rows only, a seeded, stratified split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from polymodal.data.cells import hashable_values, present_mask
from polymodal.data.number_encoding import column_floats
from polymodal.errors import DataError, SchemaError

# Validation beyond this many rows buys little selection accuracy and costs scoring time.
MAX_VALIDATION_ROWS = 5000


def take_rows(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """Rows by position, renumbered, keeping the table's attrs (its base_dir)."""
    part = df.iloc[positions].reset_index(drop=True)
    part.attrs = dict(df.attrs)
    return part


def labelled_positions(df: pd.DataFrame, label: str, what: str, *,
                       numbers: bool = False) -> np.ndarray:
    """Positions of the rows of ``df`` whose ``label`` is present (with ``numbers``, a
    regression label: a finite number, as the cleaning report reads it); an error when
    none is."""
    if label not in df.columns:
        raise SchemaError(f"{what} has no label column {label!r}; its columns are "
                          f"{list(df.columns)[:20]}")
    present = present_mask(df[label])
    if numbers:  # "inf" or "n/a" in a regression label is no target to learn
        present &= np.isfinite(column_floats(df[label]))
    if not present.any():
        raise DataError(f"no labelled rows: every one of the {len(df):,} rows of {what} "
                        f"lacks a value in label column {label!r}; fill in the label of at "
                        "least 2 rows per class")
    return np.flatnonzero(present)


def validation_split(df: pd.DataFrame, label: str, problem_type: str, *, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions (train, validation): a seeded split of ``fraction`` of the rows
    (at most :data:`MAX_VALIDATION_ROWS`), stratified by class when every class can be split."""
    from sklearn.model_selection import train_test_split

    n = len(df)
    n_val = max(1, min(MAX_VALIDATION_ROWS, int(round(fraction * n))))
    if n - n_val < 2:
        raise DataError(f"the training table has {n} labelled row(s) (n_samples={n}); a "
                        "predictor needs at least 3 (2 to train on, 1 to validate on)")
    stratify = None
    if problem_type in ("binary", "multiclass"):
        keys = hashable_values(df[label]).astype(str).to_numpy()
        counts = pd.Series(keys).value_counts()
        if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts):
            # Integer codes in sorted-key order: the same split as the keys give, without
            # scikit-learn sorting a million strings.
            stratify = pd.factorize(keys, sort=True)[0]
    train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed,
                                          stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)
