"""The rules other modules judge columns by: thresholds, the class limit, how reasons
quote numbers, and what makes a column a row identifier (a unique or increasing integer,
a row counter, mixed letter-digit codes, a name like ``user_id``).

:mod:`~polymodal.data.column_reasons` types columns with them; the cleaning report and the
schema check a column for identifiers with :func:`id_like_reason` and
:func:`integer_id_reason`.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from polymodal.data.cells import cell_kind, hashable_values, parse_number_strings, present_mask

# At most this many distinct integers (each seen twice on average) reads as class codes,
# when they run from 0 or 1 with at most one gap (see integer_codes).
INT_CODE_MAX_DISTINCT = 20
# Integers numbered from 0 or 1 whose upper quarter of the range holds under this share of
# the rows are counts (bathrooms, tax liens), not codes (see count_top_share).
COUNT_MAX_TOP_SHARE = 0.1
COUNT_MIN_DISTINCT = 3  # a 0/1 flag is a class either way
# At least this share of sampled cells must parse for strings to count as numbers/dates.
PARSE_MIN_FRACTION = 0.95
DATE_MIN_FRACTION = 0.9
DATE_MIN_YEAR = 1000  # a string parsed to an earlier year is a rank or code ("1st"), not a date
# At least this share of sampled strings must carry an image/audio file extension.
MEDIA_EXT_MIN_FRACTION = 0.5
# Without a telling name, a unique integer column needs this many rows to look like an ID.
ID_MIN_ROWS = 10
TAG_DELIMITERS = ("|", ";", ",")
# Parsing tests (numbers, dates, tags) look at this many sampled cells of a column.
STAT_SAMPLE_SIZE = 2000

_ID_NAME = re.compile(r"(^|[_\s.-])(id|ids|idx|index|key|uuid|guid|rowid)$|^unnamed: ?\d+$", re.I)
# Names of row counters ("Sample Number", "row_no", "seq"): with values that count up row
# by row, such a column numbers the rows (restarting per group) and says nothing else.
_COUNTER_NAME = re.compile(r"(^|[_\s.-])(number|no|num|nr|n|seq|sequence|counter|row|#)$", re.I)
# A code column: single tokens of letters and digits mixed (N1A1, AB-1234, a hash).
_CODE = re.compile(r"^(?=[^\s]*[A-Za-z])(?=[^\s]*\d)[A-Za-z0-9_.:/-]+$")
# Share of distinct values from which strings named or shaped like identifiers are codes,
# not categories (an ID repeats where one individual has several rows).
CODE_MIN_DISTINCT = 0.5
# Unique strings this short (words per cell, on average), in a column named for row
# names or names of people, are a name per row (R's exported ``rownames``, a player),
# not text a model can read meaning from; elsewhere (a title, an utterance) they are text.
NAME_MAX_WORDS = 3.0
_ROW_NAME = re.compile(r"^(row[ ._]?names?|players?|persons?|people"
                       r"|(full|first|last|player|person|customer)?[ ._]?names?)$", re.I)
# Share of rows one more than the row before, from which a counter-named column counts rows.
COUNTER_MIN_STEPS = 0.9
_CAMEL_ID = re.compile(r"[a-z0-9]I[dD]$")


def class_limit(num_rows: int) -> int:
    """Most distinct values a categorical column (or class label) is expected to have."""
    return max(50, round(0.05 * num_rows))



def fmt_count(count: int) -> str:
    """A count for a reason, with thousands separators."""
    return f"{count:,}"


def fmt_rows(count: int) -> str:
    """``"1 row"``, ``"1,797 rows"``."""
    return f"{count:,} row" + ("" if count == 1 else "s")


def fmt_number(x: float) -> str:
    """A number for a reason: integers with thousands separators, floats to 4 significant digits."""
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def fmt_value(value, width: int = 30) -> str:
    """A cell value for a reason, cut to ``width`` characters (strings quoted)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def id_name_hint(name) -> bool:
    """True when a column's name reads like an identifier (``id``, ``user_id``, ``PassengerId``)."""
    text = str(name).strip()
    return bool(_ID_NAME.search(text) or _CAMEL_ID.search(text))


# --------------------------------------------------------------------------- identifiers


