"""The schema: each column's modality, and the one-line reason it was chosen.

:func:`infer_schema` looks at every column of a table and picks one of
:data:`MODALITIES`, with a reason that quotes the numbers it decided on
("categorical: 7 distinct values in 1,797 rows"). It is built to catch the classic
mistakes of naive inference: integer-coded classes taken for quantities, image paths
taken for text, row IDs taken for features, numbers stored as strings taken for
categories. Anything it gets wrong is fixed with a one-line override
(``zip=categorical``, see :func:`parse_overrides`).

Image and audio cells are tested by decoding a deterministic sample of ``sample_size``
cells with :mod:`polymodal.data.media`; whether strings parse as numbers, dates or tag
lists is decided on a sample of ``STAT_SAMPLE_SIZE`` cells; counts, ranges and
distinct values quoted in the reasons use all rows.

Also here: small public helpers that other data modules share so that they read cells
the same way inference did (:func:`present_mask`, :func:`column_numbers`,
:func:`cell_tags`, :func:`hashable_values`, :func:`id_like_reason`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import numbers
import os
import re
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

from polymodal.data.media import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MediaError,
    is_missing,
    load_audio,
    load_image,
    looks_like_media_path,
    resolve_path,
)
from polymodal.errors import ConfigError, DataError, SchemaError

MODALITIES = (
    "image",
    "text",
    "audio",
    "numeric",
    "categorical",
    "multilabel",
    "datetime",
    "ignored",
)
PROBLEM_TYPES = ("binary", "multiclass", "regression", "multilabel")


@dataclass
class ColumnSchema:
    """One column: its modality, why, and whether the user said so.

    ``delimiter`` is set for multilabel columns whose cells are strings such as
    ``"a|b"``: the character that separates the tags (``None`` for list cells).
    """

    name: str
    modality: str
    reason: str
    overridden: bool = False
    delimiter: str | None = None


@dataclass
class Schema:
    """Column name -> modality with reasons, plus the label and its problem type."""

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    label: str | None = None
    problem_type: str | None = None
    problem_reason: str | None = None

    def features(self) -> list[str]:
        """Columns the models use: everything but the label and ignored columns, in table order."""
        return [
            c.name
            for c in self.columns.values()
            if c.name != self.label and c.modality != "ignored"
        ]

    def by_modality(self, modality: str) -> list[str]:
        """Feature columns of one modality, in table order."""
        return [n for n in self.features() if self.columns[n].modality == modality]

    def modality(self, column: str) -> str:
        return self.columns[column].modality

    def summary_rows(self) -> list[tuple[str, str, str]]:
        """``(column, modality, reason)`` for every column in table order, for printing."""
        return [(c.name, c.modality, c.reason) for c in self.columns.values()]

    def to_dict(self) -> dict:
        return {
            "columns": [asdict(c) for c in self.columns.values()],
            "label": self.label,
            "problem_type": self.problem_type,
            "problem_reason": self.problem_reason,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        cols = {c["name"]: ColumnSchema(**c) for c in d["columns"]}
        return cls(
            columns=cols,
            label=d.get("label"),
            problem_type=d.get("problem_type"),
            problem_reason=d.get("problem_reason"),
        )


# --------------------------------------------------------------------------- thresholds

# At most this many distinct integers (each seen twice on average) reads as class codes.
INT_CODE_MAX_DISTINCT = 20
# At least this share of sampled cells must parse for strings to count as numbers/dates.
PARSE_MIN_FRACTION = 0.95
DATE_MIN_FRACTION = 0.9
# At least this share of sampled strings must carry an image/audio file extension.
MEDIA_EXT_MIN_FRACTION = 0.5
# Without a telling name, a unique integer column needs this many rows to look like an ID.
ID_MIN_ROWS = 10
TAG_DELIMITERS = ("|", ";", ",")
# Parsing tests (numbers, dates, tags) look at this many sampled cells of a column.
STAT_SAMPLE_SIZE = 2000

_ID_NAME = re.compile(r"(^|[_\s.-])(id|ids|idx|index|key|uuid|guid|rowid)$|^unnamed: ?\d+$", re.I)
_CAMEL_ID = re.compile(r"[a-z0-9]I[dD]$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_DIGIT = re.compile(r"\d")


def class_limit(num_rows: int) -> int:
    """Most distinct values a categorical column (or class label) is expected to have."""
    return max(50, round(0.05 * num_rows))


# --------------------------------------------------------------------------- overrides


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["zip=categorical", "notes=text"]`` -> ``{"zip": "categorical", "notes": "text"}``.

    The column is everything before the last ``=``, so column names may contain ``=``.
    """
    overrides: dict[str, str] = {}
    for item in items:
        column, sep, modality = str(item).rpartition("=")
        column, modality = column.strip(), modality.strip().lower()
        if not sep or not column or not modality:
            raise SchemaError(
                f"override {item!r} is malformed: write COLUMN=MODALITY, e.g. 'zip=categorical' "
                f"(modalities: {', '.join(MODALITIES)})"
            )
        _check_modality(modality, f"override {item!r}")
        if column in overrides and overrides[column] != modality:
            raise SchemaError(
                f"column {column!r} is overridden twice ({overrides[column]!r} and {modality!r}); keep one"
            )
        overrides[column] = modality
    return overrides


