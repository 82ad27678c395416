"""A table's fingerprint: its size and a hash of its cells, to tell which data a model saw.

The hash covers the column names and every cell in order, read the same way however the
table arrived (:func:`~polymodal.data.cells.hashable_cell`: arrays and images by their
bytes, lists by their items). Image and audio cells that are file paths are hashed as
paths, not file contents: renaming a file changes the fingerprint, editing it in place
does not.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from polymodal.data.cells import hashable_values

# Object cells are hashed this many rows at a time: their text stand-ins (an image's bytes
# written out) take several times the cells' own memory (bench/RESULTS.md,
# 'generator_guidance', peak RSS). Row hashes do not depend on the chunking, nor the hash.
CHUNK_ROWS = 4096


def table_fingerprint(df: pd.DataFrame) -> dict:
    """``{"rows", "columns", "sha256"}`` of ``df``; the same table gives the same hash."""
    digest = hashlib.sha256()
    for name in df.columns:
        digest.update(f"{name}\0".encode())
        column = df[name]
        if column.dtype != object:
            digest.update(_row_hashes(column))
            continue
        for start in range(0, len(column), CHUNK_ROWS):
            # repr of the hashable stand-in: bytes of arrays, items of lists, text as is.
            digest.update(_row_hashes(
                hashable_values(column.iloc[start:start + CHUNK_ROWS]).map(repr)))
    return {"rows": int(len(df)), "columns": int(df.shape[1]), "sha256": digest.hexdigest()}


def _row_hashes(column: pd.Series) -> bytes:
    return pd.util.hash_pandas_object(column, index=False).to_numpy(dtype=np.uint64).tobytes()
