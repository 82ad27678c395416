"""Why a column is of its modality: the per-column tests behind :func:`~polymodal.data.schema.infer_schema`.

:func:`column_reason` looks at one column and returns its modality with a one-line reason
that quotes the numbers it decided on ("categorical: 7 distinct values in 1,797 rows").
It is built to catch the classic mistakes of naive inference: integer-coded classes taken
for quantities, image paths taken for text, row IDs taken for features, numbers stored as
strings taken for categories.

Image and audio cells are tested by decoding a deterministic sample of ``sample_size``
cells with :mod:`polymodal.data.media`; whether strings parse as numbers, dates or tag
lists is decided on a sample of ``STAT_SAMPLE_SIZE`` cells; counts, ranges and distinct
values quoted in the reasons use all rows.

The thresholds, the identifier rules and the number formats the reasons use live in
:mod:`~polymodal.data.column_rules`.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd

from polymodal.data.category_encoding import MAX_CATEGORIES
from polymodal.data.cells import (
    CURRENCY_SIGNS,
    cell_kind,
    day_first,
    parse_dates,
    parse_number_strings,
    present_mask,
)
from polymodal.data.column_rules import (
    DATE_MIN_FRACTION,
    DATE_MIN_YEAR,
    INT_CODE_MAX_DISTINCT,
    MEDIA_EXT_MIN_FRACTION,
    PARSE_MIN_FRACTION,
    STAT_SAMPLE_SIZE,
    TAG_DELIMITERS,
    all_integers,
    class_limit,
    count_top_share,
    fmt_count,
    fmt_number,
    fmt_rows,
    fmt_value,
    id_like_reason,
    integer_codes,
    integer_id_reason,
)
from polymodal.data.media import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MediaError,
    load_audio,
    load_image,
    looks_like_media_path,
    resolve_path,
)

_DIGIT = re.compile(r"\d")
# Short strings with more values than a category column has are still categories (names
# that recur) when each value is in at least five rows on average; rarer, they are text.
MAX_NAME_RATIO = 0.2
# Labels of a word or two (job titles, makes) whose values mostly recur are categories with
# a long tail of rare ones, even when most values are rare: the rows that share a label
# are what a model learns from, where embedding a one-word title tells a tree little
# (bench/RESULTS.md, 'tabular_suite': loans' ``emp_title``).
MAX_LABEL_WORDS = 2.5
MIN_RECURRING_SHARE = 0.5  # of the rows, holding a value that is in another row too


def _sample_positions(num: int, sample_size: int, seed: int) -> np.ndarray:
    """Sorted positions of a deterministic sample of ``sample_size`` out of ``num``."""
    if num <= sample_size:
        return np.arange(num)
    return np.sort(np.random.default_rng(seed).choice(num, size=sample_size, replace=False))


def _numeric_reason(values: np.ndarray, name, origin: str, unparsed: int = 0) -> tuple[str, str]:
    """Modality and reason for a column of present numbers (``origin`` says how they were
    stored; ``unparsed`` cells of the column were not numbers and are not in ``values``)."""
    n = len(values)
    nd = len(pd.unique(values))  # hashing, not sorting: a million rows in a fraction of a second
    lo, hi = float(values.min()), float(values.max())
    if nd == 1:
        return "ignored", f"ignored: constant (every value is {fmt_number(lo)})"
    integral = all_integers(values)
    if integral:
        id_reason = integer_id_reason(values, name)
        if id_reason:
            return "ignored", f"ignored: {id_reason}"
        codes = nd <= INT_CODE_MAX_DISTINCT and 2 * nd <= n and integer_codes(lo, hi, nd)
        # Cells that are not numbers ("4+", a capped top) may be the top of the range.
        top_share = count_top_share(values, lo, hi, nd) if codes and not unparsed else None
        if top_share is not None:
            return "numeric", (
                f"numeric: counts{origin} — {nd} distinct integers ({fmt_number(lo)}–{fmt_number(hi)}) "
                f"in {fmt_rows(n)}, thinning out toward the top ({100 * top_share:.1f}% of rows "
                f"above {fmt_number(lo + 0.75 * (hi - lo))}); override with {name}=categorical"
            )
        if codes:
            return "categorical", (
                f"categorical: {nd} distinct integers ({fmt_number(lo)}–{fmt_number(hi)}) in {fmt_rows(n)} — "
                f"integer-coded classes, not quantities; override with {name}=numeric"
            )
        kind = "integers"
    else:
        kind = "floats"
    return "numeric", (
        f"numeric: {kind}{origin}, {fmt_count(nd)} distinct values in {fmt_rows(n)} "
        f"(range {fmt_number(lo)} to {fmt_number(hi)})"
    )

# --------------------------------------------------------------------------- media


def _is_file(cell: str, base_dir) -> bool:
    """True when a string cell names an existing file; False for text that cannot be a path."""
    try:
        return resolve_path(cell, base_dir).is_file()
    except (OSError, ValueError):  # name too long, embedded NUL byte, ...
        return False


def _decode_counts(cells: list, base_dir, kind: str) -> tuple[int, int, int, list]:
    """Decode cells as ``kind`` ("image"/"audio"): ``(opened, files_not_found, unreadable,
    clips)``, ``clips`` the (seconds, sample rate) of each decoded audio cell."""
    loader = load_image if kind == "image" else load_audio
    opened = not_found = unreadable = 0
    clips = []
    for cell in cells:
        try:
            decoded = loader(cell, base_dir)
            opened += 1
            if kind == "audio":
                wave, rate = decoded
                clips.append((len(wave) / rate, rate))
        except MediaError as exc:
            if str(exc).startswith("file not found"):
                not_found += 1
            else:
                unreadable += 1
    return opened, not_found, unreadable, clips


def _media_reason(cells: list, base_dir, kind: str, described: str) -> tuple[str, str] | None:
    """``(kind, reason)`` when at least half of the sampled cells decode as ``kind``, else None.

    ``described`` says what the cells are ("files", "bytes cells") for the reason.
    """
    return _decoded_reason(kind, _decode_counts(cells, base_dir, kind), len(cells), described)


def _decoded_reason(kind: str, counts: tuple, total: int, described: str):
    opened, not_found, unreadable, clips = counts
    if opened / total < 0.5:
        return None
    verb = "open as images" if kind == "image" else "decode as audio"
    reason = f"{kind}: {opened / total:.0%} of {fmt_count(total)} sampled {described} {verb}"
    if opened < total:
        reason += f" ({not_found} not found, {unreadable} unreadable)"
    if clips:  # what a speech/audio user checks first: clip length and sample rate
        seconds = float(np.median([s for s, _ in clips]))
        rates = sorted({r for _, r in clips})
        khz = [f"{r / 1000:g}" for r in (rates if len(rates) <= 2 else (rates[0], rates[-1]))]
        reason += (f"; median {seconds:.2g} s, "
                   f"{('–' if len(rates) > 2 else ' and ').join(khz)} kHz")
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
                f"{kind}: {urls / total:.0%} of {fmt_count(total)} sampled cells are URLs of {kind} files, "
                f"which polymodal never downloads — download them and put local paths in the table"
            )
        opened, not_found, unreadable, _ = counts
        where = f"under {base_dir}" if base_dir is not None else "(no base_dir given)"
        return kind, (
            f"{kind}: {with_ext / total:.0%} of {fmt_count(total)} sampled cells have {kind} file "
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
                f"ignored: {exist / total:.0%} of {fmt_count(total)} sampled cells are paths to files "
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
            f"{len(tokens) / len(values):.1f} tags per cell, {fmt_count(vocab)} distinct tags"
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
        dates = pd.to_datetime(text, errors="coerce", format="mixed")
        # "1st", "2nd", "3rd" parse as days of year 1: ranks, not dates.
        share = (dates.dt.year >= DATE_MIN_YEAR).mean()
        if share < DATE_MIN_FRACTION:
            return None
        full = values.str.strip()
        dayfirst = day_first(full)
        if dayfirst:  # one parse that keeps ISO cells year-month-day
            parsed = parse_dates(full, dayfirst=True)
        else:
            parsed = pd.to_datetime(full, errors="coerce")
            if parsed.notna().mean() < share - 0.05:  # formats vary from row to row
                parsed = parse_dates(full)
    return (
        f"datetime: {share:.0%} of {fmt_count(len(text))} sampled values parse as dates"
        f"{', day first' if dayfirst else ''} "
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
        return "ignored", f"ignored: constant (every value is {fmt_value(values.iloc[0])})", None

    media = _path_column_reason(values.tolist(), base_dir, sample_size, seed)
    if media:
        return media[0], media[1], None

    # Cheap tests on a sample of cells first; full-column work only once a test passes.
    sample = values.iloc[_sample_positions(n, STAT_SAMPLE_SIZE, seed)]
    if parse_number_strings(sample)[1].mean() >= PARSE_MIN_FRACTION:
        numbers_, parsed = parse_number_strings(values)
        stripped = values[parsed].str.strip()
        leading_zero = stripped.str.match(r"^0\d").to_numpy(dtype=bool)
        if leading_zero.any():
            example = stripped[leading_zero].iloc[0]
            return (
                "categorical",
                (
                    f"categorical: digit strings with leading zeros (e.g. {example!r}) are codes, "
                    f"not quantities; {fmt_count(distinct)} distinct values in {fmt_rows(n)}"
                ),
                None,
            )
        bad = n - int(parsed.sum())
        signed = stripped.str.contains(f"[%{CURRENCY_SIGNS}]", regex=True).to_numpy(dtype=bool)
        origin = " stored as strings" + (
            f", currency/percent signs dropped (e.g. {stripped[signed].iloc[0]!r})"
            if signed.any() else ""
        ) + (f", {bad} unparseable cell(s) read as missing" if bad else "")
        modality, reason = _numeric_reason(numbers_[parsed], name, origin, unparsed=bad)
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
    counts = values.value_counts()  # words of each distinct string, counted as often as it occurs
    words = float((pd.Series(counts.index, dtype=str).str.split().str.len().to_numpy()
                   * counts.to_numpy()).sum() / n)
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
            f"text: sentences, {words:.1f} words per cell on average, {fmt_count(distinct)} distinct "
            f"in {fmt_rows(n)}",
            None,
        )
    if distinct <= class_limit(num_rows):
        return "categorical", f"categorical: {fmt_count(distinct)} distinct values in {fmt_rows(n)}", None
    if words < 4 and ratio <= MAX_NAME_RATIO and distinct <= MAX_CATEGORIES:
        # Names that recur (a business, a city, a product) are categories with many levels:
        # the rows of one name share it, where n-grams of the name would not.
        return (
            "categorical",
            (f"categorical: {fmt_count(distinct)} distinct short strings in {fmt_rows(n)}, each "
             f"in {n / distinct:.1f} rows on average — names that recur, many categories"),
            None,
        )
    recurring = float(counts[counts > 1].sum() / n)
    if words < MAX_LABEL_WORDS and recurring >= MIN_RECURRING_SHARE and distinct <= MAX_CATEGORIES:
        return (
            "categorical",
            (f"categorical: {fmt_count(distinct)} distinct labels of {words:.1f} words in "
             f"{fmt_rows(n)}, {recurring:.0%} of rows holding one that recurs — many "
             "categories with a long tail"),
            None,
        )
    return (
        "text",
        (
            f"text: {fmt_count(distinct)} distinct short strings in {fmt_rows(n)} ({words:.1f} words per cell) "
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
    kinds = pd.Series([cell_kind(c) for c in sample]).value_counts()
    kind = str(kinds.index[0])
    share = kinds.iloc[0] / len(sample)
    mixed = f" ({share:.0%} of sampled cells; the rest are other types)" if share < 1 else ""

    if kind in ("str", "other"):
        return _string_reason(present.astype(str), name, num_rows, base_dir, sample_size, seed)
    if kind == "number":
        numbers_, parsed = parse_number_strings(present.astype(str))
        return (*_numeric_reason(numbers_[parsed], name, mixed,
                                 unparsed=len(parsed) - int(parsed.sum())), None)
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
        return "image", f"image: PIL images in {share:.0%} of {fmt_count(len(sample))} sampled cells", None
    if kind == "bytes":
        for media in ("image", "audio"):
            found = _media_reason(sample, base_dir, media, "bytes cells")
            if found:
                return found[0], found[1], None
        return (
            "ignored",
            (
                f"ignored: bytes cells that decode neither as images nor as audio "
                f"(tried {fmt_count(len(sample))} sampled cells)"
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
            f"categorical: boolean ({fmt_count(int(counts.get(True, 0)))} True, "
            f"{fmt_count(int(counts.get(False, 0)))} False)"
        ),
        None,
    )


def _list_reason(sample: list) -> tuple[str, str, None]:
    tokens = [t for cell in sample if cell_kind(cell) == "list" for t in cell]
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
            f"multilabel: list cells, {per_cell:.1f} tags per cell, {fmt_count(vocab)} distinct tags "
            f"in {fmt_count(len(sample))} sampled cells"
        ),
        None,
    )


def column_reason(
    series: pd.Series,
    *,
    base_dir: str | os.PathLike | None = None,
    sample_size: int = 200,
    seed: int = 0,
) -> tuple[str, str, str | None]:
    """``(modality, reason, tag delimiter)`` of one column, as :func:`infer_schema` picks it.

    The delimiter is set only for multilabel columns of delimited strings.
    """
    name = series.name
    num_rows = len(series)
    mask = present_mask(series)
    present = series[mask]
    delimiter = None
    if len(present) == 0:
        modality, reason = "ignored", f"ignored: empty (all {fmt_count(num_rows)} cells missing)"
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
        reason += f"; {fmt_count(missing)} missing"
    return modality, reason, delimiter
