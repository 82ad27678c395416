"""Reading a user's table into a pandas DataFrame, whatever shape it arrives in.

:func:`read_table` accepts a delimited text file (CSV/TSV, sniffed separator, optionally
compressed), Parquet, Feather, JSON Lines, a JSON list of records, an MNIST-style IDX file,
a folder of images laid out one subfolder per class, a folder holding exactly one table
file, or a DataFrame already in memory. Every result carries three ``attrs``:

- ``base_dir``: absolute folder that relative image/audio paths in the table resolve
  against (the table file's folder unless ``base_dir=`` says otherwise);
- ``source``: what was read, as a string;
- ``read_notes``: human-readable notes about anything the reader had to decide or skip
  (the encoding it fell back to, ragged rows it dropped, the separator it sniffed).

Problems that concern a few rows (a ragged line, an invalid JSON line, a row cut off at
the end of a truncated file) are skipped and reported in ``read_notes``; problems with
the file as a whole raise :class:`~polymodal.errors.DataError` with one message naming
the file, what was found and the fix.
"""

from __future__ import annotations

import bz2
import csv
import difflib
import gzip
import io
import json
import lzma
import os
import re
import struct
import zipfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from polymodal.data.media import IMAGE_EXTENSIONS
from polymodal.errors import DataError

# Table file extensions read_table understands (each may also end in a compression suffix
# from COMPRESSION_EXTENSIONS, except Parquet and Feather which compress internally).
# IDX files are also recognised by their MNIST-style names, e.g. "train-images-idx3-ubyte".
SUPPORTED_EXTENSIONS = (
    ".csv",
    ".tsv",
    ".tab",
    ".txt",
    ".parquet",
    ".pq",
    ".feather",
    ".jsonl",
    ".ndjson",
    ".json",
    ".idx",
)
COMPRESSION_EXTENSIONS = (".gz", ".bz2", ".xz", ".zip")

_FORMAT_BY_EXTENSION = {
    ".csv": "delimited",
    ".txt": "delimited",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".idx": "idx",
}
# Formats a user might reasonably try, with the fix to suggest.
_UNSUPPORTED_HINTS = {
    ".xlsx": "save the sheet as CSV (File > Save As > CSV UTF-8)",
    ".xls": "save the sheet as CSV (File > Save As > CSV UTF-8)",
    ".ods": "save the sheet as CSV",
    ".pkl": "pickles can run arbitrary code, so they are never loaded; save the DataFrame "
    "with df.to_parquet(...) or pass the DataFrame itself",
    ".pickle": "pickles can run arbitrary code, so they are never loaded; save the DataFrame "
    "with df.to_parquet(...) or pass the DataFrame itself",
}
_MNIST_NAME = re.compile(r"idx\d[-_.]ubyte$")

