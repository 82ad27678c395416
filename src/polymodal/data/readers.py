"""Reading a user's table into a pandas DataFrame, whatever shape it arrives in.

:func:`read_table` accepts a delimited text file (CSV/TSV, sniffed separator, optionally
compressed), Parquet, Feather / Arrow IPC, JSON Lines, a JSON list of records, an
MNIST-style IDX file, WebDataset tar shards, a folder (of Parquet shards, hive partitions
included; of images, one subfolder per class; a Hugging Face ``imagefolder`` or
``audiofolder`` with a metadata file; a ``datasets`` folder written by ``save_to_disk``;
split subfolders such as ``train/`` and ``test/``; or exactly one table file), a
DataFrame already in memory, or a Hugging Face ``datasets.Dataset``. Every result carries
``attrs``:

- ``base_dir``: absolute folder that relative image/audio paths in the table resolve
  against (the table file's folder unless ``base_dir=`` says otherwise);
- ``source``: what was read, as a string;
- ``read_notes``: human-readable notes about anything the reader had to decide or skip
  (the encoding it fell back to, ragged rows it dropped, the separator it sniffed, the
  split it chose);
- ``column_notes`` (when any): per column, the convention recognised in reading it (a
  Hugging Face Image feature, a metadata file's ``file_name``), which the schema's reason
  repeats.

Problems that concern a few rows (a ragged line, an invalid JSON line, a row cut off at
the end of a truncated file, a metadata row naming a missing image) are skipped or left
empty and reported in ``read_notes``, naming the file and row; problems with the file as
a whole raise :class:`~polymodal.errors.DataError` with one message naming the file, what
was found and the fix.

This module recognises the source and hands it on; each format is read by its own
module: :mod:`~polymodal.data.text_reader` (CSV/TSV/JSON/JSON Lines, through
``pyarrow.csv`` and ``pyarrow.json``), :mod:`~polymodal.data.arrow_files` (Parquet,
Feather, Arrow IPC, shard folders, saved datasets), :mod:`~polymodal.data.hf_folders`
(splits and metadata folders), :mod:`~polymodal.data.webdataset_reader` (tar shards),
:mod:`~polymodal.data.idx_reader` (IDX), :mod:`~polymodal.data.folder_reader` (a folder
of class subfolders), with :mod:`~polymodal.data.file_access` for what they share.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from polymodal.data.arrow_files import read_arrow_file, read_saved_dataset, read_shard_folder
from polymodal.data.arrow_tables import table_to_frame
from polymodal.data.file_access import (
    MAX_TABLE_FILE_BYTES,
    check_regular_file,
    checked_base_dir,
    missing_path_error,
)
from polymodal.data.folder_reader import read_class_folders
from polymodal.data.hf_folders import (
    choose_split,
    metadata_file,
    read_metadata_folder,
    relative_to_base,
    split_folders,
    split_of,
)
from polymodal.data.idx_reader import read_idx_table
from polymodal.data.text_reader import check_unique_columns, read_text_table
from polymodal.data.webdataset_reader import read_tar_shards
from polymodal.errors import DataError

# Table file extensions read_table understands (text tables and tar shards may also end
# in a compression suffix from COMPRESSION_EXTENSIONS; Parquet, Feather and Arrow
# compress internally). IDX files are also recognised by their MNIST-style names, e.g.
# "train-images-idx3-ubyte".
SUPPORTED_EXTENSIONS = (
    ".csv",
    ".tsv",
    ".tab",
    ".txt",
    ".parquet",
    ".pq",
    ".feather",
    ".arrow",
    ".ipc",
    ".jsonl",
    ".ndjson",
    ".json",
    ".idx",
    ".tar",
)
COMPRESSION_EXTENSIONS = (".gz", ".bz2", ".zst", ".xz", ".zip")

_FORMAT_BY_EXTENSION = {
    ".csv": "delimited",
    ".txt": "delimited",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "arrow",
    ".ipc": "arrow",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".idx": "idx",
    ".tar": "tar",
}
_COLUMNAR = ("parquet", "feather", "arrow")
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


@dataclass
class _Request:
    """What the caller asked for, carried down through folders; ``split_used`` records
    whether a split was there to choose."""

    encoding: str | None
    sep: str | None
    split: str | None
    notes: list[str]
    split_used: bool = False


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def read_table(
    source,
    *,
    base_dir: str | os.PathLike | None = None,
    encoding: str | None = None,
    sep: str | None = None,
    split: str | None = None,
) -> pd.DataFrame:
    """Read a table from a file, a folder, a DataFrame or a Hugging Face dataset.

    Args:
        source: a path to a table file (CSV, TSV, TXT, Parquet, Feather, Arrow, JSONL,
            JSON, IDX, a WebDataset .tar shard; text formats may be gzip/bz2/zstd/xz/zip
            compressed), a path to a folder (Parquet shards, hive partitions included;
            class subfolders of images; a Hugging Face imagefolder/audiofolder with
            metadata.csv/.jsonl; a dataset saved with ``save_to_disk``; tar shards; or
            exactly one table file), a DataFrame, or a ``datasets.Dataset``/``DatasetDict``.
        base_dir: folder that relative media paths in the table resolve against; defaults
            to the table file's folder (for a DataFrame: its ``attrs["base_dir"]`` if set,
            else the current working directory).
        encoding: text encoding; by default UTF-8, then cp1252, then latin-1 are tried and
            the one used is noted.
        sep: field separator for delimited text; by default sniffed from the first rows.
        split: for a source holding splits (``train/`` and ``test/`` subfolders, shards
            named ``train-*``/``test-*``, a ``DatasetDict``), the one to read; by default
            the training split, noted.

    Returns:
        The table, with ``attrs["base_dir"]``, ``attrs["source"]`` and ``attrs["read_notes"]``.

    Raises:
        DataError: the source is missing, unsupported, empty or unreadable as a whole.
    """
    request = _Request(encoding, sep, split, [])
    frame = _read_source(source, base_dir, request)
    if split is not None and not request.split_used:
        raise DataError(
            f"split={split!r}: {frame.attrs['source']} holds no splits to choose from; "
            "omit split="
        )
    return frame


def _read_source(source, base_dir, request: _Request) -> pd.DataFrame:
    notes = request.notes
    if isinstance(source, pd.DataFrame):
        if base_dir is None:
            base_dir = source.attrs.get("base_dir") or os.getcwd()
        frame = source.copy()
        column_notes = source.attrs.get("column_notes")
        frame.attrs = {"column_notes": dict(column_notes)} if column_notes else {}
        return _finish(frame, "DataFrame", checked_base_dir(base_dir), notes)
    if _is_hf_dataset(source):
        frame, what = _read_hf_dataset(source, request)
        return _finish(frame, what, checked_base_dir(base_dir or os.getcwd()), notes)
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"read_table cannot read a {type(source).__name__}; pass a file path, a folder "
            "path, a pandas DataFrame or a datasets.Dataset"
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
        return _read_folder(path, base_dir, request)
    check_regular_file(path, MAX_TABLE_FILE_BYTES)  # a FIFO or /dev/zero: refused unopened
    frame = _read_file(path, request)
    return _finish(frame, str(path), checked_base_dir(base_dir or path.parent), notes)


def table_notes(frame: pd.DataFrame) -> list[str]:
    """The reader's ``read_notes`` on ``frame`` (rows it skipped, the encoding it fell back
    to, ...), each prefixed with the table file's name, for a console or a warning."""
    source = str(frame.attrs.get("source") or "the table")
    name = os.path.basename(source) if os.sep in source else source
    return [f"{name}: {note}" for note in frame.attrs.get("read_notes", [])]


