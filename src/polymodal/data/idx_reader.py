"""MNIST-style IDX files: the array format, and the image/label table built from a pair.

:func:`read_idx` reads one IDX file into an array (what built-in datasets use);
:func:`read_idx_table` is what :func:`~polymodal.data.readers.read_table` does with an
images file, pairing it with the labels file beside it when there is one.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.file_access import decompress, missing_path_error, read_bytes
from polymodal.errors import DataError

# IDX header: 0x00 0x00, a data-type byte, the number of dimensions (big-endian sizes follow).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into an array of its stored type and shape.

    Format (big-endian): two zero bytes, a data-type byte (0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, one
    4-byte size per dimension, then the data. The array returned uses native byte order.
    """
    path = Path(os.path.expanduser(os.fspath(path))).absolute()
    if not path.is_file():
        raise missing_path_error(path)
    raw = read_bytes(path)
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        raw = decompress(raw, ".gz", path)
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


def read_idx_table(path: Path, notes: list[str]) -> pd.DataFrame:
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