# The delimiters a sniffed text table may use, in order of preference on a tie.
_CANDIDATE_SEPARATORS = (",", "\t", ";", "|")
_SNIFF_CHARS = 65_536
_SNIFF_ROWS = 50
# Listing every bad line of a badly broken file helps nobody; show this many.
_MAX_LINES_LISTED = 10
# IDX header: 0x00 0x00, a data-type byte, the number of dimensions (big-endian sizes follow).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def read_table(
    source,
    *,
    base_dir: str | os.PathLike | None = None,
    encoding: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a table from a file, a folder or a DataFrame.

    Args:
        source: a path to a table file (CSV, TSV, TXT, Parquet, Feather, JSONL, JSON, IDX;
            text formats may be gzip/bz2/xz/zip compressed), a path to a folder (one
            subfolder of images per class, or exactly one table file), or a DataFrame.
        base_dir: folder that relative media paths in the table resolve against; defaults
            to the table file's folder (for a DataFrame: its ``attrs["base_dir"]`` if set,
            else the current working directory).
        encoding: text encoding; by default UTF-8, then cp1252, then latin-1 are tried and
            the one used is noted.
        sep: field separator for delimited text; by default sniffed from the first rows.

    Returns:
        The table, with ``attrs["base_dir"]``, ``attrs["source"]`` and ``attrs["read_notes"]``.

    Raises:
        DataError: the source is missing, unsupported, empty or unreadable as a whole.
    """
    notes: list[str] = []
    if isinstance(source, pd.DataFrame):
        if base_dir is None:
            base_dir = source.attrs.get("base_dir") or os.getcwd()
        frame = source.copy()
        frame.attrs = {}
        return _finish(frame, "DataFrame", _checked_base_dir(base_dir), notes)
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"read_table cannot read a {type(source).__name__}; pass a file path, a folder "
            "path or a pandas DataFrame"
        )
    text_source = os.fspath(source)
    if isinstance(text_source, str) and re.match(r"^[a-z][a-z0-9+.-]*://", text_source, re.I):
        raise DataError(
            f"{text_source}: polymodal never downloads at run time; download the file first "
            "and pass its local path"
        )
    path = Path(os.path.expanduser(text_source)).absolute()
    if not path.exists():
        raise _missing_path_error(path)
    if path.is_dir():
        return _read_folder(path, base_dir, encoding, sep, notes)
    frame = _read_file(path, encoding=encoding, sep=sep, notes=notes)
    return _finish(frame, str(path), _checked_base_dir(base_dir or path.parent), notes)


def _finish(frame: pd.DataFrame, source: str, base_dir: str, notes: list[str]) -> pd.DataFrame:
    """Strip column names, refuse duplicates and empty tables, and attach the attrs."""
    # A byte-order mark can survive an explicit encoding="utf-8"; it is not whitespace to strip().
    frame.columns = [c.lstrip("\ufeff").strip() if isinstance(c, str) else c for c in frame.columns]
    _check_unique_columns([c for c in frame.columns], source)
    if frame.shape[1] == 0 or len(frame) == 0:
        what = "no columns" if frame.shape[1] == 0 else f"columns {list(frame.columns)} but no rows"
        raise DataError(
            f"{source}: empty table ({what}); pass a table with a header and at least one row"
        )
    frame.attrs["base_dir"] = base_dir
    frame.attrs["source"] = source
    frame.attrs["read_notes"] = notes
    return frame


def _check_unique_columns(names: list, source: str) -> None:
    counts = Counter(names)
    duplicated = [name for name, n in counts.items() if n > 1]
    if duplicated:
        listed = ", ".join(f"{name!r} ({counts[name]} times)" for name in duplicated)
        raise DataError(
            f"{source}: duplicate column names {listed} (after stripping surrounding spaces); "
            "rename them so every column name is unique"
        )


def _checked_base_dir(base_dir: str | os.PathLike) -> str:
    folder = Path(os.path.expanduser(os.fspath(base_dir))).absolute()
    if not folder.is_dir():
        raise DataError(
            f"base_dir={os.fspath(base_dir)!r}: not an existing folder ({folder}); pass the "
            "folder that relative image/audio paths in the table are relative to"
        )
    return str(folder)


def _missing_path_error(path: Path) -> DataError:
    """A "not found" error that suggests the likely intended file when one is nearby."""
    parent = path.parent
    if not parent.is_dir():
        return DataError(
            f"file not found: {path} (its folder {parent} does not exist either); check the path"
        )
    names = [p.name for p in parent.iterdir()]
    same_but_case = [n for n in names if n.lower() == path.name.lower()]
    close = same_but_case or difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if close:
        return DataError(f"file not found: {path}; did you mean {parent / close[0]}?")
    return DataError(f"file not found: {path}; check the path (the folder {parent} exists)")


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def _file_format(path: Path) -> tuple[str, str | None] | None:
    """``(format, compression suffix or None)`` for a table file, or None if unsupported."""
    name = path.name.lower()
    compression = next((c for c in COMPRESSION_EXTENSIONS if name.endswith(c)), None)
    if compression:
        name = name[: -len(compression)]
    if _MNIST_NAME.search(name) or name.endswith(".idx"):
        return "idx", compression
    fmt = _FORMAT_BY_EXTENSION.get(Path(name).suffix)
    if fmt is None or (compression and fmt in ("parquet", "feather")):
        return None
    return fmt, compression


def _unsupported_file_error(path: Path) -> DataError:
    suffix = "".join(path.suffixes[-2:]) or "(no extension)"
    hint = _UNSUPPORTED_HINTS.get(path.suffix.lower())
    if hint is None and path.suffix.lower() in COMPRESSION_EXTENSIONS:
        hint = (
            "only text tables (CSV/TSV/JSON/JSONL) and IDX may be compressed; decompress the file"
        )
    if hint is None:
        hint = "convert it to CSV or Parquet, or rename it if the extension is wrong"
    supported = ", ".join(SUPPORTED_EXTENSIONS)
    compressed = ", ".join(COMPRESSION_EXTENSIONS)
    return DataError(
        f"{path}: unsupported file type {suffix}; {hint}. Supported: {supported} "
        f"(text tables may end in {compressed}), MNIST-style *-idx?-ubyte files, a folder "
        "of images with one subfolder per class, or a DataFrame"
    )


def _read_file(
    path: Path, *, encoding: str | None, sep: str | None, notes: list[str]
) -> pd.DataFrame:
    detected = _file_format(path)
    if detected is None:
        raise _unsupported_file_error(path)
    fmt, compression = detected
    if fmt == "idx":
        return _read_idx_table(path, notes)
    if fmt == "parquet":
        return _read_arrow_file(path, pd.read_parquet, "Parquet")
    if fmt == "feather":
        return _read_arrow_file(path, pd.read_feather, "Feather")
    raw = _decompress(_read_bytes(path), compression, path)
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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise DataError(
            f"{path}: permission denied; make the file readable (chmod +r) or copy it"
        ) from None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the file ({exc.strerror or exc}); check the disk/path"
        ) from None


def _decompress(raw: bytes, compression: str | None, path: Path) -> bytes:
    if compression is None:
        return raw
    try:
        if compression == ".gz":
            return gzip.decompress(raw)
        if compression == ".bz2":
            return bz2.decompress(raw)
        if compression == ".xz":
            return lzma.decompress(raw)
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                names = [m.filename for m in members]
                raise DataError(
                    f"{path}: a zipped table must hold exactly one file, found {len(members)} "
                    f"{names}; extract the one you mean and pass it"
                )
            return archive.read(members[0])
    except DataError:
        raise
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: not a valid {compression} file (corrupt or truncated: {exc}); "
            "download or compress it again"
        ) from None


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
    _check_unique_columns([name.strip() for name in scan.header], str(path))
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
# JSON, Parquet, Feather
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


def _read_arrow_file(path: Path, reader, kind: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return reader(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not a valid {kind} file (corrupt or truncated: {str(exc).splitlines()[0]}); "
            "write it again, e.g. with df.to_parquet(...)"
        ) from None


# ---------------------------------------------------------------------------------------
# IDX (MNIST-style) files
# ---------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into an array of its stored type and shape.

    Format (big-endian): two zero bytes, a data-type byte (0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, one
    4-byte size per dimension, then the data. The array returned uses native byte order.
    """
    path = Path(os.path.expanduser(os.fspath(path))).absolute()
    if not path.is_file():
        raise _missing_path_error(path)
    raw = _read_bytes(path)
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        raw = _decompress(raw, ".gz", path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DataError(
            f"{path}: not an IDX file (it starts with {raw[:4].hex(' ') or 'nothing'}, an IDX "
            "file starts with 00 00, a type byte and a dimension count); check the file"
        )
    type_byte, num_dims = raw[2], raw[3]
    if type_byte not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DataError(
            f"{path}: unknown IDX data-type byte 0x{type_byte:02X} (known: {known}); the file is corrupt"
        )
    if num_dims == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; the file is corrupt")
    header_size = 4 + 4 * num_dims
    if len(raw) < header_size:
        raise DataError(
            f"{path}: IDX header is cut off ({len(raw)} bytes); the file is truncated, download it again"
        )
    shape = struct.unpack(f">{num_dims}I", raw[4:header_size])
    dtype = _IDX_DTYPES[type_byte]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = (
            "truncated, download it again"
            if found < expected
            else "has trailing bytes; it is corrupt"
        )
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected:,} data bytes) but the file holds "
            f"{found:,}; the file is {problem}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _read_idx_table(path: Path, notes: list[str]) -> pd.DataFrame:
    """Images IDX -> an ``image`` column of arrays, plus ``label`` from the labels file beside it."""
    array = read_idx(path)
    if array.ndim == 1:
        column = "label" if "labels" in path.name else "value"
        return pd.DataFrame({column: array.astype(np.int64) if array.dtype.kind in "iu" else array})
    column = "image" if array.ndim >= 3 else "value"  # (N, H, W) or (N, H, W, C) are images
    frame = pd.DataFrame({column: list(array)})
    labels_path = _idx_labels_beside(path)
    if column == "image" and labels_path is not None:
        labels = read_idx(labels_path)
        if labels.shape != (len(array),):
            raise DataError(
                f"{labels_path}: holds labels of shape {labels.shape} but {path.name} holds "
                f"{len(array)} images; pass the matching pair of files"
            )
        frame["label"] = labels.astype(np.int64)
        notes.append(f"labels: read from {labels_path.name}")
    elif column == "image":
        notes.append(
            f"no labels file found beside {path.name} (looked for a name with 'labels' for 'images')"
        )
    return frame


