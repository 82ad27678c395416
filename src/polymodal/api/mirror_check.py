"""Does a mirrored image keep its label? The check behind ``image_augment="auto"``.

Mirroring training images left-right is the field's default for photos (timm's and
fastai's training transforms flip half the images), and wrong for digits, text, or labels
about left and right. Rather than assume, polymodal asks the table: a linear model (ridge
regression on the pixels) is trained on a sample of the labelled training images, shrunk
to ``SIDE`` x ``SIDE``, once as they are and once with a mirrored copy of each beside it,
and both are scored on the same held-out images, as they are (``FOLDS``-fold
cross-validation). Where a mirrored image keeps its label the copies are more examples of
the same classes and the error hardly moves; where mirroring changes labels they are wrong
examples and the error grows several-fold (a 2 mirrored looks like no digit the model
should call 2). Mirroring is on when the error with the copies stays
within ``ERROR_RATIO`` times the error without them, plus ``ERROR_SLACK``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from polymodal.data.dataset import TableDataset, make_loader
from polymodal.data.split import take_rows

MIN_ROWS = 200  # fewer labelled images than this: too few to tell, so not mirrored
MAX_ROWS = 2000  # a seeded sample of at most this many: a second or two of the budget
FOLDS = 3  # every sampled image is held out once
SIDE = 16
ERROR_RATIO = 1.5
ERROR_SLACK = 0.01


@dataclass(frozen=True)
class MirrorCheck:
    """The check's result: ``keeps`` (mirror in training), the held-out error of the
    linear model trained without and with mirrored copies, and the images it used."""

    keeps: bool
    error_plain: float
    error_mirrored: float
    num_rows: int

    def describe(self) -> str:
        verdict = ("mirrored images keep their labels" if self.keeps
                   else "mirroring changes labels")
        return (f"{verdict} (a linear check on {self.num_rows:,} training images: cross-validated "
                f"error {self.error_plain:.3f} without mirrored copies, "
                f"{self.error_mirrored:.3f} with them)")


def check_mirroring(transform, train: pd.DataFrame, *, seed: int) -> MirrorCheck | None:
    """The check on ``train`` (rows read by the fitted ``transform``); None where it does
    not apply: no image column, not a classification label, or fewer than MIN_ROWS
    labelled rows."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import KFold, StratifiedKFold

    schema = transform.schema
    if not schema.by_modality("image") or schema.problem_type not in ("binary", "multiclass"):
        return None
    labelled = np.flatnonzero(train[schema.label].notna().to_numpy())
    if len(labelled) < MIN_ROWS:
        return None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(labelled)[:MAX_ROWS])
    x, y = _shrunk_images(TableDataset(take_rows(train, rows), transform))
    counts = np.bincount(y)
    folds = (StratifiedKFold if counts[counts > 0].min() >= FOLDS else KFold)(
        FOLDS, shuffle=True, random_state=seed)
    errors = np.zeros(2)
    for fit_rows, held_rows in folds.split(x, y):
        for mirrored in (0, 1):
            inputs, targets = x[fit_rows], y[fit_rows]
            if mirrored:
                inputs = np.concatenate([inputs, inputs[..., ::-1]])
                targets = np.concatenate([targets, targets])
            if len(np.unique(targets)) < 2:  # a fold of one class: nothing to learn from
                return None
            model = RidgeClassifier(alpha=1.0).fit(inputs.reshape(len(inputs), -1), targets)
            errors[mirrored] += (model.predict(x[held_rows].reshape(len(held_rows), -1))
                                 != y[held_rows]).sum()
    plain, with_copies = errors / len(y)
    return MirrorCheck(keeps=bool(with_copies <= ERROR_RATIO * plain + ERROR_SLACK),
                       error_plain=float(plain), error_mirrored=float(with_copies),
                       num_rows=len(y))


def _shrunk_images(dataset: TableDataset) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's images, every image column shrunk to SIDE x SIDE and stacked along
    the channels, (N, C, SIDE, SIDE) float32 (width last, so ``[..., ::-1]`` mirrors),
    and the class indices (N,)."""
    images, labels = [], []
    for batch in make_loader(dataset, batch_size=256, shuffle=False, seed=0):
        parts = [torch.nn.functional.adaptive_avg_pool2d(batch.image[c].float(), SIDE)
                 for c in sorted(batch.image)]
        images.append(torch.cat(parts, dim=1).numpy())
        labels.append(np.asarray(batch.label).astype(np.int64).reshape(-1))
    return np.concatenate(images), np.concatenate(labels)
