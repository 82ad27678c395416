"""Reading single cells the same way everywhere: missing or not, as a number, tag list or key.

A table's cells come from CSV readers, Parquet, pandas and user code, so one column may
hold ``None``, ``NaN``, ``pd.NA``, blank strings, numbers stored as strings, lists and
arrays side by side. Schema inference, cleaning, the transforms and evaluation all read
cells through these helpers, so they agree on what a cell holds:

- :func:`cell_missing` — the one test for "this cell is absent";
- :func:`present_mask` — that test over a column;
- :func:`cell_tags` — the tags of a multilabel cell;
- :func:`category_key` — a cell as a category string (3, 3.0 and "3" are one category);
- :func:`column_numbers` / :func:`parse_number_strings` — numbers, also when stored as text;
- :func:`hashable_values` / :func:`hashable_cell` — cells that can be counted and compared;
- :func:`cell_kind` — a coarse type tag of a present cell.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import numbers
import os
import re
import warnings

import numpy as np
import pandas as pd
from PIL import Image

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
# A currency sign before a number ("$1,234.50", "-€5") or after it ("5 €"), or a percent
# sign after it ("29%"), is a unit: the number is what is written without it.
CURRENCY_SIGNS = "$€£¥₹"
_LEADING_UNIT = re.compile(rf"^([+-]?)\s*[{CURRENCY_SIGNS}]\s*")
_TRAILING_UNIT = re.compile(rf"(?<=\d)\s*[%{CURRENCY_SIGNS}]$")
_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, type(None)})
_CONTAINERS = (list, tuple, set, frozenset, np.ndarray, pd.Series)


# --------------------------------------------------------------------------- missing


def cell_missing(cell) -> bool:
    """True for every way a cell can be absent.

    Missing: ``None``, ``pd.NA``, ``NaT`` (pandas' and numpy's), NaN (Python, numpy,
    complex and ``Decimal``), blank strings and empty bytes. Everything else is present,
    including containers (an empty list is a present cell with no items).

    Called once per cell per batch, so it tests types instead of calling ``pd.isna``;
    on scalars it agrees with ``pd.isna`` and adds blank strings and empty bytes.
    """
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return True
    if isinstance(cell, str):
        return not cell.strip()
    if isinstance(cell, float | complex | np.inexact):
        return bool(cell != cell)  # NaN is the only value that differs from itself
    if isinstance(cell, bytes | bytearray):
        return len(cell) == 0
    if isinstance(cell, np.datetime64 | np.timedelta64):
        return bool(np.isnat(cell))
    if isinstance(cell, decimal.Decimal):
        return cell.is_nan()
    return False


def present_mask(series: pd.Series) -> np.ndarray:
    """Boolean (N,) array: True where the cell holds a value (see :func:`cell_missing`)."""
    if series.dtype == object:
        return ~series.map(cell_missing).to_numpy(dtype=bool)
    mask = ~series.isna().to_numpy(dtype=bool)
    if pd.api.types.is_string_dtype(series.dtype):
        mask &= ~series.fillna("").astype(str).str.strip().eq("").to_numpy(dtype=bool)
    return mask


def sample_present(cells: pd.Series, limit: int) -> list:
    """Up to ``limit`` non-missing cells, evenly spread over the column (deterministic)."""
    present = [v for v in cells.to_numpy(dtype=object) if not cell_missing(v)]
    if len(present) <= limit:
        return present
    return [present[i] for i in np.linspace(0, len(present) - 1, limit).round().astype(int)]


# --------------------------------------------------------------------------- kinds, keys


def cell_kind(cell) -> str:
    """A coarse type tag for one present cell."""
    if isinstance(cell, bool | np.bool_):
        return "bool"
    if isinstance(cell, str | os.PathLike):
        return "str"
    if isinstance(cell, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(cell, Image.Image):
        return "pil"
    if isinstance(cell, np.ndarray):
        return "array"
    if (
        isinstance(cell, tuple)
        and len(cell) == 2
        and isinstance(cell[0], np.ndarray | list)
        and isinstance(cell[1], numbers.Integral)
    ):
        return "wave"
    if isinstance(cell, list | tuple | set | frozenset):
        return "list"
    if isinstance(cell, numbers.Number):
        return "number"
    if isinstance(cell, dt.date | dt.datetime | np.datetime64 | pd.Timestamp):
        return "datetime"
    return "other"


def category_key(value) -> str | None:
    """A cell as a category string; None when missing. 3, 3.0 and "3" are one category."""
    if cell_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return str(value)


def category_keys(cells) -> list[str | None]:
    """:func:`category_key` of every cell, in order. A typed column (numbers, strings,
    booleans, categories) is keyed once per distinct value, which on a million rows is
    seconds faster; an object column is keyed cell by cell, since hashing would merge
    ``True`` and ``1``, which are different categories."""
    if not isinstance(cells, pd.Series) or cells.dtype == object:
        return [category_key(v) for v in cells]
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    keys = np.array([category_key(v) for v in uniques] + [None], dtype=object)
    return keys[codes].tolist()  # code -1 (missing) takes the trailing None


def hashable_values(series: pd.Series) -> pd.Series:
    """The column with every cell hashable, for counting and comparing values.

    Only object columns can hold lists or arrays; typed columns pass through untouched.
    """
    if series.dtype != object:
        return series
    return series.map(hashable_cell)


def hashable_cell(cell):
    """A hashable stand-in for any cell (lists, arrays, images), so values can be counted and compared."""
    if type(cell) in _PLAIN_TYPES:
        return cell
    if isinstance(cell, np.ndarray):
        return ("ndarray", cell.shape, str(cell.dtype), cell.tobytes())
    if isinstance(cell, set | frozenset):
        return ("set", tuple(sorted(map(str, cell))))
    if isinstance(cell, list | tuple):
        return ("seq", tuple(hashable_cell(c) for c in cell))
    if isinstance(cell, dict):
        return ("dict", repr(cell))
    if isinstance(cell, Image.Image):
        return ("image", cell.mode, cell.size, cell.tobytes())
    if isinstance(cell, bytearray | memoryview):
        return bytes(cell)
    try:
        hash(cell)
    except TypeError:
        return ("repr", repr(cell))
    return cell


# --------------------------------------------------------------------------- numbers


def parse_number_strings(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Strings such as ``"1,234"``, ``" 3.5 "``, ``"-2e3"``, ``"$1,234.50"``, ``"29%"`` as
    floats; NaN where not a number.

    Returns ``(numbers, parsed_mask)``. Commas are dropped only when they group thousands,
    so ``"3,5"`` (a tag list, or a decimal comma) is not read as 35. A currency or percent
    sign is dropped ("29%" is 29, as written).
    """
    text = values.astype(str).str.strip()
    text = (text.str.replace(_LEADING_UNIT, r"\1", regex=True)
            .str.replace(_TRAILING_UNIT, "", regex=True))
    grouped = text.str.match(_THOUSANDS)
    text = text.where(~grouped, text.str.replace(",", "", regex=False))
    parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    return parsed, ~np.isnan(parsed)


