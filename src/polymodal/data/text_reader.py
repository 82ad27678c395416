"""Text tables: delimited text (CSV/TSV, sniffed separator) and JSON / JSON Lines.

:func:`read_text_table` takes a file whose format the caller has already recognised,
decompresses and decodes it (noting any encoding it fell back to), then parses it. Rows
that are broken on their own (a ragged line, an invalid JSON line, a quote left open by
a truncated file) are skipped and noted; a file that is mostly broken raises
:class:`~polymodal.errors.DataError`, as it is more likely misread than damaged.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from polymodal.data.file_access import decompress, read_bytes
from polymodal.errors import DataError

# The delimiters a sniffed text table may use, in order of preference on a tie.
_CANDIDATE_SEPARATORS = (",", "\t", ";", "|")
_SNIFF_CHARS = 65_536
_SNIFF_ROWS = 50
# Listing every bad line of a badly broken file helps nobody; show this many.
_MAX_LINES_LISTED = 10


def read_text_table(
    path: Path,
    fmt: str,
    compression: str | None,
    *,
    encoding: str | None,
    sep: str | None,
    notes: list[str],
) -> pd.DataFrame:
    """A delimited (``fmt`` "delimited" or "tsv"), JSON Lines or JSON file as a table."""
    raw = decompress(read_bytes(path), compression, path)
    text = _decode(raw, path, encoding, notes)
    if not text.strip():
        raise DataError(
            f"{path}: empty table (the file has no content); pass a file with a header and rows"
        )
    if fmt == "jsonl":
        return _parse_jsonl(text, path, notes)
    if fmt == "json":
        return _parse_json(text, path, notes)
    if sep is None:
        sep = "\t" if fmt == "tsv" else _sniff_separator(text)
        if sep != ("\t" if fmt == "tsv" else ","):
            notes.append(f"separator: {sep!r} (sniffed from the first rows; pass sep= to override)")
    return _parse_delimited(text, path, sep, notes)


def check_unique_columns(names: list, source: str) -> None:
    """Refuse repeated column names: each name must pick out one column (pandas' CSV
    parser would otherwise rename the repeats silently)."""
    counts = Counter(names)
    duplicated = [name for name, n in counts.items() if n > 1]
    if duplicated:
        listed = ", ".join(f"{name!r} ({counts[name]} times)" for name in duplicated)
        raise DataError(
            f"{source}: duplicate column names {listed} (after stripping surrounding spaces); "
            "rename them so every column name is unique"
        )


def _decode(raw: bytes, path: Path, encoding: str | None, notes: list[str]) -> str:
    """Bytes to text: the given encoding, else UTF-8 -> cp1252 -> latin-1, noting fallbacks."""
    if encoding is not None:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise DataError(
                f"encoding={encoding!r}: unknown encoding; pass e.g. 'utf-8' or 'cp1252', or omit it"
            ) from None
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: not valid {encoding} ({_describe_bad_byte(raw, exc.start)}); omit "
                "encoding= to detect it, or pass the right one"
            ) from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (Excel's "CSV UTF-8")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode text" export is UTF-16 with a byte-order mark.
        notes.append("encoding: read as UTF-16 (byte-order mark found)")
        return raw.decode("utf-16")
    if b"\x00" in raw[:8192]:
        raise DataError(
            f"{path}: looks like a binary file (it contains NUL bytes), not a text table; "
            "check that the extension matches the content"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _describe_bad_byte(raw, exc.start)
    for fallback in ("cp1252", "latin-1"):
        try:
            text = raw.decode(fallback)
        except UnicodeDecodeError:
            continue  # cp1252 leaves five bytes undefined; latin-1 decodes anything
        notes.append(
            f"encoding: read as {fallback} (not valid UTF-8: first bad {where}); "
            "pass encoding= if characters look wrong"
        )
        return text
    raise AssertionError("latin-1 decodes every byte string")


def _describe_bad_byte(raw: bytes, position: int) -> str:
    line_number = raw.count(b"\n", 0, position) + 1
    return f"byte 0x{raw[position]:02X} on line {line_number}"


# ---------------------------------------------------------------------------------------
# Delimited text
# ---------------------------------------------------------------------------------------


def _sniff_separator(text: str) -> str:
    """The candidate separator that splits the header widest and most rows consistently."""
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]  # do not judge a row cut in half
    best, best_score = ",", (0, 0)
    for candidate in _CANDIDATE_SEPARATORS:
        rows = []
        try:
            for row in csv.reader(io.StringIO(sample, newline=""), delimiter=candidate):
                if row:
                    rows.append(len(row))
                if len(rows) > _SNIFF_ROWS:
                    break
        except csv.Error:
            continue
        if not rows or rows[0] < 2:
            continue
        score = (sum(n == rows[0] for n in rows[1:]), rows[0])
        if score > best_score:  # strict: earlier candidates win ties
            best, best_score = candidate, score
    return best


class _RecordScan(NamedTuple):
    """What a lenient csv-module pass found; spans are (first line, last line, num fields)."""

    header: list[str] | None
    header_line: int
    num_rows: int
    num_lines: int  # physical lines taken by the rows (quoted cells may span several)
    mismatched: list[tuple[int, int, int]]  # rows whose field count differs from the header's
    last: tuple[int, int, int] | None


def _parse_delimited(text: str, path: Path, sep: str, notes: list[str]) -> pd.DataFrame:
    """Parse CSV/TSV text; rows whose field count differs from the header's are skipped.

    A pre-scan with the csv module finds each record's physical line span, so ragged rows
    and a quote left open by a truncated file are reported by line number; only the
    remaining lines go to pandas' fast parser.
    """
    if len(sep) != 1:
        raise DataError(
            f"sep={sep!r}: the separator must be a single character such as ',' or '\\t'"
        )
    lines = io.StringIO(text, newline="").readlines()
    # The csv module refuses cells over 128 KiB by default; long documents are legitimate text.
    previous_limit = csv.field_size_limit(2**31 - 1)
    try:
        scan = _scan_records(text, path, sep)
    finally:
        csv.field_size_limit(previous_limit)
    if scan.header is None:
        raise DataError(f"{path}: empty table (no header row); pass a file with a header and rows")
    num_fields = len(scan.header)
    check_unique_columns([name.strip() for name in scan.header], str(path))
    if scan.last is None and _ends_inside_quotes(lines, scan.header_line, len(lines), sep):
        raise DataError(
            f"{path}: line {scan.header_line}: the header opens a quoted field that is never "
            "closed; fix the header's quotes"
        )
    unclosed = None
    if scan.last is not None and _ends_inside_quotes(lines, scan.last[0], scan.last[1], sep):
        unclosed = scan.last
    ragged = [span for span in scan.mismatched if span != unclosed]
    bad = ragged + ([unclosed] if unclosed else [])

    # Skipping a few rows is a note; losing most of the file means the file is misread.
    if unclosed and (unclosed[1] - unclosed[0] + 1) * 2 > scan.num_lines:
        raise DataError(
            f"{path}: line {unclosed[0]}: a quoted field opened here is never closed, so lines "
            f"{unclosed[0]}-{unclosed[1]} would all be one cell; close the quote (a literal quote "
            'inside a quoted field is written "")'
        )
    if bad and sum(last - first + 1 for first, last, _ in bad) * 2 > scan.num_lines:
        example = ragged[0]
        raise DataError(
            f"{path}: {len(ragged)} of {scan.num_rows} rows do not have the header's {num_fields} "
            f"fields with separator {sep!r} (e.g. line {example[0]} has {example[2]}); pass the "
            "right sep=, or fix the header row"
        )
    notes.extend(_ragged_notes(ragged, num_fields))
    if unclosed:
        first, last, _ = unclosed
        notes.append(
            f"line {first}: a quoted field opened here is never closed (file truncated?) — "
            f"lines {first}-{last} skipped"
        )
    if bad:
        dropped = {i for first, last, _ in bad for i in range(first, last + 1)}
        text = "".join(line for i, line in enumerate(lines, start=1) if i not in dropped)
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, low_memory=False, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot parse as delimited text ({exc}); check sep= and the quoting"
        ) from None


def _scan_records(text: str, path: Path, sep: str) -> _RecordScan:
    """One lenient pass over the records, keeping only what the checks need.

    Line numbers are 1-based physical lines. Blank lines are left out, as pandas skips them.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header: list[str] | None = None
    header_line = num_rows = num_lines = 0
    mismatched: list[tuple[int, int, int]] = []
    last = None
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header, header_line = record, start
                continue
            last = (start, reader.line_num, len(record))
            num_rows += 1
            num_lines += reader.line_num - start + 1
            if len(record) != len(header):
                mismatched.append(last)
    except csv.Error as exc:
        raise DataError(
            f"{path}: line {reader.line_num}: cannot parse as delimited text ({exc}); fix that line"
        ) from None
    return _RecordScan(header, header_line, num_rows, num_lines, mismatched, last)