def _finish(frame: pd.DataFrame, source: str, base_dir: str, notes: list[str]) -> pd.DataFrame:
    """Strip column names, refuse duplicates and empty tables, and attach the attrs."""
    column_notes = frame.attrs.get("column_notes") or {}
    # A byte-order mark can survive an explicit encoding="utf-8"; it is not whitespace to strip().
    names = [c.lstrip("\ufeff").strip() if isinstance(c, str) else c for c in frame.columns]
    renamed = dict(zip(frame.columns, names, strict=True))
    frame.columns = names
    check_unique_columns(list(frame.columns), source)
    if frame.shape[1] == 0 or len(frame) == 0:
        what = "no columns" if frame.shape[1] == 0 else f"columns {list(frame.columns)} but no rows"
        raise DataError(
            f"{source}: empty table ({what}); pass a table with a header and at least one row"
        )
    frame.attrs["base_dir"] = base_dir
    frame.attrs["source"] = source
    frame.attrs["read_notes"] = notes
    if column_notes:
        frame.attrs["column_notes"] = {
            renamed.get(k, k): v for k, v in column_notes.items() if renamed.get(k, k) in names
        }
    return frame


# ---------------------------------------------------------------------------------------
# Hugging Face dataset objects
# ---------------------------------------------------------------------------------------


