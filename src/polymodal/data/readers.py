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

This module recognises the source and hands it on; each format is read by its own
module: :mod:`~polymodal.data.text_reader` (CSV/TSV/JSON/JSON Lines),
:mod:`~polymodal.data.idx_reader` (IDX), :mod:`~polymodal.data.folder_reader` (a folder
of class subfolders), with :mod:`~polymodal.data.file_access` for what they share.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from polymodal.data.file_access import checked_base_dir, missing_path_error
from polymodal.data.folder_reader import read_class_folders
from polymodal.data.idx_reader import read_idx_table
from polymodal.data.text_reader import check_unique_columns, read_text_table
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
        return _finish(frame, "DataFrame", checked_base_dir(base_dir), notes)
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
        raise missing_path_error(path)
    if path.is_dir():
        return _read_folder(path, base_dir, encoding, sep, notes)
    frame = _read_file(path, encoding=encoding, sep=sep, notes=notes)
    return _finish(frame, str(path), checked_base_dir(base_dir or path.parent), notes)


def _finish(frame: pd.DataFrame, source: str, base_dir: str, notes: list[str]) -> pd.DataFrame:
    """Strip column names, refuse duplicates and empty tables, and attach the attrs."""
    # A byte-order mark can survive an explicit encoding="utf-8"; it is not whitespace to strip().
    frame.columns = [c.lstrip("\ufeff").strip() if isinstance(c, str) else c for c in frame.columns]
    check_unique_columns([c for c in frame.columns], source)
    if frame.shape[1] == 0 or len(frame) == 0:
        what = "no columns" if frame.shape[1] == 0 else f"columns {list(frame.columns)} but no rows"
        raise DataError(
            f"{source}: empty table ({what}); pass a table with a header and at least one row"
        )
    frame.attrs["base_dir"] = base_dir
    frame.attrs["source"] = source
    frame.attrs["read_notes"] = notes
    return frame


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
        return read_idx_table(path, notes)
    if fmt == "parquet":
        return _read_arrow_file(path, pd.read_parquet, "Parquet")
    if fmt == "feather":
        return _read_arrow_file(path, pd.read_feather, "Feather")
    return read_text_table(path, fmt, compression, encoding=encoding, sep=sep, notes=notes)


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
        return _finish(frame, str(tables[0]), checked_base_dir(base_dir or folder), notes)

    frame, resolved_base = read_class_folders(folder, entries, base_dir, notes)
    return _finish(frame, str(folder), resolved_base, notes)