def _ends_inside_quotes(lines: list[str], first: int, last: int, sep: str = ",") -> bool:
    """Whether the record on lines first..last (1-based) hits the end of text inside quotes.

    The main pass is lenient (it keeps such a record as one long field); a strict re-parse
    of just this record says whether its quotes were ever closed.
    """
    raw = "".join(lines[first - 1 : last])
    try:
        list(csv.reader(io.StringIO(raw, newline=""), delimiter=sep, strict=True))
    except csv.Error as exc:
        return "end of data" in str(exc)
    return False


def _ragged_notes(ragged: list[tuple[int, int, int]], num_header_fields: int) -> list[str]:
    """One note per distinct field count, listing the (first) line numbers of those rows."""
    by_count: dict[int, list[int]] = {}
    for first, _, count in ragged:
        by_count.setdefault(count, []).append(first)
    notes = []
    for count, line_numbers in sorted(by_count.items()):
        listed = ", ".join(str(n) for n in line_numbers[:_MAX_LINES_LISTED])
        if len(line_numbers) > _MAX_LINES_LISTED:
            listed += f" and {len(line_numbers) - _MAX_LINES_LISTED} more"
        rows = "row" if len(line_numbers) == 1 else "rows"
        fields = "field" if count == 1 else "fields"
        notes.append(
            f"{rows} {listed} (line numbers): ragged, {count} {fields} where the header has "
            f"{num_header_fields} — skipped"
        )
    return notes


