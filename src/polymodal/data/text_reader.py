"""Text tables: delimited text (CSV/TSV, sniffed separator) and JSON / JSON Lines.

:func:`read_text_table` takes a file whose format the caller has already recognised and
hands it to pyarrow's parsers (``pyarrow.csv``, ``pyarrow.json``), which read it in
parallel and decompress while streaming. Only the file's first 64 KiB are looked at
beforehand: for a byte-order mark, NUL bytes (a binary file) and the separator.

Rows that are broken on their own (a ragged line, an invalid JSON line, a quote left open
by a truncated file) are skipped and noted; a file that is mostly broken raises
:class:`~polymodal.errors.DataError`, as it is more likely misread than damaged. The
line numbers in those notes are worked out only when something was skipped: a clean file
is never scanned twice.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.arrow_tables import table_to_frame
from polymodal.data.file_access import (
    STREAM_ERRORS,
    corrupt_stream_error,
    open_stream,
    read_head,
)
from polymodal.errors import DataError

# The delimiters a sniffed text table may use, in order of preference on a tie.
_CANDIDATE_SEPARATORS = (",", "\t", ";", "|")
_SNIFF_BYTES = 65_536
_SNIFF_ROWS = 50
# Listing every bad line of a badly broken file helps nobody; show this many.
_MAX_LINES_LISTED = 10
# Fallbacks for text that is not UTF-8, in order: Excel's Western default, then latin-1,
# which decodes any byte.
_FALLBACK_ENCODINGS = ("cp1252", "latin-1")


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
    head = read_head(path, compression, _SNIFF_BYTES)
    encoding = _starting_encoding(head, path, encoding, notes)
    head_text = head.decode(encoding or "utf-8", errors="replace")
    if not head_text.strip():
        raise DataError(
            f"{path}: empty table (the file has no content); pass a file with a header and rows"
        )
    if fmt == "jsonl":
        return _read_jsonl(path, compression, encoding, notes)
    if fmt == "json":
        text = _decode_whole(path, compression, encoding, notes)
        return _parse_json(text, path, notes)
    if sep is None:
        sep = "\t" if fmt == "tsv" else _sniff_separator(head_text, len(head) < _SNIFF_BYTES)
        if sep != ("\t" if fmt == "tsv" else ","):
            notes.append(f"separator: {sep!r} (sniffed from the first rows; pass sep= to override)")
    if len(sep) != 1:
        raise DataError(
            f"sep={sep!r}: the separator must be a single character such as ',' or '\\t'"
        )
    decimal = _decimal_point(head_text, sep)
    if decimal != ".":
        notes.append(f"numbers: {decimal!r} read as the decimal point (cells such as "
                     f"'7{decimal}4' beside the {sep!r} separator, as Excel writes them in "
                     "much of Europe)")
    return _DelimitedRead(path, compression, sep, notes, decimal).read(encoding, head_text)


_DECIMAL_COMMA = re.compile(r'^\s*"?[+-]?\d+,\d+"?\s*$')
_THOUSANDS_ONLY = re.compile(r'^\s*"?[+-]?\d{1,3}(,\d{3})+"?\s*$')


def _decimal_point(head_text: str, sep: str) -> str:
    """``","`` for a ``;``-separated table whose first rows hold numbers written with a
    decimal comma (one that cannot be a thousands separator, as in "7,4"), else ``"."``."""
    if sep != ";":
        return "."
    fields = [f for line in head_text.splitlines()[1:_SNIFF_ROWS] for f in line.split(sep)]
    commas = [f for f in fields if _DECIMAL_COMMA.match(f)]
    return "," if any(not _THOUSANDS_ONLY.match(f) for f in commas) else "."


def _blank_columns(table) -> list[int]:
    """Positions of the columns of a ``pyarrow.Table`` with no name and every cell empty."""
    return [i for i, name in enumerate(table.column_names)
            if not name.strip() and table.column(i).null_count == table.num_rows]


def check_unique_columns(names: list, source: str) -> None:
    """Refuse repeated column names: each name must pick out one column."""
    counts = Counter(names)
    duplicated = [name for name, n in counts.items() if n > 1]
    if duplicated:
        listed = ", ".join(f"{name!r} ({counts[name]} times)" for name in duplicated)
        raise DataError(
            f"{source}: duplicate column names {listed} (after stripping surrounding spaces); "
            "rename them so every column name is unique"
        )


# ---------------------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------------------


def _starting_encoding(
    head: bytes, path: Path, encoding: str | None, notes: list[str]
) -> str | None:
    """The encoding to try first (None: UTF-8 with fallbacks), from the argument or a BOM."""
    if encoding is not None:
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise DataError(
                f"encoding={encoding!r}: unknown encoding; pass e.g. 'utf-8' or 'cp1252', or omit it"
            ) from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode text" export is UTF-16 with a byte-order mark.
        notes.append("encoding: read as UTF-16 (byte-order mark found)")
        return "utf-16"
    if b"\x00" in head[:8192]:
        raise DataError(
            f"{path}: looks like a binary file (it contains NUL bytes), not a text table; "
            "check that the extension matches the content"
        )
    return None


def _first_bad_byte(path: Path, compression: str | None, encoding: str) -> str:
    """Where the file first stops being valid ``encoding``: "byte 0xE9 on line 2".

    Only called once a parser has found the file is not valid in that encoding.
    """
    stream = open_stream(path, compression)
    carried, line = b"", 1
    try:
        while chunk := stream.read(1 << 20):
            data = carried + chunk
            try:
                data.decode(encoding)
                carried = b""
            except UnicodeDecodeError as exc:
                if exc.end >= len(data) and len(data) - exc.start < 4:
                    carried = data[exc.start :]  # a character cut by the chunk boundary
                    data = data[: exc.start]
                else:
                    line += data.count(b"\n", 0, exc.start)
                    return f"byte 0x{data[exc.start]:02X} on line {line}"
            line += data.count(b"\n")
    finally:
        stream.close()
    return "an incomplete character at the end"


def _decode_whole(path: Path, compression: str | None, encoding: str | None, notes) -> str:
    """The whole file as text (JSON and the Python JSON Lines path need it so)."""
    stream = open_stream(path, compression)
    try:
        raw = stream.read()
    except STREAM_ERRORS as exc:
        raise corrupt_stream_error(path, compression, exc) from None
    finally:
        stream.close()
    if encoding is not None:
        try:
            return raw.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise _wrong_encoding_error(path, compression, encoding) from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for fallback in _FALLBACK_ENCODINGS:
        try:
            text = raw.decode(fallback)
        except UnicodeDecodeError:
            continue
        notes.append(_fallback_note(fallback, _first_bad_byte(path, compression, "utf-8")))
        return text
    raise AssertionError("latin-1 decodes every byte string")


def _fallback_note(encoding: str, where: str) -> str:
    return (
        f"encoding: read as {encoding} (not valid UTF-8: first bad {where}); "
        "pass encoding= if characters look wrong"
    )


def _wrong_encoding_error(path: Path, compression: str | None, encoding: str) -> DataError:
    where = _first_bad_byte(path, compression, encoding)
    return DataError(
        f"{path}: not valid {encoding} ({where}); omit encoding= to detect it, or pass the "
        "right one"
    )


# ---------------------------------------------------------------------------------------
# Delimited text
# ---------------------------------------------------------------------------------------


def _sniff_separator(sample: str, whole_file: bool) -> str:
    """The candidate separator that splits the header widest and most rows consistently."""
    if not whole_file and "\n" in sample:
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


class _DelimitedRead:
    """One delimited file read through ``pyarrow.csv``, and what was skipped while reading.

    Rows whose field count differs from the header's are handed to ``invalid_row_handler``
    and skipped. A parallel read does not know their line numbers; when there are any, the
    file is read again serially (pyarrow then numbers the records) and each listed record
    is found in the text to turn its record number into a line number, as quoted cells and
    blank lines make the two differ.

    pyarrow cuts a file into blocks at newlines for its parallel read, and is told that
    cells may hold newlines (which makes cutting slower) only when the first rows show
    one. A quoted newline further on that a cut splits leaves rows with the wrong field
    count, and the serial re-read, which never cuts, reads them whole.
    """

    def __init__(self, path: Path, compression: str | None, sep: str, notes: list[str],
                 decimal: str = "."):
        self.path, self.compression, self.sep, self.notes = path, compression, sep, notes
        self.decimal = decimal
        self.multiline = False

    def read(self, encoding: str | None, head_text: str) -> pd.DataFrame:
        self.multiline = _quoted_newline(head_text, self.sep)
        if encoding is not None:
            table, skipped = self._parse(encoding, use_threads=True)
            if _has_undecoded_text(table):
                raise _wrong_encoding_error(self.path, self.compression, encoding)
        else:
            table, skipped = self._parse("utf8", use_threads=True)
            if table is None or _has_undecoded_text(table):
                where = _first_bad_byte(self.path, self.compression, "utf-8")
                for fallback in _FALLBACK_ENCODINGS:
                    table, skipped = self._parse(fallback, use_threads=True)
                    if table is not None:
                        encoding = fallback
                        self.notes.append(_fallback_note(fallback, where))
                        break
            encoding = encoding or "utf8"
        if table is None:  # only an explicit encoding can fail to decode every byte
            raise _wrong_encoding_error(self.path, self.compression, encoding)
        if table.num_columns == 0:
            raise DataError(f"{self.path}: empty table (no header row); pass a file with a header and rows")
        blank = _blank_columns(table)
        check_unique_columns([name.strip() for i, name in enumerate(table.column_names)
                              if i not in blank], str(self.path))
        if skipped:
            table, skipped = self._parse(encoding, use_threads=False)
        text = None
        if skipped:
            text = _decode_whole(self.path, self.compression, encoding, [])
            self._note_ragged(skipped, table.num_rows, text)
        table = self._drop_unclosed_last_row(table, encoding, text)
        blank = _blank_columns(table)
        if blank:  # a spreadsheet's trailing separators: ",," after the last named column
            self.notes.append(f"{self.path}: {len(blank)} column(s) with no name and no value "
                              f"(columns {', '.join(str(i + 1) for i in blank)}) are left out")
            for i in reversed(blank):  # by position: the blank names repeat
                table = table.remove_column(i)
        table = self._drop_header_copies(table)
        return table_to_frame(table, self.notes)

    def _drop_header_copies(self, table):
        """Skip rows that repeat the header (files joined with ``cat``): read as data they
        would add a class named after the label and a text cell to every numeric column."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if table.num_columns < 2 or not all(pa.types.is_string(t) for t in table.schema.types):
            return table  # a column of numbers cannot hold its own name
        repeats = None
        for name, column in zip(table.column_names, table.columns, strict=True):
            same = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), name.strip()), False)
            repeats = same if repeats is None else pc.and_(repeats, same)
        rows = np.flatnonzero(repeats.to_numpy(zero_copy_only=False))
        if not len(rows):
            return table
        listed = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        self.notes.append(f"{self.path}: {len(rows)} row(s) repeat the header line (files "
                          f"joined together?) and are skipped (rows {listed})")
        return table.filter(pc.invert(repeats))

    def _parse(self, encoding: str, *, use_threads: bool):
        """``(table or None if the bytes are not valid ``encoding``, skipped rows)``."""
        import pyarrow as pa
        from pyarrow import csv as pacsv

        skipped: list = []

        def skip(row):
            skipped.append(row)
            return "skip"

        stream = open_stream(self.path, self.compression)
        try:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(encoding=encoding, use_threads=use_threads),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.sep,
                    newlines_in_values=self.multiline or not use_threads,
                    invalid_row_handler=skip,
                ),
                # A missing string cell is missing, as in pandas, not an empty string.
                convert_options=pacsv.ConvertOptions(
                    strings_can_be_null=True, quoted_strings_can_be_null=True,
                    decimal_point=self.decimal,
                ),
            )
        except UnicodeDecodeError:
            return None, skipped
        except pa.ArrowInvalid as exc:
            raise self._parse_error(exc) from None
        except STREAM_ERRORS as exc:
            raise corrupt_stream_error(self.path, self.compression, exc) from None
        finally:
            stream.close()
        return table, skipped

    def _parse_error(self, exc: Exception) -> DataError:
        message = str(exc).splitlines()[0]
        if "Empty CSV file" in message:
            return DataError(
                f"{self.path}: line 1: the header opens a quoted field that is never closed, or "
                "holds no columns; fix the header's quotes"
            )
        return DataError(
            f"{self.path}: cannot parse as delimited text ({message}); check sep= and the quoting"
        )

    def _note_ragged(self, skipped: list, num_rows: int, text: str) -> None:
        """Refuse a mostly ragged file; otherwise note the skipped rows by line number."""
        num_fields = skipped[0].expected_columns
        by_count: dict[int, list] = {}
        for row in skipped:
            by_count.setdefault(row.actual_columns, []).append(row)
        listed = sorted(
            (row for rows in by_count.values() for row in rows[:_MAX_LINES_LISTED]),
            key=lambda row: row.number,
        )
        line_of = dict(zip((id(r) for r in listed), _line_numbers(text, listed), strict=True))
        if len(skipped) * 2 > len(skipped) + num_rows:
            example = min(listed, key=lambda row: row.number)
            raise DataError(
                f"{self.path}: {len(skipped)} of {len(skipped) + num_rows} rows do not have the "
                f"header's {num_fields} fields with separator {self.sep!r} (e.g. line "
                f"{line_of[id(example)]} has {example.actual_columns}); pass the right sep=, or "
                "fix the header row"
            )
        for count, rows in sorted(by_count.items()):
            shown = ", ".join(str(line_of[id(row)]) for row in rows[:_MAX_LINES_LISTED])
            if len(rows) > _MAX_LINES_LISTED:
                shown += f" and {len(rows) - _MAX_LINES_LISTED} more"
            noun = "row" if len(rows) == 1 else "rows"
            fields = "field" if count == 1 else "fields"
            self.notes.append(
                f"{noun} {shown} (line numbers): ragged, {count} {fields} where the header has "
                f"{num_fields} — skipped"
            )

    def _drop_unclosed_last_row(self, table, encoding: str, text: str | None):
        """Skip the last row when the file ends inside a quoted field (a truncated file).

        pyarrow accepts such a field as it stands; a quote that swallowed most of the file
        is an error instead, as the file would be misread.
        """
        import pyarrow as pa

        if table.num_rows == 0 or not pa.types.is_string(table.schema.types[-1]):
            return table
        last = table.column(table.num_columns - 1)[table.num_rows - 1].as_py()
        if last is None:
            return table
        opened = '"' + last.replace('"', '""')  # the cell as written, had its quote never closed
        if text is None and self.compression is None and encoding in ("utf8", "utf-8"):
            raw = opened.encode()
            with open(self.path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, 2) - len(raw)))
                ends_open = handle.read().endswith(raw)
        elif text is not None or self.compression is None or "\n" in last:
            # A compressed file's tail costs a second decompression: paid only when the
            # last cell spans lines, the case where an open quote swallows rows.
            if text is None:
                text = _decode_whole(self.path, self.compression, encoding, [])
            ends_open = text.endswith(opened)
        else:
            return table
        if not ends_open:
            return table
        if text is None:
            text = _decode_whole(self.path, self.compression, encoding, [])
        num_lines = text.count("\n") + (not text.endswith("\n"))
        swallowed = last.count("\n") + (not last.endswith("\n"))
        first = num_lines - swallowed + 1
        if swallowed * 2 > num_lines:
            raise DataError(
                f"{self.path}: line {first}: a quoted field opened here is never closed, so lines "
                f"{first}-{num_lines} would all be one cell; close the quote (a literal quote "
                'inside a quoted field is written "")'
            )
        self.notes.append(
            f"line {first}: a quoted field opened here is never closed (file truncated?) — "
            f"lines {first}-{num_lines} skipped"
        )
        return table.slice(0, table.num_rows - 1)


