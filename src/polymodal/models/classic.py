"""Classic baselines over "flat features": scikit-learn models that need one vector per row.

:func:`flat_features` turns a :class:`~polymodal.data.batch.Batch` into a ``(B, F)``
float matrix that tree ensembles can use: the numbers, category codes and tags as they
are, the frozen text embeddings, each image average-pooled to at most 16x16 per channel
plus its edge statistics (:func:`edge_statistics`), and each log-mel spectrogram summarised by the mean, standard deviation and maximum of every mel
band over time and the standard deviation of its frame-to-frame change; one 0/1 presence flag per text/image/audio column tells "absent" from
"all zeros". :func:`flat_layout` names those columns and says which are categorical.
A categorical column whose categories are all numbers (a 0-16 pixel intensity read as
"integer-coded classes", a rating) also gets its value as a number
(:func:`category_numbers`): the category codes are ranked by frequency, so without it a
forest would have no order to split on, where the seed's pipeline had the raw numbers.

:class:`ClassicModel` wraps the classic models of the predictor's candidate list:

- ``"random_forest"``: the seed pipeline, ``StandardScaler`` + ``RandomForestClassifier``
  (or ``Regressor``) with scikit-learn's defaults (100 trees), grown in chunks of trees
  (``warm_start``) so a time limit can stop it early with a usable forest;
- ``"extra_trees"``: the same with ``ExtraTreesClassifier``/``Regressor`` (random split
  thresholds; Geurts, Ernst & Wehenkel 2006), which often beats the forest on small,
  smooth numeric data such as pixels and measurements;
- ``"linear"``: ``LogisticRegression`` / ``Ridge`` over standardised numbers and one-hot
  categories, the strongest simple model on small, nearly linearly separable tables
  (not for multilabel);
- ``"hist_gradient_boosting"``: ``HistGradientBoostingClassifier`` / ``Regressor`` with the
  category-code columns declared categorical, also grown in chunks of iterations; for
  multilabel one model per tag (a constant tag gets a ``DummyClassifier``);
- ``"lightgbm"``: a LightGBM booster with native category splits
  (:mod:`polymodal.models.lightgbm_model`; not for multilabel);
- ``"catboost"``: a CatBoost model of symmetric trees with ordered target statistics
  for the category columns (:mod:`polymodal.models.catboost_model`; not for multilabel).

Outputs follow the predictor's convention (shared with :mod:`polymodal.models.ensemble`):
``(N, K)`` class probabilities for binary (K = 2) and multiclass, ``(N,)`` standardised
values for regression, ``(N, K)`` tag probabilities for multilabel.

Models are saved with ``skops`` (no pickle) and loaded as data only: see
:mod:`polymodal.models.classic_file`, which refuses any type polymodal does not write;
a LightGBM booster is saved in LightGBM's own text model format, a CatBoost model in
CatBoost's binary model format.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from polymodal.data.batch import Batch
from polymodal.errors import ConfigError, ModelFolderError
from polymodal.files import read_json, write_json
from polymodal.models import catboost_model, lightgbm_model
from polymodal.models.classic_file import check_structure, read_estimator, write_estimator

# In the order the predictor trains them; the seed's forest first, so that a budget too
# small for anything else still gets it.
CLASSIC_KINDS = ("random_forest", "extra_trees", "linear", "hist_gradient_boosting", "lightgbm",
                 "catboost")
_BOOSTERS = ("lightgbm", "catboost")  # libraries of their own, not scikit-learn estimators
_FORESTS = ("random_forest", "extra_trees")
FLAT_IMAGE_SIDE = 16  # images are pooled to at most this many pixels per side
EDGE_ORIENTATION_BINS = 18  # 10-degree bins of edge orientation (see edge_statistics)
EDGE_FEATURES = EDGE_ORIENTATION_BINS + EDGE_ORIENTATION_BINS // 2 + 1
# HistGradientBoosting bins categorical codes into at most 255 bins; a column with more
# categories is handed to it as a plain number instead.
HGB_MAX_CATEGORIES = 255
RF_TREES, RF_CHUNK = 100, 10  # scikit-learn's default forest, grown 10 trees at a time
HGB_ITERATIONS, HGB_CHUNK = 100, 10
LINEAR_MAX_ITER = 200  # lbfgs iterations: a time bound (wide text/pixel features converge slowly)

MODEL_FILE = "model.skops"
META_FILE = "model.json"


# --------------------------------------------------------------------------- features


@dataclass
class FlatLayout:
    """Names of the flat-feature columns, and which of them are category codes."""

    names: list[str]
    categorical: list[bool]

    @property
    def num_features(self) -> int:
        return len(self.names)


def _pooled_side(height: int, width: int) -> tuple[int, int]:
    return min(height, FLAT_IMAGE_SIDE), min(width, FLAT_IMAGE_SIDE)


def edge_statistics(images: torch.Tensor) -> torch.Tensor:
    """Global edge statistics of each image: ``(B, C, H, W)`` -> ``(B, EDGE_FEATURES)``.

    Pooled pixels tell a tree where colour is, not what outline it has: the same shape
    moved or rotated gives other pixels. These features do not move with it: the
    histogram of gradient orientations over the whole image (Sobel gradients of the
    channel mean, orientation modulo 180 degrees, weighted by gradient magnitude, summing
    to 1), the magnitudes of that histogram's discrete Fourier coefficients — unchanged
    by a rotation, which only shifts the histogram circularly (the idea of Fourier HOG:
    Liu, Yap & Gong 2014, "Rotation-invariant HOG descriptors using Fourier analysis in
    polar and spherical coordinates", IJCV) — and the mean gradient magnitude. A circle
    spreads its edges over all orientations; a square, a triangle or a star concentrates
    them on 2, 3 or 5 directions, which shows as a peak at that Fourier frequency.
    """
    gray = images.float().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    # Replicate, not zero, padding: zeros would draw a frame of strong horizontal and
    # vertical edges around every image that is not black.
    gray = F.pad(gray, (1, 1, 1, 1), mode="replicate")  # (B, 1, H + 2, W + 2)
    gradients = F.conv2d(gray, kernels).flatten(2)  # (B, 2, H*W)
    magnitude = gradients.norm(dim=1)  # (B, H*W)
    angle = torch.atan2(gradients[:, 1], gradients[:, 0]) % math.pi  # (B, H*W) in [0, pi)
    bins = (angle / math.pi * EDGE_ORIENTATION_BINS).long().clamp(max=EDGE_ORIENTATION_BINS - 1)
    histogram = torch.zeros(len(images), EDGE_ORIENTATION_BINS).scatter_add_(1, bins, magnitude)
    histogram = histogram / histogram.sum(dim=1, keepdim=True).clamp(min=1e-6)  # (B, bins)
    spectrum = torch.fft.rfft(histogram, dim=1).abs()[:, 1:]  # (B, bins // 2); DC is always 1
    return torch.cat([histogram, spectrum, magnitude.mean(dim=1, keepdim=True)], dim=1)


def category_numbers(vocab: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """For each categorical column whose categories all read as numbers, ``values[code]``:
    the number each category code stands for, NaN for the unknown (0) and missing (1) codes.

    ``vocab`` is the fitted transform's ``vocab_`` (``{column: category strings}``, codes
    2, 3, ... in that order).
    """
    numbers = {}
    for column, categories in vocab.items():
        try:
            values = np.array([float(c) for c in categories], dtype=np.float64)
        except (TypeError, ValueError):
            continue  # words, not numbers
        if len(values) and np.isfinite(values).all():
            numbers[column] = np.concatenate([[np.nan, np.nan], values]).astype(np.float32)
    return numbers


def flat_layout(spec: dict, numbers: dict[str, np.ndarray] | None = None) -> FlatLayout:
    """The flat-feature columns for a transform's feature spec, in :func:`flat_features` order.

    ``numbers``: :func:`category_numbers` of the transform, or None for codes only.
    """
    names: list[str] = list(spec.get("numeric_names") or [f"numeric_{i}" for i in range(spec["n_numeric"])])
    categorical = [False] * len(names)
    # Every code column is a category; each model caps what it takes as one (_boosting).
    names += spec["categorical_columns"]
    categorical += [True] * len(spec["categorical_columns"])
    valued = [c for c in spec["categorical_columns"] if c in (numbers or {})]
    names += [f"{column}__value" for column in valued]
    categorical += [False] * len(valued)
    for column, dim in spec["multilabel_columns"].items():
        names += [f"{column}[{k}]" for k in range(dim)]
        categorical += [False] * dim
    for column, dim in spec["text_dims"].items():
        names += [f"{column}__emb{k}" for k in range(dim)] + [f"{column}__present"]
        categorical += [False] * (dim + 1)
    for column, (channels, height, width) in spec["image_shapes"].items():
        side_h, side_w = _pooled_side(height, width)
        count = channels * side_h * side_w
        names += [f"{column}__px{k}" for k in range(count)]
        names += [f"{column}__edge_orientation{k}" for k in range(EDGE_ORIENTATION_BINS)]
        names += [f"{column}__edge_spectrum{k + 1}" for k in range(EDGE_ORIENTATION_BINS // 2)]
        names += [f"{column}__edge_strength", f"{column}__present"]
        categorical += [False] * (count + EDGE_FEATURES + 1)
    for column, (_, n_mels, _) in spec["audio_shapes"].items():
        names += [f"{column}__mel{k}_mean" for k in range(n_mels)]
        names += [f"{column}__mel{k}_std" for k in range(n_mels)]
        names += [f"{column}__mel{k}_max" for k in range(n_mels)]
        names += [f"{column}__mel{k}_delta_std" for k in range(n_mels)] + [f"{column}__present"]
        categorical += [False] * (4 * n_mels + 1)
    return FlatLayout(names=names, categorical=categorical)


def flat_features(batch: Batch, spec: dict, numbers: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One float32 row of flat features per row of ``batch``: ``(B, F)``,
    F = ``flat_layout(spec, numbers)``."""
    rows = len(batch)
    parts: list[torch.Tensor] = []

    def presence(column: str) -> torch.Tensor:
        mask = batch.mask.get(column)
        flag = torch.ones(rows) if mask is None else mask.float().cpu()
        return flag[:, None]  # (B, 1)

    if spec["n_numeric"]:
        parts.append(batch.numeric.float().cpu())  # (B, F_num)
    if spec["categorical_cardinalities"]:
        codes = batch.categorical.cpu()  # (B, F_cat)
        parts.append(codes.float())
        for j, column in enumerate(spec["categorical_columns"]):
            if column in (numbers or {}):
                values = numbers[column][codes[:, j].numpy()]  # (B,) the categories' numbers
                parts.append(torch.from_numpy(values)[:, None])
    if spec["multilabel_dim"]:
        parts.append(batch.multilabel.float().cpu())  # (B, F_tags)
    for column in spec["text_dims"]:
        parts += [batch.text[column].float().cpu(), presence(column)]  # (B, D), (B, 1)
    for column, (_, height, width) in spec["image_shapes"].items():
        images = batch.image[column].float().cpu()  # (B, C, H, W) in [-1, 1]
        pooled = F.adaptive_avg_pool2d(images, _pooled_side(height, width))  # (B, C, h, w)
        parts += [pooled.reshape(rows, -1), edge_statistics(images), presence(column)]
    for column in spec["audio_shapes"]:
        log_mel = batch.audio[column].float().cpu()[:, 0]  # (B, n_mels, T)
        mean, std = log_mel.mean(dim=2), log_mel.std(dim=2, unbiased=False)  # (B, n_mels) each
        peak = log_mel.amax(dim=2)  # (B, n_mels): the loudest frame per band, padding-proof
        # How fast each band changes (the spectral dynamics that tell words apart across voices).
        delta = log_mel.diff(dim=2) if log_mel.shape[2] > 1 else torch.zeros_like(log_mel)
        parts += [mean, std, peak, delta.std(dim=2, unbiased=False), presence(column)]
    if not parts:
        raise ConfigError("the feature spec has no features to flatten")
    return torch.cat(parts, dim=1).numpy().astype(np.float32, copy=False)  # (B, F)


