"""A table to predict on, checked against the schema a model was trained with."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pandas as pd

from polymodal.data.schema import Schema
from polymodal.errors import ConfigError, DataError


def prediction_table(df: pd.DataFrame, schema: Schema, drop: Iterable[str] | str | None, *,
                     optional: tuple[str, ...]) -> pd.DataFrame:
    """``df`` checked against ``schema``'s feature columns, with ``drop`` columns emptied
    (every cell missing, as a row without them would be).

    Columns of the ``optional`` modalities may be absent (a warning says they are treated
    as missing in every row); any other absent feature column is an error naming it.
    Columns the schema does not know are ignored, with a warning.
    """
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
