"""Building, sampling and splitting the built-in datasets' DataFrames.

Sampling and splitting are seeded and deterministic, and return frames with a fresh
0..N-1 index, because a ``Batch.index`` means "position in the table", not a pandas label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from polymodal.errors import ConfigError

DEFAULT_TEST_FRACTION = 0.2


def image_column(images) -> np.ndarray:
    """A 1-D object array whose cells are the given (H, W[, C]) uint8 images.

    Cells of a stacked (N, H, W) array become views of it, so no pixels are copied.
    (``pd.DataFrame({"image": list_of_arrays})`` may not keep one array per cell.)
    """
    column = np.empty(len(images), dtype=object)
    for i, image in enumerate(images):
        column[i] = image
    return column


def check_n(n: int | None, *, available: int | None, dataset: str, split: bool) -> None:
    """Validate the ``n`` argument of ``load``/``export`` (None means "all rows")."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ConfigError(f"n={n!r} for dataset {dataset!r} must be a whole number of rows or None")
    minimum = 2 if split else 1
    if n < minimum:
        raise ConfigError(
            f"n={n} for dataset {dataset!r} is too small; pass n >= {minimum}"
            + (" (split=True needs a train and a test row)" if split else "")
        )
    if available is not None and n > available:
        raise ConfigError(
            f"n={n} but dataset {dataset!r} has only {available:,} rows; pass n <= {available} or n=None"
        )


def sample_rows(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """``n`` rows drawn without replacement (all rows, in order, when ``n`` is None)."""
    if n is None or n >= len(df):
        return df.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    # Sorted so that a sample keeps the source order, like a filtered view of the table.
    rows = np.sort(rng.choice(len(df), size=n, replace=False))
    return df.iloc[rows].reset_index(drop=True)


def stratified_split(
    df: pd.DataFrame,
    label: str,
    *,
    seed: int,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (train, test) keeping the label's class proportions.

    Falls back to a plain random split when the table is too small to stratify (a
    class with one row, or fewer test rows than classes) rather than failing on a
    tiny ``n``.
    """
    assert 0.0 < test_fraction < 1.0
    rows = np.arange(len(df))
    labels = df[label].to_numpy()
    counts = pd.Series(labels).value_counts()
    num_test = max(1, round(len(df) * test_fraction))
    num_test = min(num_test, len(df) - 1)
    can_stratify = (
        counts.min() >= 2 and num_test >= len(counts) and len(df) - num_test >= len(counts)
    )
    train_rows, test_rows = train_test_split(
        rows,
        test_size=num_test,
        random_state=seed,
        stratify=labels if can_stratify else None,
    )
    # Sorted so both parts keep the source order, which makes them easier to inspect.
    train = df.iloc[np.sort(train_rows)].reset_index(drop=True)
    test = df.iloc[np.sort(test_rows)].reset_index(drop=True)
    return train, test