def number_or_none(text: str) -> float | None:
    """One string as a number, read as :func:`parse_number_strings` reads a column (the
    service checks a request's cells with it); None when it is not a number."""
    numbers, parsed = parse_number_strings(pd.Series([text], dtype=object))
    return float(numbers[0]) if parsed[0] else None


def non_number_positions(series: pd.Series) -> np.ndarray:
    """Positions of the present cells of ``series`` that are not numbers: what a numeric
    column's transform (:func:`column_numbers`) reads as missing there."""
    return np.flatnonzero(present_mask(series) & np.isnan(column_numbers(series)))


def column_numbers(series: pd.Series) -> np.ndarray:
    """A column as float64 (N,): numbers, numeric strings ("1,234") parsed, NaN elsewhere."""
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.full(len(series), np.nan)
    mask = present_mask(series)
    if mask.any():
        out[mask] = parse_number_strings(series[mask].astype(str))[0]
    return out


# --------------------------------------------------------------------------- tags


def cell_tags(cell, delimiter: str | None = None) -> list[str]:
    """The tags of one multilabel cell, sorted and without repeats; ``[]`` when it is missing.

    A cell may be a list/tuple/set/array/Series of tags, a JSON list string
    (``'["a", "b"]'``), or a string split on ``delimiter`` (``None``: the whole string is
    one tag). Each tag is read as a category (:func:`category_key`): stripped, ``3.0`` as
    ``"3"``, and missing or blank items dropped.
    """
    if isinstance(cell, _CONTAINERS):
        items = cell
    elif cell_missing(cell):
        return []
    elif isinstance(cell, str):
        text = cell.strip()
        items = None
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            items = parsed if isinstance(parsed, list) else None
        if items is None:
            items = text.split(delimiter) if delimiter else [text]
    else:
        items = [cell]
    return sorted({key for key in map(category_key, items) if key})


_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b")


def day_first(series: pd.Series) -> bool:
    """Whether a column's dates are written day first ("31/01/2024"): some cell's first
    number is over 12 and no cell's second one is. Decided for the whole column, so
    "02/01/2024" beside "31/01/2024" is 2 January, not 1 February."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return False
    parts = series[present_mask(series)].astype(str).str.extract(_NUMERIC_DATE)
    if parts.empty:
        return False
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    return bool((first > 12).any() and not (second > 12).any())


def parse_dates(series: pd.Series, *, dayfirst: bool = False, utc: bool = False) -> pd.Series:
    """Strings (or dates) as pandas timestamps, NaT where missing or unparseable; each cell's
    format is inferred, ``dayfirst`` settles "01/02/2024" for the whole column (and only
    such numeric dates: "2024-01-05" stays 5 January)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    cells = series.where(pd.Series(present_mask(series), index=series.index)).astype(object)
    with warnings.catch_warnings():  # "could not infer format" for mixed formats
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(cells, errors="coerce", format="mixed", utc=utc)
        if dayfirst:
            numeric = cells.astype(str).str.match(_NUMERIC_DATE).to_numpy(dtype=bool)
            if numeric.any():
                parsed = pd.Series(parsed, index=series.index)
                parsed[numeric] = pd.to_datetime(cells[numeric], errors="coerce",
                                                 format="mixed", dayfirst=True, utc=utc)
    return pd.Series(parsed, index=series.index)


def datetime_seconds(series: pd.Series) -> np.ndarray:
    """Dates as float seconds since 1970 (N,); NaN where missing or unparseable."""
    return seconds_since_epoch(parse_dates(series, dayfirst=day_first(series)))


def seconds_since_epoch(dates: pd.Series) -> np.ndarray:
    """Float seconds since 1970 (N,) of a datetime column, NaN where NaT.

    Works for any date pandas holds (years 1 to 9999) whatever its unit: subtracting a
    nanosecond ``Timestamp`` would overflow on dates outside 1677-2262.
    """
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    values = dates.to_numpy(dtype="datetime64[us]")
    seconds = values.astype(np.int64).astype(np.float64) / 1e6
    seconds[np.isnat(values)] = np.nan
    return seconds
