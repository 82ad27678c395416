"""The cleaning report: what is wrong with a table, and what will be done about it.

:func:`clean_report` never changes the table. It finds missing values, image/audio cells
that do not decode (and says why), duplicate rows, constant and ID-like columns,
columns that leak the label, and class imbalance; and it states, per column, the default
action the transforms apply ("numeric: 3 missing → filled with the median 12.5 + a
missing indicator"). :attr:`CleaningReport.issues` lists the findings as one line each,
most important first.

Row numbers in the report are 0-based positions in the table (``df.iloc``), the same
numbering as ``Batch.index``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from polymodal.data.audio_checks import audio_notes, clip_stats
from polymodal.data.cells import (
    cell_tags,
    column_numbers,
    datetime_seconds,
    hashable_values,
    parse_number_strings,
    present_mask,
)
from polymodal.data.column_rules import id_like_reason
from polymodal.data.media import MediaError, load_audio, load_image
from polymodal.data.schema import Schema
from polymodal.data.table_checks import LeakageFinding, duplicate_rows, find_leakage
from polymodal.errors import ConfigError, DataError, SchemaError

IMBALANCE_MAX_RATIO = 10.0
IMBALANCE_MIN_CLASS_ROWS = 5
# A categorical or text column whose cells are at least this share numbers is reported: it
# may be a numeric column with some junk, which the user can read as numbers instead.
MOSTLY_NUMBERS_MIN_FRACTION = 0.5
# Row numbers listed in a one-line notice.
NOTICE_MAX_ROWS = 5
# Only these modalities can hide a row identifier (unique file paths are not IDs).
_ID_CANDIDATES = ("numeric", "categorical", "text", "ignored")
# Markdown lists stop after this many rows; to_dict keeps everything.
MARKDOWN_MAX_ROWS = 20


@dataclass
class FileProblem:
    """One image/audio cell that does not decode."""

    row: int
    cell: str
    reason: str


@dataclass
class ColumnReport:
    """Missing values and the default action for one column (files too, for media)."""

    name: str
    modality: str
    missing_count: int
    missing_fraction: float
    action: str
    files_checked: int = 0
    file_problems: list[FileProblem] = field(default_factory=list)


@dataclass
class ClassBalance:
    """Rows per class (per tag for multilabel) and whether the balance needs attention."""

    counts: dict[str, int]
    ratio: float  # largest / smallest count
    imbalanced: bool
    message: str


@dataclass
class CleaningReport:
    """Everything :func:`clean_report` found; ``issues`` is the one-line summary."""

    num_rows: int
    columns: dict[str, ColumnReport]
    duplicate_rows: list[int]  # rows identical (in every column) to an earlier row
    duplicate_of: dict[int, int]  # duplicate row -> the earlier row it repeats
    duplicate_rows_used_columns: list[int]  # same, comparing only features and label
    constant_columns: list[str]
    id_like_columns: list[str]
    all_missing_columns: list[str]
    leakage: list[LeakageFinding]
    class_balance: ClassBalance | None
    label: str | None
    label_missing: int
    issues: list[str]
    # Cells read differently from how they are written (non-numbers in a numeric column
    # read as missing; a mostly numeric column read as categories or text), one line each.
    cell_notes: list[str] = field(default_factory=list)

    def notices(self) -> list[str]:
        """One line per finding about rows, files or cells that training skips or reads
        differently from how they are written, with counts and the first row numbers:
        for the console, where nothing of the kind may pass silently."""
        lines = []
        for c in self.columns.values():
            if c.file_problems:
                lines.append(
                    f"{c.modality} column {c.name!r}: {len(c.file_problems):,} of "
                    f"{c.files_checked:,} checked files do not decode (rows "
                    f"{_rows_list([p.row for p in c.file_problems], NOTICE_MAX_ROWS)}) → marked "
                    f"absent; {_problem_examples(c.file_problems)}")
        lines += self.cell_notes
        lines += [f"column {name!r} is empty (every cell missing) → ignored"
                  for name in self.all_missing_columns if name != self.label]
        return lines

    def unreadable_columns(self) -> list[ColumnReport]:
        """Feature columns of files none of whose checked cells decode."""
        return [c for c in self.columns.values()
                if c.files_checked and len(c.file_problems) == c.files_checked]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of the whole report."""
        d = asdict(self)
        d["columns"] = list(d["columns"].values())
        d["duplicate_of"] = {str(k): v for k, v in self.duplicate_of.items()}
        return d

    def to_markdown(self) -> str:
        """The report as Markdown: issues, a per-column table, then the details."""
        lines = [
            "# Cleaning report",
            "",
            f"{self.num_rows:,} rows, {len(self.columns)} columns"
            + (f", label {self.label!r}" if self.label else "")
            + ".",
            "",
            "## Issues",
            "",
        ]
        lines += [f"- {issue}" for issue in self.issues] or ["- none found"]
        lines += [
            "",
            "## Columns",
            "",
            "| column | modality | missing | action |",
            "|---|---|---|---|",
        ]
        for c in self.columns.values():
            lines.append(
                f"| {_md(c.name)} | {c.modality} | {c.missing_count:,} ({c.missing_fraction:.0%}) "
                f"| {_md(c.action)} |"
            )
        for c in self.columns.values():
            if not c.file_problems:
                continue
            lines += [
                "",
                f"## Unreadable {c.modality} cells in {c.name!r} "
                f"({len(c.file_problems)} of {c.files_checked:,} checked)",
                "",
                "| row | cell | why |",
                "|---|---|---|",
            ]
            lines += [
                f"| {p.row} | {_md(p.cell)} | {_md(p.reason)} |"
                for p in c.file_problems[:MARKDOWN_MAX_ROWS]
            ]
            lines += _more(len(c.file_problems))
        if self.duplicate_rows:
            lines += ["", "## Duplicate rows", "", "| row | repeats row |", "|---|---|"]
            lines += [
                f"| {r} | {self.duplicate_of[r]} |" for r in self.duplicate_rows[:MARKDOWN_MAX_ROWS]
            ]
            lines += _more(len(self.duplicate_rows))
        if self.leakage:
            lines += ["", "## Likely leakage", ""]
            lines += [f"- {f.message}" for f in self.leakage]
        if self.class_balance is not None:
            cb = self.class_balance
            lines += ["", "## Class balance", "", cb.message, "", "| class | rows |", "|---|---|"]
            ordered = sorted(cb.counts.items(), key=lambda kv: -kv[1])
            lines += [f"| {_md(k)} | {v:,} |" for k, v in ordered[:MARKDOWN_MAX_ROWS]]
            lines += _more(len(ordered))
        return "\n".join(lines) + "\n"