# --------------------------------------------------------------------------- models


@contextlib.contextmanager
def _sklearn_threads() -> Iterator[None]:
    """Give scikit-learn's OpenMP pool (gradient boosting) as many threads as torch uses.

    OpenMP workers spin while they wait, so on a CPU shared with other processes a full
    pool can run many times slower than one thread (see bench/RESULTS.md, 'Ad-hoc probes').
    Following ``torch.get_num_threads()`` gives one knob for both libraries:
    ``torch.set_num_threads(1)`` makes both single-threaded.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=_thread_limit(), user_api="openmp"):
        yield


_THREADS = threading.local()


def _thread_limit() -> int:
    return getattr(_THREADS, "limit", None) or torch.get_num_threads()


@contextlib.contextmanager
def classic_threads(limit: int) -> Iterator[None]:
    """In this Python thread, classic models use ``limit`` CPU threads whatever torch's
    count is (for fitting them beside a network that trains in another thread)."""
    previous = getattr(_THREADS, "limit", None)
    _THREADS.limit = int(limit)
    try:
        yield
    finally:
        _THREADS.limit = previous


def _boosting_iterations(estimator, num_rows: int) -> int:
    """Iterations worth growing: with fewer than two leaves' worth of rows no tree can
    split, every iteration is one leaf that leaves the prior as it is, so one chunk does."""
    return HGB_ITERATIONS if num_rows >= 2 * estimator.min_samples_leaf else HGB_CHUNK


def chunk_size(kind: str) -> int | None:
    """Trees or iterations a time limit cannot cut (the first chunk is always grown);
    None for the linear model, which fits whole."""
    if kind == "lightgbm":
        return lightgbm_model.ROUND_CHUNK
    if kind == "catboost":
        return catboost_model.ROUND_CHUNK
    return RF_CHUNK if kind in _FORESTS else HGB_CHUNK if kind == "hist_gradient_boosting" else None


def supports(kind: str, problem_type: str) -> bool:
    """Whether a classic model ``kind`` can be fitted for ``problem_type``."""
    return not (kind in ("linear", *_BOOSTERS) and problem_type == "multilabel")


def _full_proba(classes: np.ndarray, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all ``n_classes`` from a model that saw only ``classes`` of them."""
    full = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    full[:, np.asarray(classes, dtype=np.int64)] = proba
    return full


