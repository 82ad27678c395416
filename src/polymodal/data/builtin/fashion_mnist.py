"""``fashion-mnist``: Zalando's 70,000 28x28 greyscale photos of clothes, 10 classes.

Read from the Debian package ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``), found through dpkg's list of the files it installed, or from
the folder named by the environment variable ``POLYMODAL_FASHION_MNIST_DIR`` (which
wins). Nothing is downloaded. Reference: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel
Image Dataset for Benchmarking Machine Learning Algorithms", arXiv:1708.07747 (2017).

Columns: ``image`` (uint8 (28, 28)), ``label`` (int 0-9), ``label_name`` (text, e.g.
"Ankle boot"). ``split=True`` gives the standard 60,000/10,000 train/test split; with
``n`` the sample keeps that 6:1 proportion.

The IDX files are read whole with :func:`polymodal.data.idx_reader.read_idx`; the images
column holds views of the one (N, 28, 28) array, so loading all 70,000 rows takes
under a second (most of it gunzip).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.builtin.frames import check_n, image_column, sample_rows
from polymodal.data.idx_reader import read_idx
from polymodal.errors import DataError

NAME = "fashion-mnist"
DESCRIPTION = (
    "70,000 28x28 greyscale photos of clothing in 10 classes (Zalando Fashion-MNIST); "
    "standard 60,000/10,000 split."
)
SOURCE = "Zalando Research, Fashion-MNIST (Xiao et al. 2017), Debian package dataset-fashion-mnist"
LICENSE = "MIT"
NUM_ROWS = 70_000
NUM_TRAIN_ROWS = 60_000
COLUMNS = {"image": "image", "label": "categorical", "label_name": "categorical"}
LABEL = "label"
OPTIONS: dict[str, object] = {}
ENV_VAR = "POLYMODAL_FASHION_MNIST_DIR"
HOW_TO_INSTALL = (
    f"apt-get install dataset-fashion-mnist (or set {ENV_VAR} to a folder holding the four "
    "*-idx?-ubyte[.gz] files)"
)

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_DPKG_LIST = Path("/var/lib/dpkg/info/dataset-fashion-mnist.list")
_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def find_dir() -> Path | None:
    """The folder holding the IDX files, or None when the dataset is not installed."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    candidates = []
    if _DPKG_LIST.is_file():
        installed = _DPKG_LIST.read_text().splitlines()
        candidates += [
            Path(p).parent
            for p in installed
            if Path(p).name.startswith(_FILES[("train", "images")])
        ]
    candidates.append(_DEFAULT_DIR)
    for folder in candidates:
        if _find_file(folder, _FILES[("train", "images")]) is not None:
            return folder
    return None


def is_available() -> bool:
    folder = find_dir()
    return folder is not None and all(_find_file(folder, f) is not None for f in _FILES.values())


def load(
    *, split: bool, n: int | None, seed: int
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The Fashion-MNIST table (or its standard split); see the module docstring."""
    check_n(n, available=NUM_ROWS, dataset=NAME, split=split)
    folder = find_dir()
    if folder is None:
        raise DataError(
            f"dataset {NAME!r} is not installed: no IDX files under {_DEFAULT_DIR} or in dpkg's "
            f"file list; install it with `{HOW_TO_INSTALL}`"
        )
    parts = {part: _read_part(folder, part) for part in ("train", "test")}
    if not split:
        table = pd.concat([parts["train"], parts["test"]], ignore_index=True)
        return sample_rows(table, n, seed)
    if n is None:
        return parts["train"], parts["test"]
    # Keep the standard split's 6:1 proportion; each side gets at least one row.
    num_train = min(max(1, round(n * NUM_TRAIN_ROWS / NUM_ROWS)), n - 1)
    return sample_rows(parts["train"], num_train, seed), sample_rows(
        parts["test"], n - num_train, seed + 1
    )


def _read_part(folder: Path, part: str) -> pd.DataFrame:
    images = read_idx(_require_file(folder, _FILES[(part, "images")]))  # (N, 28, 28) uint8
    labels = read_idx(_require_file(folder, _FILES[(part, "labels")]))  # (N,) uint8
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{folder}: {part} images have shape {images.shape} but labels {labels.shape}; "
            "expected (N, 28, 28) and (N,) — the files are mismatched or corrupt, reinstall them"
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise DataError(
            f"{folder}: {part} labels range {labels.min()}..{labels.max()}, expected 0..9"
        )
    names = np.asarray(CLASS_NAMES, dtype=object)[labels]
    return pd.DataFrame({"image": image_column(images), "label": labels, "label_name": names})


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _require_file(folder: Path, stem: str) -> Path:
    path = _find_file(folder, stem)
    if path is None:
        where = f"${ENV_VAR}={folder}" if os.environ.get(ENV_VAR) else str(folder)
        raise DataError(
            f"dataset {NAME!r}: {stem}[.gz] is missing from {where}; "
            f"install the dataset with `{HOW_TO_INSTALL}`"
        )
    return path