def _md(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _more(count: int) -> list[str]:
    return ["", f"... and {count - MARKDOWN_MAX_ROWS:,} more"] if count > MARKDOWN_MAX_ROWS else []


def _short(cell, width: int = 60) -> str:
    if isinstance(cell, bytes | bytearray | memoryview):
        return f"<{len(cell)} bytes>"
    if isinstance(cell, np.ndarray):
        return f"<array {cell.shape} {cell.dtype}>"
    text = str(cell)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------- per column


def _check_media(
    series: pd.Series, modality: str, mask: np.ndarray, base_dir, max_file_checks: int | None
) -> tuple[int, list[FileProblem], list[str]]:
    """Decode the column's present cells (all, or a seeded sample): the count, the
    failures, and notes on the audio clips that decode (:mod:`.audio_checks`)."""
    loader = load_image if modality == "image" else load_audio
    rows = np.flatnonzero(mask)
    if max_file_checks is not None and len(rows) > max_file_checks:
        rows = np.sort(np.random.default_rng(0).choice(rows, size=max_file_checks, replace=False))
    problems, clips, files = [], [], {}
    for row in rows:
        cell = series.iloc[row]
        try:
            decoded = (load_audio(cell, base_dir, details=True) if modality == "audio"
                       else loader(cell, base_dir))
        except MediaError as exc:
            problems.append(FileProblem(row=int(row), cell=_short(cell), reason=str(exc)))
            continue
        if modality == "audio":
            wave, rate, details = decoded
            clips.append((int(row), clip_stats(wave, rate, **details)))
            files[int(row)] = _short(cell)
    notes = audio_notes(str(series.name), clips, lambda r: _rows_list(r, NOTICE_MAX_ROWS),
                        files)
    return len(rows), problems, notes


SPELLING_MAX_DISTINCT = 10_000  # beyond this a column's spellings are not compared


def _number_notes(series: pd.Series, mask: np.ndarray, modality: str) -> list[str]:
    """A line when a column of strings is partly numbers: a numeric column's other cells
    are read as missing; a categorical or text column that is mostly numbers may be a
    numeric column with some junk in it. Infinite numbers are read as missing too."""
    notes: list[str] = []
    rows = np.flatnonzero(mask)
    if modality == "numeric":
        infinite = rows[np.isinf(column_numbers(series)[rows])]
        if len(infinite):
            notes.append(f"numeric column {series.name!r}: {len(infinite):,} of {len(rows):,} "
                         f"cells are infinite (rows {_rows_list(list(infinite), NOTICE_MAX_ROWS)})"
                         " → read as missing")
    if (modality not in ("numeric", "categorical", "text") or not len(rows)
            or pd.api.types.is_numeric_dtype(series.dtype)
            or pd.api.types.is_bool_dtype(series.dtype)):
        return notes
    if modality != "numeric":  # a sample first: most text columns hold no numbers at all
        head = parse_number_strings(series.iloc[rows[:2000]].astype(str))[1]
        if head.mean() < MOSTLY_NUMBERS_MIN_FRACTION / 2:
            return notes
    _, parsed = parse_number_strings(series.iloc[rows].astype(str))
    others = rows[~parsed]
    if not len(others) or not parsed.any():
        return notes
    shown = list(dict.fromkeys(_short(series.iloc[r], 20) for r in others[:50]))[:3]
    examples = ", ".join(map(repr, shown))
    where = f"rows {_rows_list([int(r) for r in others], NOTICE_MAX_ROWS)}: {examples}"
    name = series.name
    if modality == "numeric":
        return [*notes, f"numeric column {name!r}: {len(others):,} of {len(rows):,} cells are "
                f"not numbers ({where}) → read as missing"]
    if parsed.mean() < MOSTLY_NUMBERS_MIN_FRACTION:
        return notes
    return [f"column {name!r} is read as {modality}: {int(parsed.sum()):,} of {len(rows):,} "
            f"cells are numbers but {len(others):,} are not ({where}); if it holds quantities, "
            f"pass --column {name}=numeric (Python: columns={{{name!r}: 'numeric'}}) to read "
            "it as numbers, those cells as missing"]


def _spelling_notes(series: pd.Series, mask: np.ndarray, modality: str) -> list[str]:
    """A line when a categorical column (or a class label) spells one value more than one
    way, differing only in case ("Yes", "YES "): they stay different categories, as the
    user may mean them so, but are pointed out."""
    if (modality != "categorical" or not mask.any() or series.dtype == bool
            or pd.api.types.is_numeric_dtype(series.dtype)):
        return []
    present = series[mask]
    if present.dtype == object and any(not isinstance(c, str) for c in present.iloc[:50]):
        return []
    spellings = pd.Series(present.astype(str).str.strip().unique())
    if len(spellings) > SPELLING_MAX_DISTINCT:
        return []
    groups = spellings.groupby(spellings.str.casefold()).agg(sorted)
    groups = groups[groups.str.len() > 1]
    if groups.empty:
        return []
    shown = "; ".join(" / ".join(map(repr, g)) for g in groups.iloc[:3])
    return [f"column {series.name!r}: {len(groups):,} value(s) spelled more than one way, "
            f"differing only in case ({shown}{'; …' if len(groups) > 3 else ''}) → kept as "
            "different categories; write each one way if they mean the same"]


def _action(series: pd.Series, modality: str, missing: int, unreadable: int, is_label: bool) -> str:
    """The default handling of this column, in words."""
    if is_label:
        if missing:
            return (
                f"label: {missing:,} missing → those rows are left out of training and evaluation"
            )
        return "label: complete"
    if modality == "ignored":
        return "ignored: not used by the models"
    if modality in ("image", "audio"):
        parts = [f"{missing:,} missing"] if missing else []
        parts += [f"{unreadable:,} unreadable"] if unreadable else []
        if not parts:
            return f"{modality}: complete"
        return f"{modality}: {', '.join(parts)} → marked absent (row keeps its other modalities)"
    if modality == "numeric":
        numbers = column_numbers(series)
        unparsed = int(np.isnan(numbers).sum()) - missing
        total = missing + unparsed
        if not total:
            return "numeric: complete"
        what = f"{missing:,} missing" + (f" + {unparsed:,} not numbers" if unparsed else "")
        finite = numbers[np.isfinite(numbers)]
        median = f"{float(np.median(finite)):.6g}" if len(finite) else "0"
        return f"numeric: {what} → filled with the median {median} + a missing indicator"
    if not missing:
        return f"{modality}: complete"
    if modality == "categorical":
        return f"categorical: {missing:,} missing → explicit 'missing' category"
    if modality == "text":
        return f"text: {missing:,} missing → empty string"
    if modality == "multilabel":
        return f"multilabel: {missing:,} missing → no tags"
    if modality == "datetime":
        seconds = datetime_seconds(series)
        seconds = seconds[np.isfinite(seconds)]
        when = (
            f" {pd.Timestamp(0) + pd.Timedelta(seconds=float(np.median(seconds))):%Y-%m-%d}"
            if len(seconds)
            else ""
        )
        return f"datetime: {missing:,} missing → filled with the median date{when} + a missing indicator"
    return f"{modality}: {missing:,} missing"


# --------------------------------------------------------------------------- balance


def _class_balance(df: pd.DataFrame, schema: Schema) -> ClassBalance | None:
    label = schema.label
    series = df[label][present_mask(df[label])]
    if schema.problem_type not in ("binary", "multiclass", "multilabel") or len(series) == 0:
        return None
    if schema.problem_type == "multilabel":
        delim = schema.columns[label].delimiter
        tags = [t for cell in series for t in cell_tags(cell, delim)]
        counts = pd.Series(tags, dtype=object).value_counts()
        unit = "tag"
    else:
        counts = hashable_values(series).value_counts()
        counts.index = counts.index.map(str)
        unit = "class"
    if counts.empty:
        return None
    largest, smallest = int(counts.iloc[0]), int(counts.iloc[-1])
    ratio = largest / smallest
    rare = [str(k) for k, v in counts.items() if v < IMBALANCE_MIN_CLASS_ROWS]
    imbalanced = ratio >= IMBALANCE_MAX_RATIO or bool(rare)
    message = f"{_plural(len(counts), unit)}: largest {counts.index[0]!r} has {largest:,} rows, smallest {counts.index[-1]!r} has {smallest:,} (ratio {ratio:.1f}x)"
    if imbalanced:
        why = []
        if ratio >= IMBALANCE_MAX_RATIO:
            why.append(f"ratio ≥ {IMBALANCE_MAX_RATIO:g}x")
        if rare:
            shown = ", ".join(repr(r) for r in rare[:5]) + (", ..." if len(rare) > 5 else "")
            why.append(
                f"{_plural(len(rare), unit)} with fewer than {IMBALANCE_MIN_CLASS_ROWS} rows: {shown}"
            )
        message = (
            f"class imbalance in {label!r}: {message}; {'; '.join(why)} — "
            f"watch per-class metrics (balanced accuracy, F1), not accuracy alone"
        )
    return ClassBalance(
        counts={str(k): int(v) for k, v in counts.items()},
        ratio=float(ratio),
        imbalanced=imbalanced,
        message=message,
    )


# --------------------------------------------------------------------------- report


def clean_report(
    df: pd.DataFrame,
    schema: Schema,
    *,
    check_files: bool = True,
    max_file_checks: int | None = None,
    base_dir: str | os.PathLike | None = None,
) -> CleaningReport:
    """Find what is wrong with ``df`` (read only) and say what the defaults will do about it.

    Args:
        df: the table, as given to :func:`~polymodal.data.schema.infer_schema`.
        schema: its schema (modalities decide which checks and actions apply).
        check_files: decode every image/audio cell to find unreadable ones.
        max_file_checks: decode at most this many cells per media column (a seeded
            sample); ``None`` checks all of them.
        base_dir: folder that relative paths resolve against; default ``df.attrs["base_dir"]``.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"clean_report needs a pandas DataFrame; got {type(df).__name__}")
    if max_file_checks is not None and (
        not isinstance(max_file_checks, int) or max_file_checks < 0
    ):
        raise ConfigError(
            f"max_file_checks must be None or an integer ≥ 0; got {max_file_checks!r}"
        )
    missing_cols = [c for c in schema.columns if c not in df.columns]
    if missing_cols:
        raise SchemaError(
            f"the schema names column(s) {', '.join(map(repr, missing_cols))} that the table lacks; "
            f"infer the schema from this table"
        )
    if base_dir is None:
        base_dir = df.attrs.get("base_dir")
    num_rows = len(df)
    label = schema.label

    # 1. Per column: missing values, unreadable media, the default action.
    columns: dict[str, ColumnReport] = {}
    constant, id_like, all_missing, cell_notes = [], [], [], []
    for name, col in schema.columns.items():
        series = df[name]
        mask = present_mask(series)
        missing = int(num_rows - mask.sum())
        cell_notes += _number_notes(series, mask, col.modality)
        cell_notes += _spelling_notes(series, mask, col.modality)
        checked, problems = 0, []
        if check_files and col.modality in ("image", "audio") and name != label:
            checked, problems, notes = _check_media(series, col.modality, mask, base_dir,
                                                    max_file_checks)
            cell_notes += notes
        columns[name] = ColumnReport(
            name=name,
            modality=col.modality,
            missing_count=missing,
            missing_fraction=missing / num_rows if num_rows else 0.0,
            action=_action(series, col.modality, missing, len(problems), name == label),
            files_checked=checked,
            file_problems=problems,
        )
        if mask.any() and name != label:
            if hashable_values(series[mask]).nunique() == 1:
                constant.append(name)
            elif col.modality in _ID_CANDIDATES and id_like_reason(series):
                id_like.append(name)
        elif not mask.any():
            all_missing.append(name)

    # 2. Duplicates: all columns, and only the columns the models see.
    duplicate_of = duplicate_rows(df, list(schema.columns))
    used = schema.features() + ([label] if label else [])
    used_dups = duplicate_rows(df, used)

    # 3. Label: leakage and class balance.
    leakage, balance, label_missing = [], None, 0
    if label is not None:
        label_missing = columns[label].missing_count
        candidates = [n for n in schema.features() if n not in id_like and n not in constant]
        leakage = find_leakage(df, schema, candidates)
        balance = _class_balance(df, schema)

    report = CleaningReport(
        num_rows=num_rows,
        columns=columns,
        duplicate_rows=sorted(duplicate_of),
        duplicate_of=duplicate_of,
        duplicate_rows_used_columns=sorted(used_dups),
        constant_columns=constant,
        id_like_columns=id_like,
        all_missing_columns=all_missing,
        leakage=leakage,
        class_balance=balance,
        label=label,
        label_missing=label_missing,
        issues=[],
        cell_notes=cell_notes,
    )
    report.issues = _issues(report)
    return report


def _plural(count: int, noun: str) -> str:
    suffix = "" if count == 1 else ("es" if noun.endswith("s") else "s")
    return f"{count:,} {noun}{suffix}"


def _problem_examples(problems: list, limit: int = 3) -> str:
    """The first file of each different reason (at most ``limit``), with its row: an
    unreadable clip, an empty one and a video are told apart on one line."""
    if len(problems) == 1:
        return f"first: {problems[0].reason}"
    seen, shown = set(), []
    for p in problems:
        kind = p.reason.split(": ", 1)[-1][:40]  # the reason without the file it names
        if kind not in seen:
            seen.add(kind)
            shown.append(f"row {p.row}: {p.reason}")
        if len(shown) == limit:
            break
    return ("first: " if len(shown) == 1 else "") + "; ".join(shown)


def _rows_list(rows: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", ... ({len(rows):,} in all)" if len(rows) > limit else "")


def _issues(r: CleaningReport) -> list[str]:
    """One line per finding, most important first (the order of the blocks below)."""
    issues = []
    if r.label_missing:
        issues.append(
            f"label {r.label!r} is missing in {r.label_missing:,} of {r.num_rows:,} rows; "
            f"those rows cannot be used for training"
        )
    issues += [f.message for f in r.leakage]
    for c in sorted(r.columns.values(), key=lambda c: -len(c.file_problems)):
        if c.file_problems:
            first = c.file_problems[0]
            issues.append(
                f"{c.modality} column {c.name!r}: {len(c.file_problems):,} of {c.files_checked:,} "
                f"checked cells do not decode (rows {_rows_list([p.row for p in c.file_problems])}); "
                f"first: {first.reason}"
            )
    if r.class_balance is not None and r.class_balance.imbalanced:
        issues.append(r.class_balance.message)
    issues += [
        f"column {name!r} is empty (every cell missing); it is ignored"
        for name in r.all_missing_columns
    ]
    if r.duplicate_of:
        issues.append(
            f"{_plural(len(r.duplicate_of), 'duplicate row')} repeating an earlier row in every column: "
            f"rows {_rows_list(sorted(r.duplicate_of))}"
        )
    extra = sorted(set(r.duplicate_rows_used_columns) - set(r.duplicate_of))
    if extra:
        issues.append(
            f"{_plural(len(extra), 'more row')} repeating an earlier row in every feature and the label, "
            f"differing only in ignored columns: rows {_rows_list(extra)}"
        )
    issues += r.cell_notes
    issues += [
        f"column {name!r} is constant; it carries no information" for name in r.constant_columns
    ]
    issues += [
        f"column {name!r} is ID-like (a row identifier); it should not be a feature"
        for name in r.id_like_columns
    ]
    by_missing = sorted(
        (
            c
            for c in r.columns.values()
            if c.missing_count and c.modality != "ignored" and c.name != r.label
        ),
        key=lambda c: -c.missing_count,
    )
    issues += [
        f"column {c.name!r} ({c.modality}) is missing in {_plural(c.missing_count, 'row')} "
        f"({c.missing_fraction:.0%}) → {c.action.split('→', 1)[-1].strip()}"
        for c in by_missing
    ]
    return issues
