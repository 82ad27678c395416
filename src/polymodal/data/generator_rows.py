"""The Generator's training rows: its table read and checked, every target image decoded
once, and what a caller needs to ask for each condition.

:class:`TrainingRows` serves row positions and builds each :class:`Batch` by slicing the
pre-decoded arrays (far cheaper than per-row dicts).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from polymodal.data.batch import Batch
from polymodal.data.readers import read_table
from polymodal.data.schema import Schema, infer_schema
from polymodal.data.transforms import EncodedTable, TableTransform
from polymodal.errors import DataError, SchemaError

MIN_TRAIN_IMAGES = 16
GRID_PER_ROW = 8  # images per row of a progress grid
GRID_MAX_ROWS = 10  # rows of a progress grid at most


class TrainingRows(Dataset):
    """Items are row positions; :meth:`collate` builds the :class:`Batch`.

    ``images``: (N, C, H, W) uint8, the target images decoded once; ``encoded``: the
    condition columns of the same rows.
    """

    def __init__(self, images: torch.Tensor, encoded: EncodedTable, transform: TableTransform,
                 image_column: str, positions: np.ndarray | None = None):
        self.positions = positions  # the rows' positions in the table read, when known
        self.images = images
        self.encoded = encoded
        self.transform = transform
        self.image_column = image_column

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> int:
        return int(index)

    def collate(self, indices: list[int]) -> Batch:
        enc, idx = self.encoded, np.asarray(indices, dtype=np.int64)
        x0 = self.images[torch.from_numpy(idx)].float().div_(127.5).sub_(1.0)  # (B, C, H, W)

        def rows(values: np.ndarray | None) -> torch.Tensor | None:
            return None if values is None else torch.from_numpy(values[idx])

        image = {self.image_column: x0}
        mask = {c: torch.from_numpy(m[idx]) for c, m in enc.mask.items()}
        for col, cells in enc.image.items():  # image *conditions*, decoded per row
            if col != self.image_column:
                decoded = [self.transform.image_tensor(cells[i], enc.base_dir, column=col)
                           for i in idx]
                image[col] = torch.stack([x for x, _ in decoded])  # (B, C', H', W')
                # Only now is it known whether the cell decodes.
                mask[col] = torch.tensor([present for _, present in decoded])
        audio = {}
        for col, cells in enc.audio.items():  # audio conditions, decoded per row
            decoded = [self.transform.audio_tensor(cells[i], enc.base_dir, column=col)
                       for i in idx]
            audio[col] = torch.stack([x for x, _ in decoded])  # (B, 1, n_mels, T)
            mask[col] = torch.tensor([present for _, present in decoded])
        return Batch(index=torch.from_numpy(idx), numeric=rows(enc.numeric),
                     categorical=rows(enc.categorical), multilabel=rows(enc.multilabel),
                     text={c: torch.from_numpy(v[idx]) for c, v in enc.text.items()},
                     image=image, audio=audio, mask=mask)


def read_image_table(table, image: str, conditions: list[str], *, columns: dict | None,
                     seed: int, condition_modalities: tuple[str, ...]
                     ) -> tuple[pd.DataFrame, Schema]:
    """The image and condition columns of ``table``, and their schema (``columns``
    overrides modalities); the image column must hold images and each condition one of
    ``condition_modalities``."""
    df = read_table(table)
    missing = [c for c in [image, *conditions] if c not in df.columns]
    if missing:
        raise SchemaError(f"column(s) {missing} are not in the table; its columns are "
                          f"{list(df.columns)[:30]}. Pass image=... and condition=[...] "
                          "with names from it")
    attrs = dict(df.attrs)
    df = df[[image, *conditions]].reset_index(drop=True)
    df.attrs = attrs  # base_dir: where relative image paths resolve
    overrides = {k: v for k, v in (columns or {}).items() if k in df.columns}
    schema = infer_schema(df, overrides=overrides, seed=seed)
    column = schema.columns[image]
    if column.modality != "image":
        raise SchemaError(
            f"image column {image!r} is {column.modality} ({column.reason}), not an "
            f"image; pass the image column as image=..., or override it with "
            f"columns={{{image!r}: 'image'}} if its cells are images")
    for c in conditions:
        col = schema.columns[c]
        if col.modality not in condition_modalities:
            raise SchemaError(
                f"condition column {c!r} is {col.modality} ({col.reason}); a generator can "
                f"be conditioned on {', '.join(condition_modalities)} columns. Override it "
                f"with columns={{{c!r}: 'categorical'}} (or another modality) or leave it out")
    return df, schema


def training_rows(df: pd.DataFrame, transform: TableTransform, image: str
                  ) -> tuple[TrainingRows, pd.DataFrame]:
    """The rows whose image decodes, as a dataset and as a table; too few is an error."""
    images, ok = decode_images(transform, df, image)
    num_ok, num_skipped = int(ok.sum()), int((~ok).sum())
    if num_ok < MIN_TRAIN_IMAGES:
        raise DataError(
            f"image column {image!r} has {num_ok} usable image(s) ({num_skipped} of "
            f"{len(df)} rows missing or unreadable); training needs at least "
            f"{MIN_TRAIN_IMAGES}. Add images or fix the unreadable files")
    rows = df.iloc[np.flatnonzero(ok)].reset_index(drop=True)
    rows.attrs = dict(df.attrs)
    encoded = transform.encode(rows, with_label=False)
    return TrainingRows(images, encoded, transform, image, np.flatnonzero(ok)), rows


def decode_images(transform: TableTransform, df: pd.DataFrame, column: str
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """Every image of ``column`` as uint8 (N_ok, C, H, W), and the (N,) mask of decoded rows.

    uint8 is a quarter of float32's memory and exact: the transform made its floats as
    uint8 pixels / 127.5 - 1.
    """
    base_dir = df.attrs.get("base_dir")
    images = torch.empty(len(df), *transform.image_shapes_[column], dtype=torch.uint8)
    ok = np.zeros(len(df), dtype=bool)
    for i, cell in enumerate(df[column].to_numpy(dtype=object)):
        x, present = transform.image_tensor(cell, base_dir, column=column)  # (C, H, W)
        if present:
            ok[i] = True
            images[i] = x.add(1.0).mul_(127.5).round_().to(torch.uint8)
    return images[torch.from_numpy(ok)] if not ok.all() else images, ok


def conditions_info(schema: Schema, transform: TableTransform, rows: pd.DataFrame,
                    conditions: list[str]) -> dict:
    """What a caller needs to ask for each condition: modality, classes, ranges."""
    info: dict[str, dict] = {}
    for c in conditions:
        modality = schema.modality(c)
        entry: dict = {"modality": modality}
        if modality == "categorical":
            entry["classes"] = _sorted_classes(list(transform.vocab_[c]))
        elif modality == "numeric":
            values = pd.to_numeric(rows[c], errors="coerce").dropna()
            if len(values):
                entry.update(min=float(values.min()), max=float(values.max()),
                             mean=float(values.mean()))
        elif modality == "multilabel":
            entry["tags"] = list(transform.tag_vocab_[c]["tags"])
        elif modality == "text":
            entry["text_encoder"] = transform.text_embedder_.kind
        elif modality == "image":
            entry["shape"] = list(transform.image_shapes_[c])
        info[c] = entry
    return info


def grid_conditions(rows: pd.DataFrame, info: dict) -> dict:
    """The data rows whose conditions the progress grids show when no condition is
    categorical (JSON-able; image conditions are left out of grids)."""
    columns = [c for c, i in info.items() if i["modality"] != "image"]
    head = rows[columns].head(GRID_MAX_ROWS // 2)
    return {"rows": {c: [_jsonable(v) for v in head[c]] for c in columns}}


def grid_frame(info: dict, grid: dict) -> tuple[pd.DataFrame | None, list[str], int]:
    """(condition table, row labels, rows) for a progress grid: one row per class of the
    first categorical condition, else the rows of :func:`grid_conditions`."""
    categorical = [c for c, i in info.items() if i["modality"] == "categorical"]
    frame, labels = None, []
    if categorical:
        c = categorical[0]
        classes = info[c]["classes"][:GRID_MAX_ROWS]
        frame = pd.DataFrame({c: np.repeat(np.array(classes, dtype=object), GRID_PER_ROW)})
        labels = [f"{c}={v}" for v in classes]
    elif grid["rows"] and len(next(iter(grid["rows"].values()))):
        data = pd.DataFrame(grid["rows"], dtype=object)
        frame = data.loc[data.index.repeat(GRID_PER_ROW)].reset_index(drop=True)
        labels = [f"row {i}" for i in range(len(data))]
    if frame is None:
        return None, [], GRID_PER_ROW
    for c in info:
        if c not in frame:
            frame[c] = None  # not shown: the null condition
    frame.attrs["base_dir"] = os.getcwd()
    return frame, labels, len(labels)


def _sorted_classes(values: list[str]) -> list[str]:
    """Category strings in numeric order when they are all numbers, else alphabetical."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _jsonable(value):
    """A table cell as a JSON value (numpy scalars unwrapped, missing as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    return str(value)
