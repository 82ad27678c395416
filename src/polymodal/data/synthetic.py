"""Rows marked synthetic: a boolean column (``is_synthetic`` unless told otherwise) that says
a row was generated, not observed.

Marked rows may train a model, never validate or test it; :func:`split_marked` sets them
apart and :func:`concat_rows` puts tables back together where relative media paths still
resolve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polymodal.data.cells import present_mask
from polymodal.errors import DataError

SYNTHETIC_COLUMN = "is_synthetic"
_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False,
          "1.0": True, "0.0": False}


def marker_mask(table: pd.DataFrame, marker: str = SYNTHETIC_COLUMN) -> np.ndarray:
    """(N,) bool: True where ``marker`` says a row is synthetic (absent column: all False).

    Accepts booleans, 0/1 and the strings true/false/yes/no/1/0 (as a CSV gives back).
    """
    if marker not in table.columns:
        return np.zeros(len(table), dtype=bool)
    values = table[marker]
    if values.dtype == bool:
        return values.to_numpy()
    present = present_mask(values)  # a missing marker means a real row
    keys = values[present].astype(str).str.strip().str.lower()
    unknown = ~keys.isin(list(_WORDS))
    if unknown.any():
        i = int(np.flatnonzero(present)[np.flatnonzero(unknown.to_numpy())[0]])
        raise DataError(f"column {marker!r} marks synthetic rows and must hold True/False; "
                        f"row {i} holds {values.iloc[i]!r}. Fix the cell, or pass another "
                        "marker name")
    out = np.zeros(len(table), dtype=bool)
    out[present] = keys.map(_WORDS).to_numpy(dtype=bool)
    return out


def split_marked(table: pd.DataFrame, marker: str = SYNTHETIC_COLUMN
                 ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(real rows, marked synthetic rows, positions of the real rows in ``table``).

    Both frames keep the table's attrs (where relative media paths resolve) and are
    renumbered from 0; the real rows get the marker column as all-False so the schema
    sees it (as an ignored column).
    """
    marked = marker_mask(table, marker)
    real_positions = np.flatnonzero(~marked)
    real = table.iloc[real_positions].reset_index(drop=True)
    synthetic = table.iloc[np.flatnonzero(marked)].reset_index(drop=True)
    real[marker] = False
    synthetic[marker] = True
    real.attrs = dict(table.attrs)
    synthetic.attrs = dict(table.attrs)
    return real, synthetic, real_positions


def concat_rows(frames: list[pd.DataFrame], attrs: dict) -> pd.DataFrame:
    """Rows of ``frames`` renumbered, with ``attrs`` (where relative media paths resolve)."""
    parts = [f for f in frames if len(f)]
    out = pd.concat(parts, ignore_index=True) if parts else frames[0].iloc[:0].copy()
    out.attrs = dict(attrs)
    return out
