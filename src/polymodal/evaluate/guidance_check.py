"""How recognisable a class-conditional generator's samples are, judged against real images.

A classifier is fit on pooled pixels of the generator's own training images (never on a
test split) and scored twice: on held-out training images (the real images' accuracy)
and on samples drawn at each guidance scale for the classes asked for. Guidance beyond
the point where the samples are as recognisable as real images buys class-typical
pictures at the cost of diversity (recall) and fidelity (FD): Ho & Salimans 2022,
"Classifier-free diffusion guidance", Fig. 4 (the guidance trade-off); bench/RESULTS.md,
'generator_guidance'. :func:`choose_guidance` picks the least guidance that reaches it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# Guidance scales tried, least first (1 = none); the last is the fallback when none of
# the lower ones reaches the real images' accuracy.
CANDIDATES = (1.0, 1.5, 2.0, 3.0)
# Samples may fall this far below the real images' accuracy and still count as reaching
# it: about one standard error of a 300-sample accuracy near 0.95.
TOLERANCE = 0.01
MAX_REAL_IMAGES = 4000  # training images the classifier sees (a stratified subsample)
MIN_CLASS_IMAGES = 4  # classes with fewer images are left out of the check
HELD_OUT_SHARE = 0.25  # of those, held out to measure the real images' accuracy
POOLED_SIDE = 16  # images are average-pooled to at most this side before the classifier


def pooled_features(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, D) float32 pixels average-pooled to <= POOLED_SIDE a side."""
    x = images.float().div_(255.0)
    factor = -(-x.shape[-1] // POOLED_SIDE)  # ceil: 28 -> 2 (14x14), 8 -> 1
    if factor > 1:
        x = torch.nn.functional.avg_pool2d(x, factor)
    return x.flatten(1).numpy()  # (N, C * h * w)


class RecognitionCheck:
    """A pixel classifier of one class column, fit on real images.

    Args:
        images: (N, C, H, W) uint8 training images.
        labels: (N,) the class of each image (compared as strings); None or NaN for an
            image without one (left out).
        seed: the subsample and the split.

    Raises ValueError when fewer than 2 classes have ``MIN_CLASS_IMAGES`` images.
    """

    def __init__(self, images: torch.Tensor, labels, *, seed: int = 0):
        known = pd.notna(np.asarray(labels, dtype=object))
        y = np.asarray(labels, dtype=object).astype(str)
        counts = dict(zip(*np.unique(y[known], return_counts=True), strict=True))
        rows = np.flatnonzero(known & np.array([counts.get(v, 0) >= MIN_CLASS_IMAGES
                                                for v in y], dtype=bool))
        if len(set(y[rows])) < 2:
            raise ValueError(f"fewer than 2 classes with {MIN_CLASS_IMAGES} images each")
        if len(rows) > MAX_REAL_IMAGES:
            rows, _ = train_test_split(rows, train_size=MAX_REAL_IMAGES, random_state=seed,
                                       stratify=y[rows])
            rows = np.sort(rows)
        x, y = pooled_features(images[torch.from_numpy(rows)]), y[rows]
        fit, held = train_test_split(np.arange(len(rows)), test_size=HELD_OUT_SHARE,
                                     random_state=seed, stratify=y)
        self.classes = sorted(set(y[fit]))
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        with warnings.catch_warnings():
            # A yardstick, not a model to keep: the same fit scores real images and samples,
            # so an unconverged one (Fashion-MNIST stops at the iteration cap) is still fair,
            # and scikit-learn's warning would only reach the user's console.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x[fit], y[fit])
        self.real_accuracy = self.accuracy_of(x[held], y[held])
        self.num_real = len(held)

    def accuracy_of(self, features: np.ndarray, labels) -> float:
        return float(np.mean(self.model.predict(features) == np.asarray(labels).astype(str)))

    def sample_accuracy(self, samples: np.ndarray, labels) -> float:
        """Accuracy on generated uint8 (n, H, W, C) images asked for ``labels``."""
        x = torch.from_numpy(np.ascontiguousarray(samples)).permute(0, 3, 1, 2)  # (n, C, H, W)
        return self.accuracy_of(pooled_features(x), labels)


def reaches(sample_accuracy: float, real_accuracy: float, *,
            tolerance: float = TOLERANCE) -> bool:
    """Whether samples are as recognisable as real images, within ``tolerance``."""
    return sample_accuracy >= real_accuracy - tolerance


def choose_guidance(real_accuracy: float, sample_accuracy: dict, *,
                    tolerance: float = TOLERANCE):
    """The least guidance whose samples reach ``real_accuracy`` (:func:`reaches`); the
    greatest one tried when none does. Keys are guidance scales, or tuples ordered the
    same way (``(guidance, condition_from)``: the least scale, then the least start)."""
    for guidance in sorted(sample_accuracy):
        if reaches(sample_accuracy[guidance], real_accuracy, tolerance=tolerance):
            return guidance
    return max(sample_accuracy)
