"""The label: its encoding learned from the training rows, and the way back to user labels.

A label is encoded as one of three kinds (the dict :func:`fit_label` returns, saved with
the transform): ``classification`` — class indices into the sorted classes (-1 for a
missing value or a class not seen at fit); ``multilabel`` — a multi-hot vector over the
tag vocabulary; ``regression`` — the value standardised with the training mean/std.
:func:`inverse_label` and :func:`decode_label` turn encoded labels and model outputs
back into values in the user's terms.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from polymodal.data.category_encoding import encode_tags, fit_tags, sorted_classes
from polymodal.data.cells import category_key, category_keys
from polymodal.data.number_encoding import column_floats
from polymodal.errors import DataError

logger = logging.getLogger(__name__)


def fit_label(cells: pd.Series, problem: str, *, label: str, delimiter: str | None) -> dict:
    """The label encoding for ``problem``: classes, tag vocabulary, or regression mean/std.

    ``label`` names the column in errors; ``delimiter`` splits multilabel string cells.
    """
    if problem == "regression":
        values = column_floats(cells)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(
                f"label column {label!r} has no numeric values in the training rows; regression needs numbers"
            )
        std = float(finite.std())
        return {
            "kind": "regression",
            "mean": float(finite.mean()),
            "std": std if std > 1e-12 else 1.0,
        }
    if problem == "multilabel":
        return {"kind": "multilabel", **fit_tags(cells, cap=None, delimiter=delimiter)}
    classes = sorted_classes(cells)
    if len(classes) < 2:
        raise DataError(
            f"label column {label!r} has {len(classes)} distinct value(s) {classes} in the training rows; "
            "a classifier needs at least two classes"
        )
    return {"kind": "classification", "classes": classes}


def encode_label(cells: pd.Series, spec: dict, *, label: str) -> tuple[np.ndarray, np.ndarray]:
    """The encoded label (see the module docstring) and (N,) present, with ``spec`` from
    :func:`fit_label`; values unseen at fit are logged once as a warning."""
    if spec["kind"] == "regression":
        values = column_floats(cells)
        present = np.isfinite(values)
        return ((values - spec["mean"]) / spec["std"]).astype(np.float32), present
    if spec["kind"] == "multilabel":
        return encode_tags(cells, spec)
    lookup = {category_key(v): i for i, v in enumerate(spec["classes"])}
    keys = category_keys(cells)
    index = np.array([lookup.get(k, -1) if k is not None else -1 for k in keys], dtype=np.int64)
    unseen = sorted({k for k in keys if k is not None and k not in lookup})
    if unseen:
        logger.warning(
            "label column %r has %d value(s) not seen at fit time (%s); those rows get label -1",
            label,
            len(unseen),
            ", ".join(unseen[:5]),
        )
    return index, index >= 0


def inverse_label(spec: dict, values) -> np.ndarray | list:
    """Encoded labels back to user labels.

    Regression: standardised values -> original units. Classification: class indices
    -> class values. Multilabel: (N, K) multi-hot -> list of tag lists.
    """
    values = _as_numpy(values)
    if spec["kind"] == "regression":
        return values.astype(np.float64).reshape(-1) * spec["std"] + spec["mean"]
    if spec["kind"] == "multilabel":
        tags = spec["tags"]
        return [[tags[j] for j in np.flatnonzero(row > 0.5)] for row in np.atleast_2d(values)]
    index = values.astype(np.int64).reshape(-1)
    classes = spec["classes"]
    if index.size and (index.min() < 0 or index.max() >= len(classes)):
        raise DataError(
            f"class indices must be in 0..{len(classes) - 1}, got {index.min()}..{index.max()}"
        )
    return np.asarray(classes)[index]


def decode_label(spec: dict, outputs, *, threshold: float = 0.5) -> np.ndarray | list:
    """Model outputs back to user labels.

    Classification: (N, K) scores or probabilities -> the argmax class; for binary,
    (N,) or (N, 1) P(class 1) -> the second class where it exceeds ``threshold``;
    a 1-D integer array is taken as class indices already decided. Multilabel:
    (N, K) probabilities -> the tags above ``threshold``. Regression: (N,) or (N, 1)
    standardised predictions -> values in the label's units.
    """
    outputs = _as_numpy(outputs)
    if spec["kind"] == "regression":
        return inverse_label(spec, outputs)
    if spec["kind"] == "multilabel":
        return inverse_label(spec, (np.atleast_2d(outputs) > threshold).astype(np.float32))
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return inverse_label(spec, outputs.argmax(axis=1))
    outputs = outputs.reshape(-1)
    if outputs.dtype.kind in "iub":
        return inverse_label(spec, outputs)
    if len(spec["classes"]) == 2:
        return inverse_label(spec, (outputs > threshold).astype(np.int64))
    raise DataError(
        f"decode_label got a 1-D float array for {len(spec['classes'])} classes; pass "
        "(N, K) scores or integer class indices"
    )


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
