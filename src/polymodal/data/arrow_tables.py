"""Arrow tables to pandas DataFrames, reading the conventions the table was written with.

Every reader that parses through pyarrow ends here. Most columns convert as pandas would
convert them (``Table.to_pandas``); three kinds are turned into the cells the rest of
polymodal expects:

- **media structs**: a ``struct<bytes, path>`` column is how Hugging Face ``datasets``
  stores its ``Image()`` and ``Audio()`` features. Each cell becomes its bytes, or its
  path where the bytes are absent (a path relative to the table's folder). A struct that
  has neither is noted with its row and left empty.
- **class labels**: integers of a ``ClassLabel`` feature become the class names the
  file's ``huggingface`` schema metadata lists (-1, "no label", becomes missing); lists of
  them become lists of names.
- **lists** become Python lists (tags), not numpy arrays.

What was recognised, and why, is kept per column in ``frame.attrs["column_notes"]``;
:func:`~polymodal.data.schema.infer_schema` appends it to the column's reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd

# The schema metadata key under which `datasets` stores a table's features as JSON.
HF_METADATA_KEY = b"huggingface"
_LISTED_ROWS = 10


def hf_features(schema) -> dict:
    """``{column: feature dict}`` from a schema's ``huggingface`` metadata ({} if none)."""
    raw = (schema.metadata or {}).get(HF_METADATA_KEY)
    if not raw:
        return {}
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    features = (info.get("info") or {}).get("features") if isinstance(info, dict) else None
    return features if isinstance(features, dict) else {}


def is_media_struct(arrow_type) -> bool:
    """Whether a column type is the ``{bytes, path}`` struct of an Image/Audio feature."""
    import pyarrow as pa

    if not pa.types.is_struct(arrow_type):
        return False
    names = {arrow_type.field(i).name for i in range(arrow_type.num_fields)}
    return names == {"bytes", "path"}


def table_to_frame(
    table,
    notes: list[str],
    *,
    features: dict | None = None,
    where: Callable[[int], str] | None = None,
) -> pd.DataFrame:
    """``table`` as a DataFrame, with ``attrs["column_notes"]`` set for recognised columns.

    Args:
        table: a ``pyarrow.Table``.
        notes: read notes to append to (cells that had to be left empty).
        features: Hugging Face features by column; default: the table's own metadata.
        where: names the file and row of a table row for notes (default "row N").
    """
    import pyarrow as pa

    if features is None:
        features = hf_features(table.schema)
    where = where or (lambda row: f"row {row + 1}")
    column_notes: dict[str, str] = {}
    converted: dict[str, list] = {}
    for name, arrow_type in zip(table.column_names, table.schema.types, strict=True):
        feature = features.get(name) if isinstance(features.get(name), dict) else {}
        kind = feature.get("_type")
        if is_media_struct(arrow_type):
            converted[name] = _media_cells(table.column(name), name, notes, where)
            column_notes[name] = _media_note(kind)
        elif kind == "ClassLabel" and pa.types.is_integer(arrow_type):
            names = feature.get("names") or []
            converted[name] = _class_names(table.column(name), names, name, notes, where)
            column_notes[name] = (
                f"Hugging Face ClassLabel: integers read as its {len(names)} class names "
                "(from the file's 'huggingface' schema metadata)"
            )
        elif pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
            inner = feature.get("feature") if kind in ("List", "Sequence", "LargeList") else None
            names = inner.get("names") if isinstance(inner, dict) else None
            if names and pa.types.is_integer(arrow_type.value_type):
                converted[name] = [
                    None if cell is None else [names[i] for i in cell if 0 <= i < len(names)]
                    for cell in table.column(name).to_pylist()
                ]
                column_notes[name] = (
                    "Hugging Face list of ClassLabel: integers read as class names (from the "
                    "file's 'huggingface' schema metadata)"
                )
            else:
                converted[name] = table.column(name).to_pylist()
    order = table.column_names
    rest = table.drop_columns(list(converted)) if converted else table
    # split_blocks: one block per column, so converting does not also copy into 2-D blocks.
    frame = rest.to_pandas(split_blocks=True)
    del rest
    if all(name is not None for name in frame.index.names):
        # A named pandas index (df.set_index("id").to_parquet()) holds the user's column:
        # back to a column, first as pandas wrote it, not dropped with the index.
        names = list(frame.index.names)
        frame = frame.reset_index()
        for name in reversed(names):
            order = [name, *[n for n in order if n != name]]
    elif not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        frame = frame.reset_index(drop=True)  # a row-position index: nothing of the user's
    for position, name in enumerate(order):
        if name in converted:
            values = pd.Series(converted[name], index=frame.index, dtype=object)
            frame.insert(min(position, frame.shape[1]), name, values)
    if column_notes:
        frame.attrs["column_notes"] = column_notes
    return frame


def _media_note(kind: str | None) -> str:
    if kind in ("Image", "Audio"):
        return (
            f"Hugging Face {kind} feature (from the file's 'huggingface' schema metadata): "
            "{bytes, path} structs, read as their bytes, or their path where bytes are absent"
        )
    return (
        "{bytes, path} structs, the layout Hugging Face datasets uses for Image/Audio "
        "features (the file carries no feature metadata, so the cells' content decides)"
    )


def _media_cells(column, name: str, notes: list[str], where) -> list:
    """Bytes, else path, per struct; rows whose struct holds neither are noted."""
    import pyarrow.compute as pc

    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    data = pc.struct_field(column, "bytes").to_pylist()
    paths = pc.struct_field(column, "path").to_pylist()
    present = column.is_valid().to_numpy(zero_copy_only=False)
    cells: list = []
    empty: list[int] = []
    for row, (raw, path, valid) in enumerate(zip(data, paths, present, strict=True)):
        if raw is not None:
            cells.append(raw)
        elif path:
            cells.append(path)
        else:
            cells.append(None)
            if valid:
                empty.append(row)
    if empty:
        shown = ", ".join(where(row) for row in empty[:_LISTED_ROWS])
        more = f" and {len(empty) - _LISTED_ROWS} more" if len(empty) > _LISTED_ROWS else ""
        notes.append(
            f"column {name!r}: {shown}{more}: the {{bytes, path}} struct holds neither bytes nor "
            "a path — left empty"
        )
    return cells


def _class_names(column, names: list, name: str, notes: list[str], where) -> list:
    """Class indices to names; -1 and nulls are missing, out-of-range indices are noted."""
    codes = column.to_numpy(zero_copy_only=False)
    lookup = np.array(list(names) + [None], dtype=object)
    codes = np.where(pd.isna(codes), -1, codes).astype(np.int64)
    bad = np.flatnonzero((codes >= len(names)) | (codes < -1))
    if len(bad):
        shown = ", ".join(where(int(row)) for row in bad[:_LISTED_ROWS])
        notes.append(
            f"column {name!r}: {shown}: class index outside the {len(names)} ClassLabel names "
            "— left empty"
        )
    codes = np.where((codes < 0) | (codes >= len(names)), len(names), codes)
    return list(lookup[codes])