# ---------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------


def _parse_jsonl(text: str, path: Path, notes: list[str]) -> pd.DataFrame:
    """One JSON object per line; invalid lines are skipped and noted."""
    records: list[dict] = []
    bad: list[tuple[int, str]] = []  # (line number, why)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append((number, exc.msg))
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            bad.append((number, f"a JSON {type(value).__name__}, not an object"))
    if bad and len(bad) * 2 > len(bad) + len(records):
        number, why = bad[0]
        raise DataError(
            f"{path}: {len(bad)} of {len(bad) + len(records)} lines are not JSON objects (line "
            f'{number}: {why}); each line must hold one object such as {{"a": 1, "b": "x"}}'
        )
    if bad:
        listed = "; ".join(f"line {n}: {why}" for n, why in bad[:_MAX_LINES_LISTED])
        more = f"; and {len(bad) - _MAX_LINES_LISTED} more" if len(bad) > _MAX_LINES_LISTED else ""
        notes.append(f"invalid JSON lines skipped ({listed}{more})")
    return pd.DataFrame(records)


def _parse_json(text: str, path: Path, notes: list[str]) -> pd.DataFrame:
    """A JSON list of records (or an object of equal-length column lists)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            notes.append(f"{path.name} holds one JSON value per line; read as JSON Lines")
            return _parse_jsonl(text, path, notes)
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); fix it "
            "there (a truncated download ends early)"
        ) from None
    if isinstance(value, list):
        skipped = [i for i, item in enumerate(value) if not isinstance(item, dict)]
        if skipped and len(skipped) == len(value):
            raise DataError(
                f"{path}: the JSON list holds no objects (item 0 is a {type(value[0]).__name__}); "
                'expected a list of records such as [{"a": 1}, {"a": 2}]'
            )
        if skipped:
            notes.append(
                f"JSON list items {skipped[:_MAX_LINES_LISTED]} (0-based) are not objects — skipped"
            )
        return pd.DataFrame([item for item in value if isinstance(item, dict)])
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        lengths = {k: len(v) for k, v in value.items()}
        if len(set(lengths.values())) == 1:
            return pd.DataFrame(value)
    raise DataError(
        f'{path}: expected a JSON list of records such as [{{"a": 1}}, {{"a": 2}}], got a '
        f"{type(value).__name__}; export records (df.to_json(orient='records')) or use JSON Lines"
    )