def _check_modality(modality: str, where: str) -> None:
    if modality not in MODALITIES:
        close = difflib.get_close_matches(str(modality), MODALITIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SchemaError(
            f"{where}: unknown modality {modality!r}{hint}; choose one of {', '.join(MODALITIES)}"
        )


def _no_such_column(kind: str, name, columns) -> SchemaError:
    close = difflib.get_close_matches(str(name), [str(c) for c in columns], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in list(columns)[:20])
    more = ", ..." if len(columns) > 20 else ""
    return SchemaError(f"{kind} column {name!r} is not in the table{hint} (columns: {shown}{more})")


# --------------------------------------------------------------------------- cells


def cell_missing(cell) -> bool:
    """True for every way a cell can be absent: None, NaN, NaT, pd.NA and empty strings."""
    if is_missing(cell):
        return True
    if isinstance(
        cell, str | bytes | bytearray | np.ndarray | list | tuple | set | frozenset | dict
    ):
        return False
    try:
        return bool(pd.isna(cell))
    except (TypeError, ValueError):
        return False


def _cell_kind(cell) -> str:
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


def present_mask(series: pd.Series) -> np.ndarray:
    """Boolean (N,) array: True where the cell holds a value."""
    if series.dtype == object:
        return ~series.map(cell_missing).to_numpy(dtype=bool)
    mask = ~series.isna().to_numpy(dtype=bool)
    if pd.api.types.is_string_dtype(series.dtype):
        mask &= ~series.fillna("").astype(str).str.strip().eq("").to_numpy(dtype=bool)
    return mask


def _sample_positions(num: int, sample_size: int, seed: int) -> np.ndarray:
    """Sorted positions of a deterministic sample of ``sample_size`` out of ``num``."""
    if num <= sample_size:
        return np.arange(num)
    return np.sort(np.random.default_rng(seed).choice(num, size=sample_size, replace=False))


def _n(count: int) -> str:
    return f"{count:,}"


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _num(x: float) -> str:
    """A number for a reason: integers with thousands separators, floats to 4 significant digits."""
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def _short(value, width: int = 30) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


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


_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, type(None)})


def id_name_hint(name) -> bool:
    """True when a column's name reads like an identifier (``id``, ``user_id``, ``PassengerId``)."""
    text = str(name).strip()
    return bool(_ID_NAME.search(text) or _CAMEL_ID.search(text))


# --------------------------------------------------------------------------- numbers


