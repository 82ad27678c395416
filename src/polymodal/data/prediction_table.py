"""A table to predict on, checked against the schema a model was trained with."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pandas as pd

from polymodal.data.cells import non_number_positions, present_mask
from polymodal.data.column_rules import PARSE_MIN_FRACTION
from polymodal.data.media import resolve_path
from polymodal.data.readers import table_notes
from polymodal.data.schema import Schema
from polymodal.errors import ConfigError, DataError

# Row numbers a one-line message lists.
MAX_ROWS_LISTED = 5


def prediction_table(df: pd.DataFrame, schema: Schema, drop: Iterable[str] | str | None, *,
                     optional: tuple[str, ...]) -> pd.DataFrame:
    """``df`` checked against ``schema``'s feature columns, with ``drop`` columns emptied
    (every cell missing, as a row without them would be).

    Columns of the ``optional`` modalities may be absent (a warning says they are treated
    as missing in every row); any other absent feature column is an error naming it.
    Columns the schema does not know are ignored, with a warning; so are the reader's notes
    (rows it skipped). A numeric column that arrives as text (more cells that are not
    numbers than training would have read as numbers) is an error naming it; fewer such
    cells are read as missing, with a warning that counts them.
    """
    for note in table_notes(df):
        warnings.warn(note, UserWarning, stacklevel=4)
    features = schema.features()
    absent = [c for c in features if c not in df.columns]
    required = [c for c in absent if schema.modality(c) not in optional]
    if required:
        raise DataError(f"the table lacks column(s) {required} that the predictor was trained "
                        f"on; its columns are {list(df.columns)[:20]}. Add them (only "
                        f"{' and '.join(optional)} columns may be left out)")
    if absent:
        warnings.warn(f"column(s) {absent} are missing from the table; the predictor treats "
                      "them as absent in every row (their presence mask is False)",
                      UserWarning, stacklevel=4)
    extra = [c for c in df.columns if c not in schema.columns]
    if extra:
        warnings.warn(f"column(s) {extra[:20]} were not in the training table and are ignored",
                      UserWarning, stacklevel=4)
    _check_numbers(df, [c for c in features if c in df.columns
                        and schema.modality(c) == "numeric"])
    _check_files(df, {c: schema.modality(c) for c in features if c in df.columns
                      and schema.modality(c) in ("image", "audio")})
    if drop:
        names = [drop] if isinstance(drop, str) else list(drop)
        unknown = [c for c in names if c not in features]
        if unknown:
            raise ConfigError(f"drop: {unknown} are not feature columns of this predictor; "
                              f"choose among {features}")
        for column in names:
            if column in df.columns:
                df[column] = pd.Series([None] * len(df), index=df.index, dtype=object)
    return df


def _check_numbers(df: pd.DataFrame, numeric: list[str]) -> None:
    """Numeric columns whose cells are not numbers: an error when the column is no longer
    a numeric one, else a warning counting the cells read as missing."""
    for column in numeric:
        others = non_number_positions(df[column])
        if not len(others):
            continue
        present = int(present_mask(df[column]).sum())
        rows = ", ".join(str(int(r)) for r in others[:MAX_ROWS_LISTED])
        more = f" and {len(others) - MAX_ROWS_LISTED:,} more" if len(others) > MAX_ROWS_LISTED else ""
        example = str(df[column].iloc[int(others[0])])[:40]
        what = (f"column {column!r} was numeric in training, but {len(others):,} of {present:,} "
                f"cells here are not numbers (rows {rows}{more}; e.g. {example!r})")
        if len(others) > (1 - PARSE_MIN_FRACTION) * present:
            raise DataError(f"{what}; send numbers (an empty cell counts as missing), or train "
                            "again on a table whose column holds these values")
        warnings.warn(f"{what}; they are read as missing", UserWarning, stacklevel=4)


def _check_files(df: pd.DataFrame, media: dict[str, str]) -> None:
    """A warning counting the image/audio path cells whose file does not exist: those rows
    are predicted without them (the cell is marked absent)."""
    base_dir = df.attrs.get("base_dir")
    for column, modality in media.items():
        paths = [(i, cell) for i, cell in enumerate(df[column])
                 if isinstance(cell, str) and cell.strip()]
        missing = [(i, cell) for i, cell in paths if not resolve_path(cell, base_dir).exists()]
        if not missing:
            continue
        rows = ", ".join(str(i) for i, _ in missing[:MAX_ROWS_LISTED])
        more = f" and {len(missing) - MAX_ROWS_LISTED:,} more" if len(missing) > MAX_ROWS_LISTED else ""
        first = resolve_path(missing[0][1], base_dir)
        warnings.warn(f"{modality} column {column!r}: {len(missing):,} of its {len(paths):,} "
                      f"files are not found (rows "
                      f"{rows}{more}; first {first}) → predicted without them (marked absent)",
                      UserWarning, stacklevel=4)