def _tag_probability(classes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """P(tag present) from one binary output's ``predict_proba`` (N, 1 or 2)."""
    classes = np.asarray(classes).astype(np.int64).tolist()
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(proba.shape[0])


class ClassicModel:
    """A scikit-learn baseline over flat features, with the predictor's output convention.

    Args:
        kind: one of :data:`CLASSIC_KINDS`.
        problem_type: ``binary``, ``multiclass``, ``regression`` or ``multilabel``.
        n_outputs: classes (binary: 2), tags, or 1 for regression.
        categorical: per flat-feature column, whether it holds category codes (used by
            gradient boosting; the forest treats codes as numbers, as the seed did).
        seed: ``random_state`` of every estimator.
    """

    def __init__(self, kind: str, problem_type: str, n_outputs: int, *,
                 categorical: list[bool] | None = None, seed: int = 0):
        if kind not in CLASSIC_KINDS:
            raise ConfigError(f"classic model kind {kind!r} is unknown; choose one of {CLASSIC_KINDS}")
        self.kind = kind
        self.problem_type = problem_type
        self.n_outputs = int(2 if problem_type == "binary" else n_outputs)
        self.categorical = list(categorical or [])
        self.seed = seed
        self.estimator_ = None
        self.complete_ = True  # False when a time limit stopped growing the model early

    # --- construction -----------------------------------------------------------------

    def _forest(self):
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        regression = self.problem_type == "regression"
        if self.kind == "extra_trees":
            cls = ExtraTreesRegressor if regression else ExtraTreesClassifier
        else:
            cls = RandomForestRegressor if regression else RandomForestClassifier
        return make_pipeline(StandardScaler(), cls(n_estimators=RF_CHUNK, warm_start=True,
                                                   random_state=self.seed))

    def _linear(self, num_features: int):
        """Standardised numbers and one-hot category codes into a (logistic) linear model."""
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        categorical = self.categorical if len(self.categorical) == num_features else []
        cat_columns = [i for i, is_cat in enumerate(categorical) if is_cat]
        num_columns = [i for i in range(num_features) if i not in set(cat_columns)]
        # Category numbers are NaN for unknown/missing cells; the trees take NaN, a linear model not.
        numbers = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                StandardScaler())
        parts = [("numbers", numbers, num_columns)]
        if cat_columns:
            # Up to HGB_MAX_CATEGORIES indicators per column, the rarest categories pooled.
            parts.append(("categories", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                      max_categories=HGB_MAX_CATEGORIES,
                                                      sparse_output=False), cat_columns))
        if self.problem_type == "regression":
            model = Ridge(alpha=1.0)
        else:
            model = LogisticRegression(C=1.0, max_iter=LINEAR_MAX_ITER, random_state=self.seed)
        return make_pipeline(ColumnTransformer(parts), model)

    def _boosting(self, X: np.ndarray, *, regression: bool):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        mask = None
        if len(self.categorical) == X.shape[1] and any(self.categorical):
            # Codes beyond its 255 bins are handed to it as plain numbers.
            columns = [i for i, flag in enumerate(self.categorical) if flag]
            top = np.nan_to_num(X[:, columns], nan=0.0).max(axis=0, initial=0.0)
            fits = set(np.asarray(columns)[top < HGB_MAX_CATEGORIES].tolist())
            mask = [i in fits for i in range(X.shape[1])] if fits else None
        return cls(max_iter=HGB_CHUNK, warm_start=True, categorical_features=mask,
                   random_state=self.seed)

    # --- fit --------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray, *, time_limit_s: float | None = None,
            max_size: int | None = None) -> ClassicModel:
        """Fit on flat features ``X`` (N, F) and encoded labels ``y``.

        ``y``: class indices (N,), standardised values (N,) or multi-hot (N, K).
        ``time_limit_s`` stops adding trees/iterations once spent (at least one chunk is
        always grown); ``max_size`` caps the trees/iterations (default: the full model).
        """
        deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s
        X = np.asarray(X, dtype=np.float32)
        with _sklearn_threads():
            return self._fit(X, y, deadline, max_size)

    def _fit(self, X: np.ndarray, y: np.ndarray, deadline: float | None,
             max_size: int | None) -> ClassicModel:
        if self.kind == "lightgbm":
            if self.problem_type == "multilabel":
                raise ConfigError("the lightgbm classic model does not do multilabel; use another kind")
            self.estimator_, complete = lightgbm_model.fit_booster(
                X, y, self.categorical, self.problem_type, self.n_outputs, seed=self.seed,
                threads=_thread_limit(), deadline=deadline, max_rounds=max_size)
            self.complete_ = self.complete_ and complete
            return self
        if self.kind == "catboost":
            if self.problem_type == "multilabel":
                raise ConfigError("the catboost classic model does not do multilabel; use another kind")
            if len(np.unique(y)) < 2:
                from sklearn.dummy import DummyClassifier, DummyRegressor

                # CatBoost refuses one class or one value (a fold or subsample without the
                # rare ones, a mostly-zero amount): the prior, or the constant.
                dummy = (DummyRegressor(strategy="mean") if self.problem_type == "regression"
                         else DummyClassifier(strategy="prior"))
                self.estimator_ = dummy.fit(X, y)
                return self
            self.estimator_, complete = catboost_model.fit_model(
                X, y, self.categorical, self.problem_type, self.n_outputs, seed=self.seed,
                threads=_thread_limit(), deadline=deadline, max_rounds=max_size)
            self.complete_ = self.complete_ and complete
            return self
        if self.kind == "hist_gradient_boosting" and self.problem_type == "multilabel":
            self.estimator_ = self._fit_per_tag(X, np.asarray(y), deadline)
            return self
        if self.kind == "linear":
            return self._fit_linear(X, y)
        if self.kind in _FORESTS:
            estimator, chunk, total = self._forest(), RF_CHUNK, RF_TREES
            param = estimator.steps[-1][0] + "__n_estimators"  # the forest inside the pipeline
        else:
            estimator = self._boosting(X, regression=self.problem_type == "regression")
            param, chunk, total = "max_iter", HGB_CHUNK, _boosting_iterations(estimator, len(X))
        total = min(total, max_size) if max_size else total
        target = y if self.problem_type != "multilabel" else np.asarray(y).astype(np.int64)
        if self.problem_type in ("binary", "multiclass") and len(np.unique(y)) < 2:
            from sklearn.dummy import DummyClassifier

            self.estimator_ = DummyClassifier(strategy="prior").fit(X, y)
            return self
        size = min(chunk, total)
        while True:
            estimator.set_params(**{param: size})
            estimator.fit(X, target)
            stopped_early = getattr(estimator, "n_iter_", size) < size  # boosting's early stop
            if size >= total or stopped_early:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                self.complete_ = False
                break
            size = min(size + chunk, total)
        self.estimator_ = estimator
        return self

    def _fit_linear(self, X: np.ndarray, y: np.ndarray) -> ClassicModel:
        from sklearn.exceptions import ConvergenceWarning

        if self.problem_type == "multilabel":
            raise ConfigError("the linear classic model does not do multilabel; use another kind")
        if self.problem_type != "regression" and len(np.unique(y)) < 2:
            from sklearn.dummy import DummyClassifier

            self.estimator_ = DummyClassifier(strategy="prior").fit(X, y)
            return self
        estimator = self._linear(X.shape[1])
        with warnings.catch_warnings():
            # Stopping at LINEAR_MAX_ITER is a time bound, not a failure: the validation
            # score decides whether the model is any good.
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, y)
        self.estimator_ = estimator
        return self

    def _fit_per_tag(self, X: np.ndarray, y: np.ndarray, deadline: float | None) -> list:
        from sklearn.dummy import DummyClassifier

        models = []
        for k in range(y.shape[1]):
            target = y[:, k].astype(np.int64)
            if len(np.unique(target)) < 2:
                models.append(DummyClassifier(strategy="prior").fit(X, target))
                continue
            model = self._boosting(X, regression=False)
            model.set_params(max_iter=_boosting_iterations(model, len(X)), warm_start=False)
            models.append(model.fit(X, target))
            if deadline is not None and time.perf_counter() >= deadline and k + 1 < y.shape[1]:
                self.complete_ = False  # the remaining tags get the prior
                models += [DummyClassifier(strategy="prior").fit(X, y[:, j].astype(np.int64))
                           for j in range(k + 1, y.shape[1])]
                break
        return models

    def refit_like(self, X: np.ndarray, y: np.ndarray, *,
                   time_limit_s: float | None = None) -> ClassicModel | None:
        """A model of this one's kind and size (trees, iterations), fitted on ``X``; None
        when ``time_limit_s`` ran out before it grew that big."""
        refitted = ClassicModel(self.kind, self.problem_type, self.n_outputs,
                                categorical=self.categorical, seed=self.seed)
        refitted.fit(X, y, time_limit_s=time_limit_s, max_size=self.size_)
        if not refitted.complete_:
            return None
        refitted.complete_ = self.complete_
        return refitted

    def _catboost_fitted(self) -> bool:
        """Whether the estimator is a CatBoost model (not the one-class prior)."""
        return type(self.estimator_).__module__.startswith("catboost")

    @property
    def features_in_(self) -> int | None:
        """Flat-feature columns the fitted estimator takes (None: not recorded)."""
        est = self.estimator_
        if self.kind == "lightgbm" and est is not None:
            return int(est.num_feature())
        if self.kind == "catboost" and self._catboost_fitted():
            return len(est.feature_names_)
        expected = getattr(est, "n_features_in_", None)
        return None if expected is None else int(expected)

    @property
    def size_(self) -> int | None:
        """Trees (forests) or boosting iterations grown; None for linear and per-tag models."""
        est = self.estimator_
        if self.kind in _FORESTS and hasattr(est, "steps"):
            return int(est.steps[-1][1].n_estimators)
        if self.kind == "hist_gradient_boosting" and hasattr(est, "n_iter_"):
            return int(est.n_iter_)
        if self.kind == "lightgbm" and est is not None:
            return lightgbm_model.rounds(est)
        if self.kind == "catboost" and self._catboost_fitted():
            return catboost_model.rounds(est)
        return None

    # --- predict ----------------------------------------------------------------------

    def predict_outputs(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) or standardised values (N,), as in the module docstring."""
        if self.estimator_ is None:
            raise ModelFolderError(f"{self.kind} model has no fitted estimator; fit or load it first")
        X = np.asarray(X, dtype=np.float32)
        with _sklearn_threads():
            return self._predict(X)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        est = self.estimator_
        if self.kind == "lightgbm":
            return lightgbm_model.predict_booster(est, X, self.problem_type, self.n_outputs,
                                                  threads=_thread_limit())
        if self.kind == "catboost" and self._catboost_fitted():
            return catboost_model.predict_model(est, X, self.categorical, self.problem_type,
                                                self.n_outputs, threads=_thread_limit())
        if self.problem_type == "regression":
            return np.asarray(est.predict(X), dtype=np.float64).reshape(-1)
        if self.problem_type == "multilabel":
            if isinstance(est, list):  # one model per tag
                columns = [_tag_probability(m.classes_, m.predict_proba(X)) for m in est]
            else:  # a multi-output forest: one (N, n_classes_k) array per tag
                classes = est.steps[-1][1].classes_
                columns = [_tag_probability(c, p)
                           for c, p in zip(classes, est.predict_proba(X), strict=True)]
            return np.stack(columns, axis=1).astype(np.float64)  # (N, K)
        return _full_proba(est.classes_, est.predict_proba(X), self.n_outputs)  # (N, K)

    # --- persistence ------------------------------------------------------------------

    def config(self) -> dict:
        return {"kind": self.kind, "problem_type": self.problem_type, "n_outputs": self.n_outputs,
                "categorical": self.categorical, "seed": self.seed, "complete": self.complete_}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``model.skops`` (no pickle; LightGBM: its text ``model.txt``; CatBoost:
        its binary ``model.cbm``) and ``model.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.kind == "lightgbm":
            lightgbm_model.write_booster(self.estimator_, directory)
        elif self.kind == "catboost" and self._catboost_fitted():
            catboost_model.write_model(self.estimator_, directory)
        else:
            write_estimator(self.estimator_, directory / MODEL_FILE)
        write_json(directory / META_FILE, self.config())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ClassicModel:
        """Rebuild a model saved by :meth:`save`; a file holding anything polymodal does
        not write is refused before any of it is built (:func:`read_estimator`)."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise ModelFolderError(f"{meta_path} is missing; the model folder is incomplete — "
                                   "save the predictor again")
        try:
            meta = read_json(meta_path)
            model = cls(meta["kind"], meta["problem_type"], meta["n_outputs"],
                        categorical=meta["categorical"], seed=meta["seed"])
            model.complete_ = bool(meta.get("complete", True))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFolderError(f"{meta_path} is unreadable ({exc}); save the predictor again"
                                   ) from None
        if not supports(model.kind, model.problem_type):
            raise ModelFolderError(f"{meta_path} declares a {model.problem_type} {model.kind} "
                                   "model, which polymodal never writes; save the predictor again")
        if model.kind == "lightgbm":  # read_booster says when model.txt is missing
            model.estimator_ = lightgbm_model.read_booster(
                directory, model.problem_type, model.n_outputs, len(model.categorical))
            return model
        model_path = directory / MODEL_FILE
        if model.kind == "catboost" and not model_path.is_file():  # read_model says when model.cbm is missing
            model.estimator_ = catboost_model.read_model(
                directory, model.problem_type, model.n_outputs, model.categorical)
            return model
        if not model_path.is_file():
            raise ModelFolderError(f"{model_path} is missing; the model folder is incomplete — "
                                   "save the predictor again")
        estimator = read_estimator(model_path)
        check_structure(estimator, model.kind, model.problem_type, model_path)
        model.estimator_ = estimator
        return model