def id_like_reason(series: pd.Series) -> str | None:
    """Why a column looks like a row identifier (to be ignored), or None.

    Integers (or integer strings): see :func:`integer_id_reason`. Other strings: every
    value distinct, and either named like an identifier, or with more distinct values
    than a categorical column would have and free of spaces or, in a column named for
    names (``rownames``, ``player_name``), of at most ``NAME_MAX_WORDS`` words on average.
    """
    mask = present_mask(series)
    if mask.sum() < 2 or pd.api.types.is_bool_dtype(series.dtype):
        return None
    present = series[mask]
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers_ = present.to_numpy(dtype=np.float64)
        return integer_id_reason(numbers_, series.name) if all_integers(numbers_) else None
    # Every kind of ID is mostly distinct; hashing is much cheaper than parsing numbers.
    if hashable_values(present).nunique() < CODE_MIN_DISTINCT * len(present):
        return None
    if present.dtype == object and any(
        cell_kind(c) != "str" for c in present.iloc[:STAT_SAMPLE_SIZE]
    ):
        return None
    values = present.astype(str)
    if parse_number_strings(values.iloc[:STAT_SAMPLE_SIZE])[1].all():
        numbers_, parsed = parse_number_strings(values)
        if parsed.all() and all_integers(numbers_):
            return integer_id_reason(numbers_, series.name)
        return None
    n, distinct = len(values), values.nunique()
    code_reason = _code_reason(values, series.name, distinct, len(series))
    if code_reason or distinct != n:
        return code_reason
    if id_name_hint(series.name):
        return f"ID-like — {fmt_count(n)} distinct strings in {fmt_rows(n)}, and the name {str(series.name)!r} reads as an identifier"
    if n > class_limit(len(series)) and not values.str.contains(r"\s", regex=True).any():
        return f"ID-like — {fmt_count(n)} distinct strings in {fmt_rows(n)}, none with spaces"
    if not (n > class_limit(n) and _ROW_NAME.match(str(series.name).strip())):
        return None
    words = float(values.str.split().str.len().mean())
    if words <= NAME_MAX_WORDS:
        return (f"ID-like — {fmt_count(n)} distinct short strings in {fmt_rows(n)} "
                f"({words:.1f} words each on average): a name per row, not text")
    return None


def _code_reason(values: pd.Series, name, distinct: int, num_rows: int) -> str | None:
    """Why mostly-distinct strings are identifier codes rather than categories or text:
    single tokens mixing letters and digits, more distinct values than a categorical
    column would have or named like an identifier, repeating where an individual has
    several rows (``N1A1``); None otherwise."""
    n = len(values)
    if distinct == n or distinct < CODE_MIN_DISTINCT * n:
        return None  # unique strings: judged by the caller's rules
    shaped = values.iloc[:STAT_SAMPLE_SIZE].str.fullmatch(_CODE).mean() >= PARSE_MIN_FRACTION
    if not shaped:
        return None
    if id_name_hint(name):
        return (f"ID-like — {fmt_count(distinct)} distinct codes in {fmt_rows(n)} (like "
                f"{fmt_value(values.iloc[0])}), and the name {str(name)!r} reads as an identifier")
    if distinct > class_limit(num_rows):
        return (f"ID-like — {fmt_count(distinct)} distinct codes in {fmt_rows(n)} (like "
                f"{fmt_value(values.iloc[0])}): letters and digits, too many for categories")
    return None


def integer_codes(lo: float, hi: float, distinct: int) -> bool:
    """Whether ``distinct`` integers from ``lo`` to ``hi`` read as class codes: numbered
    from 0 or 1 with at most one code unused. Other few-valued integers (cylinders 4-8, a
    city mileage 9-29, counts with gaps, years) are quantities: a model must be able to
    order them and to read a value training never saw."""
    return lo in (0, 1) and hi - lo + 1 <= distinct + 1


def count_top_share(values: np.ndarray, lo: float, hi: float, distinct: int) -> float | None:
    """The share of ``values`` in the upper quarter of their range ``lo``-``hi`` when
    it is under :data:`COUNT_MAX_TOP_SHARE` (integers numbered like codes that thin out
    toward the top: counts, which a model must order and read past the largest value
    training saw), else None. Decided by that share alone: a factor coded by frequency,
    its rarest level last, reads as a count too (its reason names the override)."""
    if distinct < COUNT_MIN_DISTINCT:
        return None
    share = float(np.mean(values > lo + 0.75 * (hi - lo)))
    return share if share < COUNT_MAX_TOP_SHARE else None


def all_integers(values: np.ndarray) -> bool:
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
    nd = len(pd.unique(values))
    hinted = id_name_hint(name)
    unique = nd == n
    near_unique = n >= 20 and nd >= 0.95 * n  # an ID column repeats where rows are duplicated
    diffs = np.diff(values)
    if not (unique or near_unique):
        counting = float(np.mean(diffs == 1))
        if n >= 20 and counting >= COUNTER_MIN_STEPS and _COUNTER_NAME.search(str(name).strip()):
            return (f"ID-like — a row counter: {counting:.0%} of rows are one more than the row "
                    f"before (restarting {int(np.sum(diffs <= 0))} time(s)), and the name "
                    f"{str(name)!r} reads as a row number")
        return None
    what = f"{fmt_count(nd)} distinct integers in {fmt_rows(n)}"
    if n >= ID_MIN_ROWS or hinted:
        if np.all(diffs > 0) or (near_unique and np.all(diffs >= 0)):
            return f"ID-like — {what}, increasing"
        if np.all(diffs < 0) or (near_unique and np.all(diffs <= 0)):
            return f"ID-like — {what}, decreasing"
    span = float(values.max() - values.min()) + 1
    if unique and n >= ID_MIN_ROWS and span <= 1.5 * n:
        return f"ID-like — {what}, a shuffled range {fmt_number(values.min())}–{fmt_number(values.max())}"
    if hinted:
        return f"ID-like — {what}, and the name {str(name)!r} reads as an identifier"
    return None
