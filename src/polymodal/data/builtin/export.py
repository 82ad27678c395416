"""Write a built-in dataset to disk as an ordinary table: CSV files plus PNG images.

The result is exactly what a user would bring themselves::

    out_dir/
        train.csv            image,label,...   with image = images/train/000000.png
        test.csv
        images/train/000000.png ...
        images/test/000000.png ...

Image paths in the CSVs are relative to ``out_dir`` (the CSVs' own folder). The folder
appears atomically: everything is written into a temporary folder beside ``out_dir``
and renamed into place at the end, so an interrupted export never leaves a half table.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from polymodal.data.builtin import describe, load
from polymodal.errors import DataError
from polymodal.files import write_folder

SPLITS = ("train", "test")
# Pillow's PNG encoder and the file writes partly run outside the GIL: a few threads (one
# per core) export faster than one (see bench/RESULTS.md, 'Ad-hoc probes').
MAX_WRITER_THREADS = 4


def export(
    name: str,
    out_dir: str | os.PathLike,
    *,
    n: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    **options,
) -> Path:
    """Write dataset ``name`` (split with ``seed``) to ``out_dir``; return ``out_dir``.

    ``n`` and ``options`` are as for :func:`polymodal.data.builtin.load` (``n`` counts
    train and test rows together). A non-empty ``out_dir`` is refused unless
    ``overwrite=True``, which replaces it whole.
    """
    out = Path(out_dir).expanduser().absolute()
    _check_target(out, overwrite)
    info = describe(name)
    train, test = load(info.name, split=True, n=n, seed=seed, **options)
    image_columns = [c for c, modality in info.columns.items() if modality == "image"]


    def write(staging: Path) -> None:
        for split_name, frame in zip(SPLITS, (train, test), strict=True):
            _write_split(frame, split_name, staging, image_columns)

    return write_folder(out, write)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"out_dir {out} is a file, not a folder; pass a folder path")
    if out.is_dir() and not overwrite:
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise DataError(
                f"out_dir {out} is not empty ({len(entries)} entries: {shown}); choose a new or "
                "empty folder, or pass overwrite=True to replace it"
            )


def _write_split(
    frame: pd.DataFrame, split_name: str, root: Path, image_columns: list[str]
) -> None:
    """Save one split's images as PNGs and its rows as ``<split>.csv`` under ``root``."""
    table = frame.copy()
    for column in image_columns:
        # One sub-folder per image column keeps file names short and collision-free.
        folder = (
            Path("images") / split_name
            if len(image_columns) == 1
            else Path("images") / column / split_name
        )
        (root / folder).mkdir(parents=True, exist_ok=True)
        digits = max(6, len(str(len(table))))
        paths = [(folder / f"{row:0{digits}d}.png").as_posix() for row in range(len(table))]
        num_threads = max(1, min(MAX_WRITER_THREADS, os.cpu_count() or 1))
        with ThreadPoolExecutor(num_threads) as pool:
            writes = pool.map(_save_png, table[column], [root / p for p in paths], chunksize=64)
            list(writes)  # re-raises the first error, if any
        table[column] = paths
    table.to_csv(root / f"{split_name}.csv", index=False)


def _save_png(image: np.ndarray, path: Path) -> None:
    array = np.asarray(image)
    assert array.dtype == np.uint8 and array.ndim in (2, 3), (array.dtype, array.shape)
    Image.fromarray(array).save(path, format="PNG")  # (H, W) -> L, (H, W, 3) -> RGB