def _idx_labels_beside(images_path: Path) -> Path | None:
    """The labels file that pairs with an images IDX file, e.g. train-labels-idx1-ubyte.gz."""
    if "images" not in images_path.name:
        return None
    stem = images_path.name.removesuffix(".gz").replace("images", "labels")
    for name in (re.sub(r"idx\d", "idx1", stem), stem):
        for candidate in (name, name + ".gz"):
            if (images_path.parent / candidate).is_file():
                return images_path.parent / candidate
    return None


# ---------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------


def _read_folder(
    folder: Path, base_dir, encoding: str | None, sep: str | None, notes: list[str]
) -> pd.DataFrame:
    """A folder holding exactly one table file, or one subfolder of images per class."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    tables = [p for p in entries if p.is_file() and _file_format(p) is not None]
    if len(tables) > 1:
        raise DataError(
            f"{folder}: holds {len(tables)} table files ({', '.join(p.name for p in tables)}); "
            "pass the one you mean as a file path"
        )
    if len(tables) == 1:
        notes.append(f"folder: read its one table file {tables[0].name}")
        frame = _read_file(tables[0], encoding=encoding, sep=sep, notes=notes)
        return _finish(frame, str(tables[0]), _checked_base_dir(base_dir or folder), notes)

    rows: list[tuple[str, str]] = []  # (image path relative to the folder, class)
    ignored: list[str] = []
    empty_classes: list[str] = []
    for class_dir in (p for p in entries if p.is_dir()):
        found = 0
        for file in sorted(class_dir.rglob("*")):
            relative = file.relative_to(folder)
            if not file.is_file() or any(part.startswith(".") for part in relative.parts):
                continue
            if file.suffix.lower() in IMAGE_EXTENSIONS:
                rows.append((relative.as_posix(), class_dir.name))
                found += 1
            else:
                ignored.append(relative.as_posix())
        if found == 0:
            empty_classes.append(class_dir.name)
    if not rows:
        loose = sum(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in entries)
        found_text = (
            f"{loose} images directly in it but no class subfolders"
            if loose
            else f"{sum(p.is_dir() for p in entries)} subfolders and no images or table file"
        )
        raise DataError(
            f"{folder}: not a readable folder ({found_text}). A folder is read in one of two "
            "layouts: (1) one subfolder of images per class, e.g. cats/1.png, dogs/2.png; "
            "(2) exactly one table file (CSV/Parquet/JSONL/...). Arrange it so, or pass a file"
        )
    if ignored:
        notes.append(f"image folder: ignored {len(ignored)} non-image files, e.g. {ignored[0]}")
    if empty_classes:
        notes.append(f"image folder: subfolders with no images skipped: {', '.join(empty_classes)}")
    resolved_base = _checked_base_dir(base_dir or folder)
    if Path(resolved_base) != folder:
        # Keep the paths resolvable against the base_dir the caller asked for.
        rows = [(Path(os.path.relpath(folder / p, resolved_base)).as_posix(), c) for p, c in rows]
    classes = sorted({c for _, c in rows})
    notes.append(f"image folder: {len(rows)} images in {len(classes)} classes")
    if len(classes) == 1:
        notes.append(
            f"image folder: every image is in the one subfolder {classes[0]!r}, so all share one "
            "label; put each class in its own subfolder"
        )
    frame = pd.DataFrame(rows, columns=["image", "label"])
    return _finish(frame, str(folder), resolved_base, notes)