def _is_hf_dataset(source) -> bool:
    """A ``datasets`` object, recognised without importing ``datasets`` (not a dependency)."""
    return type(source).__module__.split(".")[0] == "datasets"


def _read_hf_dataset(source, request: _Request) -> tuple[pd.DataFrame, str]:
    name = type(source).__name__
    if not hasattr(source, "features") and hasattr(source, "keys"):  # a DatasetDict
        splits = [str(k) for k in source.keys()]
        chosen = choose_split(Path(name), splits, request.split, request.notes)
        request.split_used = True
        source = source[next(k for k in source.keys() if str(k).lower() == chosen)]
        name = f"{name}[{chosen!r}]"
    if not hasattr(source, "with_format") or not hasattr(source, "features"):
        raise DataError(
            f"read_table cannot read a {type(source).__name__}; pass a datasets.Dataset (an "
            "IterableDataset streams: materialise it with Dataset.from_generator or save it "
            "to Parquet first)"
        )
    table = source.with_format("arrow")[:]  # honours select/shuffle (the indices mapping)
    features = source.features.to_dict() if hasattr(source.features, "to_dict") else None
    return table_to_frame(table, request.notes, features=features), f"datasets.{name}"


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
    if fmt is None or (compression and fmt in _COLUMNAR):
        return None
    if compression in (".zst", ".zip") and fmt == "tar":
        return None
    return fmt, compression


def _unsupported_file_error(path: Path) -> DataError:
    suffix = "".join(path.suffixes[-2:]) or "(no extension)"
    hint = _UNSUPPORTED_HINTS.get(path.suffix.lower())
    if hint is None and path.suffix.lower() in COMPRESSION_EXTENSIONS:
        hint = (
            "only text tables (CSV/TSV/JSON/JSONL), tar shards and IDX may be compressed; "
            "decompress the file"
        )
    if hint is None:
        hint = "convert it to CSV or Parquet, or rename it if the extension is wrong"
    supported = ", ".join(SUPPORTED_EXTENSIONS)
    compressed = ", ".join(COMPRESSION_EXTENSIONS)
    return DataError(
        f"{path}: unsupported file type {suffix}; {hint}. Supported: {supported} "
        f"(text tables may end in {compressed}), MNIST-style *-idx?-ubyte files, a folder "
        "of images with one subfolder per class, a folder of Parquet shards, a DataFrame "
        "or a datasets.Dataset"
    )


def _read_file(path: Path, request: _Request) -> pd.DataFrame:
    detected = _file_format(path)
    if detected is None:
        raise _unsupported_file_error(path)
    fmt, compression = detected
    if fmt == "idx":
        return read_idx_table(path, request.notes)
    if fmt in _COLUMNAR:
        return read_arrow_file(path, fmt, request.notes)
    if fmt == "tar":
        return read_tar_shards([path], request.notes)
    return read_text_table(
        path, fmt, compression, encoding=request.encoding, sep=request.sep, notes=request.notes
    )


# ---------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------


