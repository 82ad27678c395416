"""``digits``: scikit-learn's 1,797 handwritten digits, 8x8 greyscale.

The UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak, 1998)
as bundled with scikit-learn (``sklearn.datasets.load_digits``), so it is always there
and nothing is downloaded. Pixels are counts 0..16 (of a 4x4 block of a 32x32 bitmap);
they are rescaled to uint8 as ``round(v * 255 / 16)`` so that 16 maps to 255 exactly.

Columns: ``image`` (uint8 (8, 8)), ``label`` (int 0-9). ``split=True`` gives a
stratified 80/20 split drawn with ``seed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polymodal.data.builtin.frames import check_n, image_column, sample_rows, stratified_split

NAME = "digits"
DESCRIPTION = "1,797 handwritten digits 0-9 as 8x8 greyscale images (scikit-learn's load_digits)."
SOURCE = "UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998), via scikit-learn"
LICENSE = "CC BY 4.0"
NUM_ROWS = 1797
COLUMNS = {"image": "image", "label": "categorical"}
LABEL = "label"
OPTIONS: dict[str, object] = {}
HOW_TO_INSTALL = ""  # bundled with scikit-learn, a core dependency

# The source pixels are counts of set bits in a 4x4 block: 0..16.
_MAX_COUNT = 16


def is_available() -> bool:
    return True


def to_uint8(counts: np.ndarray) -> np.ndarray:
    """Pixel counts 0..16 -> uint8 0..255 as round(v * 255 / 16) (round half up)."""
    # floor(x + 0.5) rounds half up; the only tie, 8 -> 127.5, goes to 128 either way.
    return np.floor(np.asarray(counts, dtype=np.float64) * 255.0 / _MAX_COUNT + 0.5).astype(
        np.uint8
    )


def load(
    *, split: bool, n: int | None, seed: int
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The digits table (or its stratified 80/20 split); see the module docstring."""
    from sklearn.datasets import load_digits

    check_n(n, available=NUM_ROWS, dataset=NAME, split=split)
    bunch = load_digits()
    images = to_uint8(bunch.images)  # (1797, 8, 8)
    table = pd.DataFrame({"image": image_column(images), "label": bunch.target.astype(np.int64)})
    table = sample_rows(table, n, seed)
    if not split:
        return table
    return stratified_split(table, LABEL, seed=seed)
