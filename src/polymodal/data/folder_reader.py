"""A folder of images laid out one subfolder per class, read as an image/label table.

``cats/1.png, dogs/2.png`` becomes rows ``("cats/1.png", "cats"), ("dogs/2.png", "dogs")``:
the subfolder's name is the label, and image paths stay relative so the table can be
moved with its folder. Files that are not images, and hidden ones, are skipped and noted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from polymodal.data.file_access import checked_base_dir
from polymodal.data.media import IMAGE_EXTENSIONS
from polymodal.errors import DataError


def read_class_folders(
    folder: Path, entries: list[Path], base_dir, notes: list[str]
) -> tuple[pd.DataFrame, str]:
    """``(table of image and label, the base_dir its paths are relative to)``.

    ``entries`` are the folder's visible entries, sorted; ``base_dir`` (``None``: the
    folder itself) is the folder the returned image paths resolve against.
    """
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
    resolved_base = checked_base_dir(base_dir or folder)
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
    return frame, resolved_base
