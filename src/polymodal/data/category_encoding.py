"""Categorical and multilabel (tag) columns as indices and multi-hot vectors.

Conventions (see ``batch.py``): a categorical index is 0 for a value not seen at fit time
(:data:`UNKNOWN_INDEX`), 1 for a missing cell (:data:`MISSING_INDEX`), and 2.. for the
fitted vocabulary, most frequent first. Cells are read as categories with
:func:`~polymodal.data.cells.category_key` (3, 3.0 and "3" are one category) and as tags
with :func:`~polymodal.data.cells.cell_tags`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polymodal.data.cells import category_key, category_keys, cell_missing, cell_tags

UNKNOWN_INDEX = 0  # a category not seen at fit time
MISSING_INDEX = 1  # an empty cell
# Beyond this many distinct values a column is closer to an identifier than a category;
# the rarest values share the unknown bucket instead of each getting an embedding row.
MAX_CATEGORIES = 10_000
# When the schema names no delimiter, the most used of these in string cells splits the
# tags; on a tie (or none used) the earlier one wins.
_DELIMITER_GUESSES = (";", "|", ",")


# ---------------------------------------------------------------------- categorical


def fit_vocab(cells: pd.Series) -> list[str]:
    """Category strings seen at fit, most frequent first (ties by value), capped."""
    keys = pd.Series(category_keys(cells), dtype=object).dropna()
    counts = keys.value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [k for k, _ in ranked[:MAX_CATEGORIES]]


def encode_categories(cells: pd.Series, vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 indices (0 unknown, 1 missing, 2.. the vocabulary) and (N,) present."""
    lookup = {k: i + 2 for i, k in enumerate(vocab)}
    keys = category_keys(cells)
    index = np.array(
        [MISSING_INDEX if k is None else lookup.get(k, UNKNOWN_INDEX) for k in keys], dtype=np.int64
    )
    return index, index != MISSING_INDEX


def unseen_values(cells: pd.Series, vocab: list[str]) -> dict[str, int]:
    """Values of ``cells`` that ``vocab`` does not hold (encoded as unknown), with their
    row counts, most frequent first (ties by value); missing cells are not counted."""
    known = set(vocab)
    counts: dict[str, int] = {}
    for k in category_keys(cells):
        if k is not None and k not in known:
            counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def sorted_classes(cells: pd.Series) -> list:
    """Distinct non-missing label values as JSON-able Python values, sorted.

    Numbers sort numerically, anything else by its string; values that are the same
    category (3 and 3.0) count once.
    """
    seen: dict[str, object] = {}
    typed = isinstance(cells, pd.Series) and cells.dtype != object
    for v in cells.drop_duplicates() if typed else cells:  # see category_keys
        key = category_key(v)
        if key is None or key in seen:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, str):
            v = v.strip()
        elif not isinstance(v, bool | int | float):
            v = key
        seen[key] = v
    values = list(seen.values())
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=str)


# ---------------------------------------------------------------------- multilabel


def fit_tags(
    cells: pd.Series, cap: int | None = MAX_CATEGORIES, delimiter: str | None = None
) -> dict:
    """The delimiter of string cells (the schema's when it has one) and the sorted tag vocabulary."""
    if delimiter is None:
        strings = [v for v in cells if isinstance(v, str) and not v.strip().startswith("[")]
        counts = {d: sum(s.count(d) for s in strings) for d in _DELIMITER_GUESSES}
        delimiter = (
            max(_DELIMITER_GUESSES, key=lambda d: counts[d])
            if any(counts.values())
            else _DELIMITER_GUESSES[0]
        )
    frequency: dict[str, int] = {}
    for cell in cells:
        for tag in cell_tags(cell, delimiter):
            frequency[tag] = frequency.get(tag, 0) + 1
    kept = sorted(frequency, key=lambda t: (-frequency[t], t))[:cap]
    return {"delimiter": delimiter, "tags": sorted(kept)}


def encode_tags(cells: pd.Series, vocab: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) float32 multi-hot over the vocabulary (unseen tags dropped) and (N,) present.

    A cell is present unless it is missing; an empty list is present with no tags.
    """
    lookup = {t: i for i, t in enumerate(vocab["tags"])}
    hot = np.zeros((len(cells), len(lookup)), dtype=np.float32)
    present = np.zeros(len(cells), dtype=bool)
    for row, cell in enumerate(cells):
        if cell_missing(cell):
            continue
        present[row] = True
        for tag in cell_tags(cell, vocab["delimiter"]):
            j = lookup.get(tag)
            if j is not None:
                hot[row, j] = 1.0
    return hot, present
