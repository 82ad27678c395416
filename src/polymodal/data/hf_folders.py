"""Hugging Face folder conventions: split subfolders, and ``imagefolder``/``audiofolder``
with a metadata file.

``datasets`` loads ``root/train/…`` and ``root/test/…`` as two splits of one dataset, and
a folder holding ``metadata.csv`` (or ``.jsonl``/``.parquet``) as one row per file the
metadata names in its ``file_name`` column, with the metadata's other columns beside it.
polymodal reads them the same way: :func:`split_folders` finds the splits so that
``train``/``test`` are never taken for class names, :func:`choose_split` picks the one
asked for (or ``train``) and says so, and :func:`read_metadata_folder` reads the metadata.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from polymodal.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from polymodal.errors import DataError

# Folder and file-name prefixes `datasets` reads as split names.
SPLIT_NAMES = ("train", "training", "validation", "valid", "val", "dev", "test", "testing",
               "eval", "evaluation")
METADATA_NAMES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")
_SPLIT_PREFIX = re.compile(rf"^({'|'.join(SPLIT_NAMES)})(?=$|[-_.\d])", re.IGNORECASE)
_LISTED = 10


def split_of(name: str) -> str | None:
    """The split a folder or shard file name stands for ("train-00001.parquet" -> "train")."""
    found = _SPLIT_PREFIX.match(name)
    return found.group(1).lower() if found else None


def split_folders(subfolders: list[Path]) -> dict[str, Path]:
    """``{split: folder}`` when every subfolder is named as a split, else {}."""
    if not subfolders or any(p.name.lower() not in SPLIT_NAMES for p in subfolders):
        return {}
    return {p.name.lower(): p for p in subfolders}


def choose_split(where: Path, splits: list[str], requested: str | None, notes: list[str]) -> str:
    """The split to read: the one requested, else ``train`` (or ``training``), noted."""
    listed = ", ".join(splits)
    if requested is not None:
        if requested.lower() not in splits:
            raise DataError(
                f"{where}: split={requested!r} is not one of its splits ({listed}); pass one of them"
            )
        notes.append(f"splits {listed}: read {requested.lower()!r} as asked")
        return requested.lower()
    chosen = next((s for s in ("train", "training") if s in splits), None)
    if chosen is None:
        raise DataError(
            f"{where}: holds the splits {listed} and no train split; pass split= to choose one"
        )
    notes.append(
        f"splits {listed}: read {chosen!r} (the training split); pass split= for another, "
        "e.g. read_table(..., split='test')"
    )
    return chosen


def metadata_file(folder: Path) -> Path | None:
    found = [folder / name for name in METADATA_NAMES if (folder / name).is_file()]
    if len(found) > 1:
        raise DataError(
            f"{folder}: holds {', '.join(p.name for p in found)}; keep one metadata file"
        )
    return found[0] if found else None


def read_metadata_folder(
    folder: Path, metadata: pd.DataFrame, metadata_path: Path, notes: list[str]
) -> pd.DataFrame:
    """The metadata table with ``file_name`` turned into an ``image`` (or ``audio``) column
    of paths relative to ``folder``; rows naming missing files keep their other cells."""
    if "file_name" not in metadata.columns:
        raise DataError(
            f"{metadata_path}: has no 'file_name' column (columns: {list(metadata.columns)[:20]}); "
            "name each row's file in a file_name column, as Hugging Face imagefolder expects"
        )
    names = metadata["file_name"]
    suffixes = names.dropna().astype(str).map(lambda n: Path(n).suffix.lower())
    num_audio = int(suffixes.isin(AUDIO_EXTENSIONS).sum())
    num_images = int(suffixes.isin(IMAGE_EXTENSIONS).sum())
    media = "audio" if num_audio > num_images else "image"
    cells: list = []
    missing: list[tuple[int, str]] = []
    for row, name in enumerate(names):
        if pd.isna(name) or not (folder / str(name)).is_file():
            missing.append((row, "(empty)" if pd.isna(name) else str(name)))
            cells.append(None)
        else:
            cells.append(Path(str(name)).as_posix())
    if missing:
        shown = ", ".join(f"row {row + 1} ({name})" for row, name in missing[:_LISTED])
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        notes.append(
            f"{metadata_path}: {shown}{more}: file_name names no file in {folder} — "
            f"{media} left empty, the row's other columns kept"
        )
    column = media if media not in metadata.columns else "file_name"
    frame = metadata.drop(columns=["file_name"])
    frame.insert(0, column, pd.Series(cells, index=frame.index, dtype=object))
    named = {str(Path(str(n)).as_posix()) for n in names.dropna()}
    extensions = AUDIO_EXTENSIONS if media == "audio" else IMAGE_EXTENSIONS
    unnamed = [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in extensions and p.relative_to(folder).as_posix() not in named
    ]
    if unnamed:
        notes.append(
            f"{folder}: {len(unnamed)} {media} files are not named in {metadata_path.name} and "
            f"are left out, e.g. {unnamed[0]}"
        )
    frame.attrs["column_notes"] = {
        column: (
            f"Hugging Face {media}folder: {metadata_path.name} names each row's file in its "
            "file_name column (paths relative to its folder)"
        )
    }
    return frame


def relative_to_base(frame: pd.DataFrame, column: str, folder: Path, base_dir: str) -> None:
    """Rewrite ``column``'s paths (relative to ``folder``) to be relative to ``base_dir``."""
    if Path(base_dir) == folder:
        return
    frame[column] = [
        None if cell is None else Path(os.path.relpath(folder / cell, base_dir)).as_posix()
        for cell in frame[column]
    ]