def _parse_number_strings(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Strings such as ``"1,234"``, ``" 3.5 "``, ``"-2e3"`` as floats; NaN where not a number.

    Returns ``(numbers, parsed_mask)``. Commas are dropped only when they group thousands,
    so ``"3,5"`` (a tag list, or a decimal comma) is not read as 35.
    """
    text = values.astype(str).str.strip()
    grouped = text.str.match(_THOUSANDS)
    text = text.where(~grouped, text.str.replace(",", "", regex=False))
    parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    return parsed, ~np.isnan(parsed)


def column_numbers(series: pd.Series) -> np.ndarray:
    """A column as float64 (N,): numbers, numeric strings ("1,234") parsed, NaN elsewhere."""
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.full(len(series), np.nan)
    mask = present_mask(series)
    if mask.any():
        out[mask] = _parse_number_strings(series[mask].astype(str))[0]
    return out


def cell_tags(cell, delimiter: str | None) -> list[str]:
    """The tags of one multilabel cell: a list/tuple/set, or a string split on ``delimiter``."""
    if cell_missing(cell):
        return []
    if isinstance(cell, list | tuple | set | frozenset | np.ndarray):
        return sorted({str(t).strip() for t in cell if str(t).strip()})
    text = str(cell)
    parts = text.split(delimiter) if delimiter else [text]
    return sorted({t.strip() for t in parts if t.strip()})


def id_like_reason(series: pd.Series) -> str | None:
    """Why a column looks like a row identifier (to be ignored), or None.

    Integers (or integer strings): see :func:`integer_id_reason`. Other strings: every
    value distinct, and either named like an identifier or free of spaces with more
    distinct values than a categorical column would have.
    """
    mask = present_mask(series)
    if mask.sum() < 2 or pd.api.types.is_bool_dtype(series.dtype):
        return None
    present = series[mask]
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers_ = present.to_numpy(dtype=np.float64)
        return integer_id_reason(numbers_, series.name) if _all_integers(numbers_) else None
    # Every kind of ID is (near-)unique; hashing is much cheaper than parsing numbers.
    if hashable_values(present).nunique() < 0.95 * len(present):
        return None
    if present.dtype == object and any(
        _cell_kind(c) != "str" for c in present.iloc[:STAT_SAMPLE_SIZE]
    ):
        return None
    values = present.astype(str)
    if _parse_number_strings(values.iloc[:STAT_SAMPLE_SIZE])[1].all():
        numbers_, parsed = _parse_number_strings(values)
        if parsed.all() and _all_integers(numbers_):
            return integer_id_reason(numbers_, series.name)
        return None
    n, distinct = len(values), values.nunique()
    if distinct != n:
        return None
    if id_name_hint(series.name):
        return f"ID-like — {_n(n)} distinct strings in {_rows(n)}, and the name {str(series.name)!r} reads as an identifier"
    if n > class_limit(len(series)) and not values.str.contains(r"\s", regex=True).any():
        return f"ID-like — {_n(n)} distinct strings in {_rows(n)}, none with spaces"
    return None


def _all_integers(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def integer_id_reason(values: np.ndarray, name) -> str | None:
    """Why a column of present integer values looks like a row ID, or None.

    An ID is unique and increasing/decreasing, a shuffled dense range (a permutation of
    lo..hi), or named like an identifier; or near-unique (95% over 20+ rows, as when rows
    are duplicated) and non-decreasing/non-increasing or named like an identifier.
    """
    n = len(values)
    if n < 2:
        return None
    nd = len(np.unique(values))
    hinted = id_name_hint(name)
    unique = nd == n
    near_unique = n >= 20 and nd >= 0.95 * n  # an ID column repeats where rows are duplicated
    if not (unique or near_unique):
        return None
    diffs = np.diff(values)
    what = f"{_n(nd)} distinct integers in {_rows(n)}"
    if n >= ID_MIN_ROWS or hinted:
        if np.all(diffs > 0) or (near_unique and np.all(diffs >= 0)):
            return f"ID-like — {what}, increasing"
        if np.all(diffs < 0) or (near_unique and np.all(diffs <= 0)):
            return f"ID-like — {what}, decreasing"
    span = float(values.max() - values.min()) + 1
    if unique and n >= ID_MIN_ROWS and span <= 1.5 * n:
        return f"ID-like — {what}, a shuffled range {_num(values.min())}–{_num(values.max())}"
    if hinted:
        return f"ID-like — {what}, and the name {str(name)!r} reads as an identifier"
    return None


def _numeric_reason(values: np.ndarray, name, origin: str) -> tuple[str, str]:
    """Modality and reason for a column of present numbers (``origin`` says how they were stored)."""
    n = len(values)
    uniques = np.unique(values)
    nd = len(uniques)
    lo, hi = float(uniques[0]), float(uniques[-1])
    if nd == 1:
        return "ignored", f"ignored: constant (every value is {_num(lo)})"
    integral = _all_integers(values)
    if integral:
        id_reason = integer_id_reason(values, name)
        if id_reason:
            return "ignored", f"ignored: {id_reason}"
        if nd <= INT_CODE_MAX_DISTINCT and 2 * nd <= n:
            return "categorical", (
                f"categorical: {nd} distinct integers ({_num(lo)}–{_num(hi)}) in {_rows(n)} — "
                f"integer-coded classes, not quantities; override with {name}=numeric"
            )
        kind = "integers"
    else:
        kind = "floats"
    return "numeric", (
        f"numeric: {kind}{origin}, {_n(nd)} distinct values in {_rows(n)} "
        f"(range {_num(lo)} to {_num(hi)})"
    )


# --------------------------------------------------------------------------- media


def _is_file(cell: str, base_dir) -> bool:
    """True when a string cell names an existing file; False for text that cannot be a path."""
    try:
        return resolve_path(cell, base_dir).is_file()
    except (OSError, ValueError):  # name too long, embedded NUL byte, ...
        return False


def _decode_counts(cells: list, base_dir, kind: str) -> tuple[int, int, int]:
    """Decode cells as ``kind`` ("image"/"audio"): ``(opened, files_not_found, unreadable)``."""
    loader = load_image if kind == "image" else load_audio
    opened = not_found = unreadable = 0
    for cell in cells:
        try:
            loader(cell, base_dir)
            opened += 1
        except MediaError as exc:
            if str(exc).startswith("file not found"):
                not_found += 1
            else:
                unreadable += 1
    return opened, not_found, unreadable


def _media_reason(cells: list, base_dir, kind: str, described: str) -> tuple[str, str] | None:
    """``(kind, reason)`` when at least half of the sampled cells decode as ``kind``, else None.

    ``described`` says what the cells are ("files", "bytes cells") for the reason.
    """
    return _decoded_reason(kind, _decode_counts(cells, base_dir, kind), len(cells), described)


def _decoded_reason(kind: str, counts: tuple[int, int, int], total: int, described: str):
    opened, not_found, unreadable = counts
    if opened / total < 0.5:
        return None
    verb = "open as images" if kind == "image" else "decode as audio"
    reason = f"{kind}: {opened / total:.0%} of {_n(total)} sampled {described} {verb}"
    if opened < total:
        reason += f" ({not_found} not found, {unreadable} unreadable)"
    return kind, reason


def _path_column_reason(
    values: list[str], base_dir, sample_size: int, seed: int
) -> tuple[str, str] | None:
    """Image/audio modality for a column of path strings, or None when it holds no media paths.

    The file extension decides: a column of ``.png`` paths is an image column even when
    most files are missing (the reason says so), because calling it text would hide the
    real problem — a wrong ``base_dir`` or an incomplete copy of the data.
    """
    pos = _sample_positions(len(values), sample_size, seed)
    sample = [str(values[i]).strip() for i in pos]
    total = len(sample)
    for kind, extensions in (("image", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS)):
        with_ext = sum(looks_like_media_path(s, extensions) for s in sample)
        if with_ext / total < MEDIA_EXT_MIN_FRACTION:
            continue
        counts = _decode_counts(sample, base_dir, kind)
        found = _decoded_reason(kind, counts, total, "files")
        if found:
            return found
        urls = sum(s.lower().startswith(("http://", "https://")) for s in sample)
        if urls / total >= 0.5:
            return kind, (
                f"{kind}: {urls / total:.0%} of {_n(total)} sampled cells are URLs of {kind} files, "
                f"which polymodal never downloads — download them and put local paths in the table"
            )
        opened, not_found, unreadable = counts
        where = f"under {base_dir}" if base_dir is not None else "(no base_dir given)"
        return kind, (
            f"{kind}: {with_ext / total:.0%} of {_n(total)} sampled cells have {kind} file "
            f"extensions, but only {opened} open ({not_found} files not found {where}, "
            f"{unreadable} unreadable) — check the paths or base_dir"
        )
    # Paths without a known extension: decide by opening the files, if they exist.
    if all(len(s) < 1024 and "\n" not in s for s in sample):
        exist = sum(_is_file(s, base_dir) for s in sample)
        if exist / total >= 0.8:
            for kind in ("image", "audio"):
                found = _media_reason(sample, base_dir, kind, "files")
                if found:
                    return found
            return "ignored", (
                f"ignored: {exist / total:.0%} of {_n(total)} sampled cells are paths to files "
                f"that open neither as images nor as audio"
            )
    return None


# --------------------------------------------------------------------------- strings


def _tag_split(values: list[str]) -> tuple[str, str] | None:
    """``(delimiter, stats)`` when the strings look like tag lists ("a|b", "x; y"), else None.

    Tags are short (at most three words each) and come from a vocabulary that repeats
    across rows; free text with commas fails the second test.
    """
    for delim in TAG_DELIMITERS:
        with_delim = sum(delim in v for v in values)
        if with_delim / len(values) < 0.2:
            continue
        per_cell = [[t.strip() for t in v.split(delim) if t.strip()] for v in values]
        tokens = [t for cell in per_cell for t in cell]
        if not tokens:
            continue
        words = np.mean([len(t.split()) for t in tokens])
        if words > 3 or max(len(t) for t in tokens) > 60:
            continue
        vocab = len(set(tokens))
        # '|' is rare in prose, so it needs less evidence of a repeating vocabulary.
        max_vocab_share = 0.8 if delim == "|" else 0.5
        if len(tokens) >= 4 and vocab > max_vocab_share * len(tokens):
            continue
        stats = (
            f"{delim!r}-separated tags in {with_delim / len(values):.0%} of cells, "
            f"{len(tokens) / len(values):.1f} tags per cell, {_n(vocab)} distinct tags"
        )
        return delim, stats
    return None


def _datetime_reason(values: pd.Series, sample: pd.Series) -> str | None:
    """Reason for strings that pandas parses as dates, or None.

    Detection parses the sample with per-cell format inference (slow, forgiving); the
    range then comes from one vectorised parse of the whole column.
    """
    text = sample.str.strip()
    if not text.str.contains(_DIGIT).all():
        return None  # words such as "May" parse as dates, but a date column has digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        share = pd.to_datetime(text, errors="coerce", format="mixed").notna().mean()
        if share < DATE_MIN_FRACTION:
            return None
        full = values.str.strip()
        parsed = pd.to_datetime(full, errors="coerce")
        if parsed.notna().mean() < share - 0.05:  # formats vary from row to row
            parsed = pd.to_datetime(full, errors="coerce", format="mixed")
    return (
        f"datetime: {share:.0%} of {_n(len(text))} sampled values parse as dates "
        f"({parsed.min():%Y-%m-%d} to {parsed.max():%Y-%m-%d})"
    )


def _string_reason(
    values: pd.Series, name, num_rows: int, base_dir, sample_size: int, seed: int
) -> tuple[str, str, str | None]:
    """Modality, reason and tag delimiter for a column of present strings."""
    values = values.astype(str)
    n = len(values)
    distinct = values.nunique()
    if distinct == 1:
        return "ignored", f"ignored: constant (every value is {_short(values.iloc[0])})", None

    media = _path_column_reason(values.tolist(), base_dir, sample_size, seed)
    if media:
        return media[0], media[1], None

    # Cheap tests on a sample of cells first; full-column work only once a test passes.
    sample = values.iloc[_sample_positions(n, STAT_SAMPLE_SIZE, seed)]
    if _parse_number_strings(sample)[1].mean() >= PARSE_MIN_FRACTION:
        numbers_, parsed = _parse_number_strings(values)
        stripped = values[parsed].str.strip()
        leading_zero = stripped.str.match(r"^0\d").to_numpy(dtype=bool)
        if leading_zero.any():
            example = stripped[leading_zero].iloc[0]
            return (
                "categorical",
                (
                    f"categorical: digit strings with leading zeros (e.g. {example!r}) are codes, "
                    f"not quantities; {_n(distinct)} distinct values in {_rows(n)}"
                ),
                None,
            )
        bad = n - int(parsed.sum())
        origin = " stored as strings" + (
            f", {bad} unparseable cell(s) read as missing" if bad else ""
        )
        modality, reason = _numeric_reason(numbers_[parsed], name, origin)
        return modality, reason, None

    date_reason = _datetime_reason(values, sample)
    if date_reason:
        return "datetime", date_reason, None

    tags = _tag_split(sample.tolist())
    if tags:
        return "multilabel", f"multilabel: {tags[1]}", tags[0]

    id_reason = id_like_reason(values)
    if id_reason:
        return "ignored", f"ignored: {id_reason}", None
    words = float(values.str.split().str.len().mean())
    ratio = distinct / n
    if words >= 2 and ratio > 0.5:
        return (
            "text",
            (f"text: free text, {words:.1f} words per cell on average, {ratio:.0%} distinct"),
            None,
        )
    if words >= 4 and distinct > 20:
        # Templated sentences repeat, but they are still language, not a handful of codes.
        return (
            "text",
            f"text: sentences, {words:.1f} words per cell on average, {_n(distinct)} distinct "
            f"in {_rows(n)}",
            None,
        )
    if distinct <= class_limit(num_rows):
        return "categorical", f"categorical: {_n(distinct)} distinct values in {_rows(n)}", None
    return (
        "text",
        (
            f"text: {_n(distinct)} distinct short strings in {_rows(n)} ({words:.1f} words per cell) "
            f"— too many for categories"
        ),
        None,
    )


# --------------------------------------------------------------------------- columns


def _object_reason(
    present: pd.Series, name, num_rows: int, base_dir, sample_size: int, seed: int
) -> tuple[str, str, str | None]:
    """Modality, reason and delimiter for a column of Python objects, by its dominant cell type."""
    pos = _sample_positions(len(present), sample_size, seed)
    sample = [present.iloc[i] for i in pos]
    kinds = pd.Series([_cell_kind(c) for c in sample]).value_counts()
    kind = str(kinds.index[0])
    share = kinds.iloc[0] / len(sample)
    mixed = f" ({share:.0%} of sampled cells; the rest are other types)" if share < 1 else ""

    if kind in ("str", "other"):
        return _string_reason(present.astype(str), name, num_rows, base_dir, sample_size, seed)
    if kind == "number":
        numbers_, parsed = _parse_number_strings(present.astype(str))
        return (*_numeric_reason(numbers_[parsed], name, mixed), None)
    if kind == "bool":
        return _bool_reason(present)
    if kind == "datetime":
        parsed = pd.to_datetime(present, errors="coerce")
        return (
            "datetime",
            (
                f"datetime: date/time objects{mixed} ({parsed.min():%Y-%m-%d} to {parsed.max():%Y-%m-%d})"
            ),
            None,
        )
    if kind == "pil":
        return "image", f"image: PIL images in {share:.0%} of {_n(len(sample))} sampled cells", None
    if kind == "bytes":
        for media in ("image", "audio"):
            found = _media_reason(sample, base_dir, media, "bytes cells")
            if found:
                return found[0], found[1], None
        return (
            "ignored",
            (
                f"ignored: bytes cells that decode neither as images nor as audio "
                f"(tried {_n(len(sample))} sampled cells)"
            ),
            None,
        )
    if kind == "wave":
        found = _media_reason(sample, base_dir, "audio", "(waveform, rate) cells")
        if found:
            return found[0], found[1], None
        return "ignored", "ignored: (waveform, rate) cells that do not decode as audio", None
    if kind == "array":
        shapes = pd.Series([str(getattr(c, "shape", "?")) for c in sample]).value_counts()
        ndims = {getattr(c, "ndim", 0) for c in sample}
        if ndims <= {2, 3}:
            found = _media_reason(sample, base_dir, "image", "array cells")
            if found:
                return found[0], f"{found[1]} (shape {shapes.index[0]})", None
        return (
            "ignored",
            (
                f"ignored: array cells of shape {shapes.index[0]} are not supported "
                f"(2-D/3-D arrays are images; a 1-D waveform is audio only as a (waveform, sample_rate) tuple)"
            ),
            None,
        )
    if kind == "list":
        return _list_reason(sample)
    return "ignored", f"ignored: cells of type {type(sample[0]).__name__} are not supported", None


def _bool_reason(present: pd.Series) -> tuple[str, str, None]:
    counts = present.astype(bool).value_counts()
    if len(counts) == 1:
        return "ignored", f"ignored: constant (every value is {counts.index[0]})", None
    return (
        "categorical",
        (
            f"categorical: boolean ({_n(int(counts.get(True, 0)))} True, "
            f"{_n(int(counts.get(False, 0)))} False)"
        ),
        None,
    )


def _list_reason(sample: list) -> tuple[str, str, None]:
    tokens = [t for cell in sample if _cell_kind(cell) == "list" for t in cell]
    if tokens and all(isinstance(t, float) for t in tokens):
        lengths = {len(c) for c in sample}
        return (
            "ignored",
            (
                f"ignored: cells are lists of floats (lengths {sorted(lengths)[:3]}) — numeric vectors "
                f"are not supported; split them into numeric columns"
            ),
            None,
        )
    per_cell = len(tokens) / len(sample)
    vocab = len({str(t) for t in tokens})
    return (
        "multilabel",
        (
            f"multilabel: list cells, {per_cell:.1f} tags per cell, {_n(vocab)} distinct tags "
            f"in {_n(len(sample))} sampled cells"
        ),
        None,
    )


def infer_column(
    series: pd.Series,
    *,
    base_dir: str | os.PathLike | None = None,
    sample_size: int = 200,
    seed: int = 0,
) -> ColumnSchema:
    """The modality of one column, with the reason, as :func:`infer_schema` picks it."""
    name = series.name
    num_rows = len(series)
    mask = present_mask(series)
    present = series[mask]
    delimiter = None
    if len(present) == 0:
        modality, reason = "ignored", f"ignored: empty (all {_n(num_rows)} cells missing)"
    elif pd.api.types.is_bool_dtype(series.dtype):
        modality, reason, delimiter = _bool_reason(present)
    elif pd.api.types.is_datetime64_any_dtype(series.dtype):
        if present.nunique() == 1:
            modality, reason = "ignored", f"ignored: constant (every value is {present.iloc[0]})"
        else:
            modality, reason = (
                "datetime",
                (
                    f"datetime: {series.dtype} values from {present.min():%Y-%m-%d} to {present.max():%Y-%m-%d}"
                ),
            )
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = present.to_numpy(dtype=np.float64)
        modality, reason = _numeric_reason(values, name, "")
    elif pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        modality, reason, delimiter = _string_reason(
            present, name, num_rows, base_dir, sample_size, seed
        )
    else:
        if isinstance(series.dtype, pd.CategoricalDtype):
            present = present.astype(object)
        modality, reason, delimiter = _object_reason(
            present, name, num_rows, base_dir, sample_size, seed
        )
    missing = num_rows - len(present)
    if missing and modality != "ignored":
        reason += f"; {_n(missing)} missing"
    return ColumnSchema(name=name, modality=modality, reason=reason, delimiter=delimiter)


# --------------------------------------------------------------------------- label


def _label_error(name, message: str) -> SchemaError:
    return SchemaError(f"label {name!r} {message}")


def _single_class_error(name, value, count: int) -> SchemaError:
    return _label_error(
        name,
        f"has a single class {_short(value)} in {_rows(count)}: a classifier needs at least two; "
        f"check that the table was not filtered to one class, or pick another label column",
    )


def _class_counts(present: pd.Series) -> pd.Series:
    return hashable_values(present).value_counts()


def _label_problem(
    series: pd.Series, inferred: ColumnSchema, requested: str
) -> tuple[str, str, str, str | None]:
    """``(problem_type, problem_reason, label modality, delimiter)`` for the label column."""
    name = series.name
    present = series[present_mask(series)]
    n = len(present)
    if n == 0:
        raise _label_error(
            name,
            f"is empty: all {_n(len(series))} cells are missing; pick a label column with values",
        )
    delimiter = inferred.delimiter

    if requested == "regression":
        as_text = present.astype(str)
        numbers_, parsed = _parse_number_strings(as_text)
        if pd.api.types.is_bool_dtype(series.dtype) or not parsed.all():
            bad_pos = int(np.flatnonzero(~parsed)[0]) if not parsed.all() else 0
            raise _label_error(
                name,
                f"cannot be a regression target: {_n(int((~parsed).sum()))} of {_n(n)} values are "
                f"not numbers, e.g. {_short(present.iloc[bad_pos])} (row {present.index[bad_pos]}); "
                f"use problem_type='multiclass' or clean the column",
            )
        return "regression", "regression: set by user", "numeric", None

    if requested == "multilabel":
        if inferred.modality != "multilabel":
            delimiter = None  # every cell is one tag
        return "multilabel", "multilabel: set by user", "multilabel", delimiter

    counts = _class_counts(present)
    nd = len(counts)
    if requested in ("binary", "multiclass", "auto_classification"):
        if nd == 1:
            raise _single_class_error(name, counts.index[0], n)
        if requested == "auto_classification":
            problem = "binary" if nd == 2 else "multiclass"
            return (
                problem,
                f"{problem}: set by user (categorical, {_n(nd)} classes)",
                "categorical",
                None,
            )
        if requested == "binary" and nd != 2:
            raise _label_error(
                name,
                f"has {_n(nd)} distinct values in {_rows(n)}, not the 2 a binary problem needs; "
                f"use problem_type='multiclass'",
            )
        return requested, f"{requested}: set by user", "categorical", None

    # problem_type == "auto": decide from the values.
    if (inferred.modality == "multilabel" and inferred.delimiter) or _cell_kind(
        present.iloc[0]
    ) == "list":
        return "multilabel", inferred.reason, "multilabel", delimiter
    if nd == 1:
        raise _single_class_error(name, counts.index[0], n)
    if inferred.modality in ("image", "audio"):
        raise _label_error(
            name,
            f"holds {inferred.modality} cells ({inferred.reason}); a predictor's label must be "
            f"classes, numbers or tags — for images from conditions use a Generator",
        )
    values = _label_numbers(present)
    if nd == 2:
        shown = ", ".join(_short(v) for v in sorted(counts.index, key=str))
        return "binary", f"binary: 2 classes ({shown}) in {_rows(n)}", "categorical", None
    if values is None:
        reason = f"multiclass: {_n(nd)} distinct values in {_rows(n)}"
        if nd > class_limit(n):
            reason += f" — more classes than expected (~{class_limit(n)}); check this is the label"
        return "multiclass", reason, "categorical", None
    integral = _all_integers(values)
    lo, hi = _num(values.min()), _num(values.max())
    if integral and (nd <= INT_CODE_MAX_DISTINCT or nd <= min(class_limit(n), 0.05 * n)):
        return (
            "multiclass",
            (
                f"multiclass: {nd} distinct integers ({lo}–{hi}) in {_rows(n)} — read as class codes; "
                f"pass problem_type='regression' if they are quantities"
            ),
            "categorical",
            None,
        )
    kind = "integers" if integral else "floats"
    return (
        "regression",
        (f"regression: {kind}, {_n(nd)} distinct values in {_rows(n)} (range {lo} to {hi})"),
        "numeric",
        None,
    )


def _label_numbers(present: pd.Series) -> np.ndarray | None:
    """The label's values as floats when all of them are numbers (or number strings), else None."""
    if pd.api.types.is_bool_dtype(present.dtype):
        return None
    if pd.api.types.is_numeric_dtype(present.dtype):
        return present.to_numpy(dtype=np.float64)
    if any(_cell_kind(c) not in ("str", "number") for c in present.iloc[:50]):
        return None
    text = present.astype(str).str.strip()
    if text.str.match(r"^0\d").any():
        return None  # '02134' is a code, not a number
    numbers_, parsed = _parse_number_strings(text)
    return numbers_ if parsed.all() else None


_MODALITY_TO_PROBLEM = {"numeric": "regression", "multilabel": "multilabel"}


# --------------------------------------------------------------------------- schema


def infer_schema(
    df: pd.DataFrame,
    *,
    label: str | None = None,
    overrides: dict[str, str] | None = None,
    problem_type: str = "auto",
    sample_size: int = 200,
    base_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Schema:
    """Pick every column's modality, with a one-line reason, and the label's problem type.

    Args:
        df: the table. Image/audio cells may be paths, bytes, arrays (or PIL images).
        label: the column to predict; kept in ``Schema.columns`` but not a feature.
        overrides: ``{column: modality}`` that wins over inference (see :func:`parse_overrides`).
            Overriding the label to ``numeric``/``categorical``/``multilabel`` sets its problem type.
        problem_type: ``"auto"`` or one of :data:`PROBLEM_TYPES`.
        sample_size: how many cells per column are decoded to test for images/audio.
        base_dir: folder that relative paths resolve against; default ``df.attrs["base_dir"]``.
        seed: seeds the sample of cells, so the same table always gets the same schema.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"infer_schema needs a pandas DataFrame; got {type(df).__name__}")
    if not isinstance(sample_size, numbers.Integral) or sample_size < 1:
        raise ConfigError(f"sample_size must be a positive integer; got {sample_size!r}")
    if problem_type not in ("auto", *PROBLEM_TYPES):
        raise ConfigError(
            f"problem_type {problem_type!r} is unknown; choose 'auto' or one of {', '.join(PROBLEM_TYPES)}"
        )
    names = list(df.columns)
    bad_names = [c for c in names if not isinstance(c, str)]
    if bad_names:
        raise SchemaError(
            f"column names must be strings; got {bad_names[0]!r} ({type(bad_names[0]).__name__}); "
            f"rename with df.columns = df.columns.astype(str)"
        )
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise SchemaError(
            f"column name(s) {', '.join(map(repr, dupes))} appear more than once; rename them"
        )
    overrides = dict(overrides or {})
    for column, modality in overrides.items():
        if column not in df.columns:
            raise _no_such_column("overridden", column, names)
        _check_modality(modality, f"override for column {column!r}")
    if label is not None and label not in df.columns:
        raise _no_such_column("label", label, names)
    if problem_type != "auto" and label is None:
        raise ConfigError(f"problem_type={problem_type!r} needs a label column; pass label=...")
    if base_dir is None:
        base_dir = df.attrs.get("base_dir")

    schema = Schema(label=label)
    for name in names:
        inferred = infer_column(df[name], base_dir=base_dir, sample_size=sample_size, seed=seed)
        if name in overrides:
            schema.columns[name] = _overridden(df[name], inferred, overrides[name])
        else:
            schema.columns[name] = inferred

    if label is not None:
        requested = problem_type
        if label in overrides and requested == "auto":
            requested = _requested_from_override(label, overrides[label])
        problem, reason, modality, delimiter = _label_problem(
            df[label], schema.columns[label], requested
        )
        column = schema.columns[label]
        schema.problem_type, schema.problem_reason = problem, reason
        column.modality = modality
        column.delimiter = delimiter if modality == "multilabel" else None
        column.reason = f"label — {reason}"
        column.overridden = column.overridden or problem_type != "auto"
    return schema


def _requested_from_override(label: str, modality: str) -> str:
    if modality in _MODALITY_TO_PROBLEM:
        return _MODALITY_TO_PROBLEM[modality]
    if modality == "categorical":
        return "auto_classification"
    raise SchemaError(
        f"label {label!r} is overridden to {modality!r}, which cannot be predicted; "
        f"override it to categorical, numeric or multilabel"
    )


def _overridden(series: pd.Series, inferred: ColumnSchema, modality: str) -> ColumnSchema:
    """The user's modality for a column, with the inferred one kept in the reason for reference."""
    delimiter = inferred.delimiter
    present = series[present_mask(series)]
    if (
        modality == "multilabel"
        and delimiter is None
        and len(present)
        and isinstance(present.iloc[0], str)
    ):
        delimiter = (
            "|"  # strings with no detected delimiter: one tag per cell unless '|' splits them
        )
    return ColumnSchema(
        name=inferred.name,
        modality=modality,
        reason=f"{modality}: set by user (inferred {inferred.reason})",
        overridden=True,
        delimiter=delimiter if modality == "multilabel" else None,
    )