def _quoted_newline(sample: str, sep: str) -> bool:
    """Whether a cell among the first rows holds a newline (so cells may span lines)."""
    if '"' not in sample:
        return False
    with contextlib.suppress(csv.Error):
        for row in csv.reader(io.StringIO(sample, newline=""), delimiter=sep):
            if any("\n" in cell or "\r" in cell for cell in row):
                return True
    return False


def _has_undecoded_text(table) -> bool:
    """pyarrow types a column that is not valid UTF-8 as binary rather than failing."""
    import pyarrow as pa

    return table is not None and any(pa.types.is_binary(t) for t in table.schema.types)


def _line_numbers(text: str, rows: list) -> list[int]:
    """The physical line each skipped row (in file order) starts on: its text is searched
    for at the start of a line, from where the previous one was found."""
    found, position, line = [], 0, 1
    for row in rows:
        at = position
        while True:
            at = text.find(row.text, at)
            if at <= 0 or text[at - 1] in "\r\n":
                break
            at += 1
        if at < 0:  # not found verbatim (should not happen): fall back to the record number
            found.append(row.number)
            continue
        line += text.count("\n", position, at)
        position = at
        found.append(line)
    return found


# ---------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------


def _read_jsonl(
    path: Path, compression: str | None, encoding: str | None, notes: list[str]
) -> pd.DataFrame:
    """One JSON object per line: ``pyarrow.json`` when every line is a valid object of
    consistent types, else line by line with invalid lines skipped and noted."""
    import pyarrow as pa
    from pyarrow import json as pajson

    if encoding in (None, "utf-8"):
        stream = open_stream(path, compression)
        try:
            return table_to_frame(pajson.read_json(stream), notes)
        except pa.ArrowInvalid:
            pass  # an invalid line or a column of mixed types: read it line by line below
        except STREAM_ERRORS as exc:
            raise corrupt_stream_error(path, compression, exc) from None
        finally:
            stream.close()
    text = _decode_whole(path, compression, encoding, notes)
    return _parse_jsonl(text, path, notes)


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