def _read_folder(folder: Path, base_dir, request: _Request) -> pd.DataFrame:
    """A folder in the first layout that fits, in this order: a saved ``datasets``
    dataset; split subfolders; an image/audio folder with a metadata file; shards
    (Parquet/Feather/Arrow, hive partitions included; tar); exactly one table file; one
    subfolder of images per class."""
    notes = request.notes
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    subfolders = [p for p in entries if p.is_dir()]

    if (folder / "dataset_dict.json").is_file():
        return _read_split(folder, _saved_splits(folder), base_dir, request)
    if (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file():
        frame = read_saved_dataset(folder, notes)
        return _finish(frame, str(folder), checked_base_dir(base_dir or folder), notes)
    splits = split_folders(subfolders)
    if splits:
        return _read_split(folder, splits, base_dir, request)

    metadata = metadata_file(folder)
    if metadata is not None:
        table = _read_file(metadata, request)
        frame = read_metadata_folder(folder, table, metadata, notes)
        resolved_base = checked_base_dir(base_dir or folder)
        relative_to_base(frame, frame.columns[0], folder, resolved_base)
        return _finish(frame, str(metadata), resolved_base, notes)

    tables = [p for p in entries if p.is_file() and _file_format(p) is not None]
    formats = {_file_format(p)[0] for p in tables}
    hive = any("=" in p.name for p in subfolders)
    if (len(tables) > 1 or hive) and len(formats | {"parquet"} if hive else formats) == 1:
        fmt = next(iter(formats or {"parquet"}))
        if fmt in _COLUMNAR:
            return _read_shards(folder, fmt, base_dir, request)
    if formats == {"tar"}:
        frame = read_tar_shards(tables, notes)
        return _finish(frame, str(folder), checked_base_dir(base_dir or folder), notes)
    if len(tables) > 1:
        raise DataError(
            f"{folder}: holds {len(tables)} table files ({', '.join(p.name for p in tables)}); "
            "pass the one you mean as a file path"
        )
    if len(tables) == 1:
        notes.append(f"folder: read its one table file {tables[0].name}")
        frame = _read_file(tables[0], request)
        return _finish(frame, str(tables[0]), checked_base_dir(base_dir or folder), notes)

    frame, resolved_base = read_class_folders(folder, entries, base_dir, notes)
    frame.attrs["column_notes"] = {
        "label": "image folder: the name of each image's subfolder (one subfolder per class)"
    }
    return _finish(frame, str(folder), resolved_base, notes)


def _saved_splits(folder: Path) -> dict[str, Path]:
    try:
        names = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{folder / 'dataset_dict.json'}: not what DatasetDict.save_to_disk writes ({exc}); "
            "save the dataset again"
        ) from None
    return {str(name).lower(): folder / str(name) for name in names}


def _read_split(folder: Path, splits: dict[str, Path], base_dir, request: _Request):
    chosen = choose_split(folder, list(splits), request.split, request.notes)
    request.split_used = True
    if not splits[chosen].is_dir():
        raise DataError(f"{folder}: split {chosen!r} has no folder {splits[chosen]}; copy it")
    return _read_folder(splits[chosen], base_dir, request)


def _read_shards(folder: Path, fmt: str, base_dir, request: _Request) -> pd.DataFrame:
    """Every shard of the format under ``folder`` (hive ``key=value`` folders included),
    in path order; shards named by split (``train-00000-of-00002.parquet``) are narrowed
    to one split."""
    suffixes = {s for s, f in _FORMAT_BY_EXTENSION.items() if f == fmt}
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )
    by_split: dict[str, list[Path]] = {}
    for path in files:
        by_split.setdefault(split_of(path.name) or "", []).append(path)
    if len(by_split) > 1 and "" not in by_split:
        chosen = choose_split(folder, list(by_split), request.split, request.notes)
        request.split_used = True
        files = by_split[chosen]
    frame = read_shard_folder(folder, files, fmt, request.notes)
    frame = _finish(frame, str(folder), checked_base_dir(base_dir or folder), request.notes)
    # Which files the rows came from, in order, so that under torchrun each process can
    # read the rows of its own shards (read_shard_subset).
    frame.attrs["shards"] = {"folder": str(folder), "format": fmt,
                             "files": [str(p.relative_to(folder)) for p in files]}
    return frame


def read_shard_subset(shards: dict, files: list[str], *, base_dir: str) -> pd.DataFrame:
    """The rows of some ``files`` of a shard folder (``shards`` is the folder's
    ``attrs["shards"]``), in the order given, read exactly as :func:`read_table` read the
    whole folder (hive partition columns included)."""
    folder, notes = Path(shards["folder"]), []
    frame = read_shard_folder(folder, [folder / f for f in files], shards["format"], notes)
    return _finish(frame, str(folder), base_dir, notes)


def shard_row_counts(shards: dict) -> list[int]:
    """Rows in each file of a shard folder (``attrs["shards"]``), from the files' footers."""
    import pyarrow.dataset as ds

    folder = Path(shards["folder"])
    dataset = ds.dataset([str(folder / f) for f in shards["files"]],
                         format="ipc" if shards["format"] in ("feather", "arrow") else "parquet")
    return [fragment.count_rows() for fragment in dataset.get_fragments()]
