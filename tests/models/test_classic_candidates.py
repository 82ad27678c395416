"""The classic candidates the tabular/multimodal benchmarks asked for: extra trees, the
linear model, category numbers, image edge statistics, and the refit on all rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sklearn.base
import torch
from PIL import Image, ImageDraw

from polymodal.api import Predictor
from polymodal.data.builtin.shapes import render_shape
from polymodal.models.classic import (
    EDGE_FEATURES,
    EDGE_ORIENTATION_BINS,
    ClassicModel,
    category_numbers,
    edge_statistics,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _image(draw_shape, side: int = 64) -> torch.Tensor:
    """A white shape on black, as the transforms give it: (1, 3, side, side) in [-1, 1]."""
    canvas = Image.new("L", (side, side), 0)
    draw_shape(ImageDraw.Draw(canvas), side)
    pixels = torch.tensor(np.asarray(canvas), dtype=torch.float32) / 127.5 - 1.0
    return pixels.expand(3, side, side)[None]


def _square(draw, side, rotation_deg: float = 0.0):
    center, radius = side / 2, side / 4 * math.sqrt(2)  # corners' distance from the centre
    angles = [math.radians(45 + 90 * k + rotation_deg) for k in range(4)]
    draw.polygon([(center + radius * math.cos(a), center + radius * math.sin(a)) for a in angles],
                 fill=255)


def _circle(draw, side):
    draw.ellipse([side // 4, side // 4, 3 * side // 4, 3 * side // 4], fill=255)


def test_edge_statistics_tell_a_square_from_a_circle_and_ignore_rotation():
    square, circle = _image(_square), _image(_circle)
    rotated = _image(lambda draw, side: _square(draw, side, rotation_deg=30.0))
    stats = edge_statistics(torch.cat([square, rotated, circle]))  # (3, EDGE_FEATURES)
    assert stats.shape == (3, EDGE_FEATURES)
    histogram, spectrum = stats[:, :EDGE_ORIENTATION_BINS], stats[:, EDGE_ORIENTATION_BINS:-1]
    assert torch.allclose(histogram.sum(dim=1), torch.ones(3))
    # A square's edges lie on 2 orientations (mod 180 degrees): a peak at frequency 2.
    # The rotated square is drawn rotated (not a rotated image), as in the shapes dataset.
    # Rotating moves the histogram; the square's frequency-2 peak stays (weakened by the
    # pixel grid, which pulls Sobel orientations towards some angles) well above a circle's.
    assert (histogram[0] - histogram[1]).abs().max() > 0.2
    assert spectrum[0, 1] > 0.8 and spectrum[1, 1] > 0.5 and spectrum[2, 1] < 0.25


def test_edge_statistics_separate_round_from_angular_shapes_of_the_shapes_dataset():
    def spectrum(kind: str, seed: int) -> torch.Tensor:
        image = render_shape(kind, "red", "large", "center", image_size=32, seed=seed)
        pixels = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 127.5 - 1
        return edge_statistics(pixels)[0, EDGE_ORIENTATION_BINS:-1]

    # The square's frequency-2 peak survives random rotation, size jitter and background.
    squares = torch.stack([spectrum("square", s)[1] for s in range(8)])
    circles = torch.stack([spectrum("circle", s)[1] for s in range(8)])
    assert squares.min() > circles.max(), (squares, circles)


def test_absent_images_give_zero_edge_statistics():
    assert torch.equal(edge_statistics(torch.zeros(2, 3, 16, 16)), torch.zeros(2, EDGE_FEATURES))


def test_category_numbers_keep_the_order_that_frequency_codes_lose():
    vocab = {"pixel": ["0", "16", "3"], "color": ["red", "blue"], "empty": []}
    numbers = category_numbers(vocab)
    assert set(numbers) == {"pixel"}  # words and empty vocabularies have no numbers
    values = numbers["pixel"]  # codes: 0 unknown, 1 missing, then the vocabulary
    assert math.isnan(values[0]) and math.isnan(values[1])
    assert values[2:].tolist() == [0.0, 16.0, 3.0]


@pytest.mark.parametrize("kind", ["extra_trees", "linear"])
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_new_kinds_learn_and_round_trip(tmp_path, kind, problem):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    X[:, 3] = rng.integers(2, 5, size=120)  # category codes
    X[:3, 2] = np.nan  # a category number for an unknown cell
    signal = X[:, 0] + (X[:, 3] == 2)
    y = {"binary": (signal > 0.5).astype(np.int64),
         "multiclass": np.digitize(signal, [0.0, 1.0]).astype(np.int64),
         "regression": (signal - signal.mean()) / signal.std()}[problem]
    n_outputs = {"binary": 2, "multiclass": 3, "regression": 1}[problem]
    model = ClassicModel(kind, problem, n_outputs, categorical=[False, False, False, True], seed=0)
    outputs = model.fit(X[:90], y[:90]).predict_outputs(X[90:])
    if problem == "regression":
        assert np.corrcoef(outputs, y[90:])[0, 1] > 0.7
    else:
        assert outputs.shape == (30, n_outputs)
        assert np.mean(outputs.argmax(axis=1) == y[90:]) > 0.7
    loaded = ClassicModel.load(model.save(tmp_path / kind))
    np.testing.assert_array_equal(loaded.predict_outputs(X), model.predict_outputs(X))


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "lightgbm", "catboost", "linear"])
def test_a_category_with_hundreds_of_levels_is_learned(kind):
    """400 names, each in 10 rows with its own effect on the label: more categories than
    histogram boosting's 255 bins, which then reads the codes as numbers."""
    rng = np.random.default_rng(0)
    effect = rng.normal(size=402)
    codes = np.repeat(np.arange(2, 402), 10)
    X = np.stack([codes, rng.normal(size=len(codes))], axis=1).astype(np.float32)
    y = effect[codes] + 0.1 * rng.normal(size=len(codes))
    test = np.arange(len(codes)) % 5 == 0
    model = ClassicModel(kind, "regression", 1, categorical=[True, False], seed=0)
    outputs = model.fit(X[~test], y[~test]).predict_outputs(X[test])
    assert np.corrcoef(outputs, y[test])[0, 1] > 0.5


@pytest.mark.parametrize("problem", ["binary", "multilabel"])
def test_boosting_on_too_few_rows_to_split_grows_one_chunk_of_the_same_model(problem):
    """Under two leaves' worth of rows no tree splits: more iterations would change nothing."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 40)).astype(np.float32)
    y = np.arange(30) % 2 if problem == "binary" else np.stack([np.arange(30) % 2,
                                                                 np.arange(30) % 3 == 0], 1)
    model = ClassicModel("hist_gradient_boosting", problem, 2, seed=0).fit(X, y)
    estimators = model.estimator_ if problem == "multilabel" else [model.estimator_]
    assert [e.n_iter_ for e in estimators] == [10] * len(estimators)
    for k, estimator in enumerate(estimators):  # the full 100 iterations predict the same
        full = sklearn.base.clone(estimator).set_params(max_iter=100, warm_start=False)
        target = y if problem == "binary" else y[:, k]
        full.fit(X, target.astype(np.int64))
        assert full.n_iter_ == 100
        np.testing.assert_allclose(estimator.predict_proba(X), full.predict_proba(X), atol=1e-6)
    enough = ClassicModel("hist_gradient_boosting", "binary", 2, seed=0).fit(
        np.repeat(X, 2, axis=0), np.repeat(y if problem == "binary" else y[:, 0], 2))
    assert enough.size_ == 100  # 60 rows can split: the full model


def test_linear_refuses_multilabel():
    from polymodal.errors import ConfigError

    y = np.array([[0, 1], [1, 0], [1, 1], [0, 0]])
    with pytest.raises(ConfigError, match="does not do multilabel"):
        ClassicModel("linear", "multilabel", 2).fit(np.zeros((4, 2), np.float32), y)


def test_chosen_classic_models_are_refitted_on_train_and_validation_rows():
    rng = np.random.default_rng(0)
    n = 80
    x = rng.normal(size=n)
    level = rng.integers(0, 12, size=n)  # integers read as categories: their numbers matter
    table = pd.DataFrame({"x": x, "level": level,
                          "label": np.where(x + (level > 5) > 0.5, "yes", "no")})
    p = Predictor("label", preset="fast", text_encoder="hashed", verbosity=0, seed=0).fit(table)
    refits = [e for e in p.train_log_ if e["event"] == "refit"]
    assert p.refit_models_ and {e["model"] for e in refits} == set(p.refit_models_)
    assert all(e["num_rows"] == n for e in refits)  # 64 training + 16 validation rows
    assert set(p.refit_models_) <= set(p.models_)
    board = p.leaderboard()
    assert {"random_forest", "extra_trees", "linear", "hist_gradient_boosting"} <= set(board["model"])
    assert np.mean(p.predict(table) == table["label"]) > 0.85


@pytest.mark.parametrize("kind", ["random_forest", "lightgbm", "catboost"])
def test_a_refit_the_time_limit_stops_is_not_returned(kind):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = ClassicModel(kind, "binary", 2, categorical=[False] * 4, seed=0).fit(X, y)
    assert model.refit_like(X, y, time_limit_s=0.0) is None  # the deadline cut it short
    refit = model.refit_like(X, y, time_limit_s=600.0)
    assert refit is not None and refit.complete_ and refit.size_ == model.size_


def test_a_refit_the_deadline_stops_leaves_the_model_trained_on_the_training_rows(monkeypatch):
    real = ClassicModel.refit_like

    def deadline_passed(self, X, y, *, time_limit_s=None):  # the real refit, out of time
        return real(self, X, y, time_limit_s=None if time_limit_s is None else 0.0)

    monkeypatch.setattr(ClassicModel, "refit_like", deadline_passed)
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    table = pd.DataFrame({"x": x, "z": rng.normal(size=120), "label": np.where(x > 0, "yes", "no")})
    p = Predictor("label", time_limit=60, verbosity=0, seed=0,
                  recipe={"candidates.classic": ["random_forest"], "candidates.neural": False,
                          "candidates.cv_folds": 0}).fit(table)
    stopped = [e["model"] for e in p.train_log_ if e["event"] == "refit_stopped"]
    assert stopped == ["random_forest"] and p.refit_models_ == []
    assert p.candidates_["random_forest"].size_ == 100  # the first fit's forest, whole
    assert np.mean(p.predict(table) == table["label"]) > 0.85


def test_large_tables_skip_the_refit(monkeypatch):
    import polymodal.api.predictor as predictor_module

    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    table = pd.DataFrame({"x": x, "label": np.where(x > 0, "yes", "no")})
    # Above the limit for image and audio tables, a table of numbers still refits ...
    monkeypatch.setattr(predictor_module, "REFIT_MAX_ROWS", 50)  # 64 training rows
    p = Predictor("label", preset="fast", text_encoder="hashed", verbosity=0, seed=0).fit(table)
    assert p.refit_models_
    # ... up to its own limit.
    monkeypatch.setattr(predictor_module, "REFIT_MAX_ROWS_FLAT", 50)
    p = Predictor("label", preset="fast", text_encoder="hashed", verbosity=0, seed=0).fit(table)
    assert p.refit_models_ == []
    assert not [e for e in p.train_log_ if e["event"] == "refit"]


def test_image_tables_keep_the_lower_refit_limit(monkeypatch):
    import polymodal.api.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "REFIT_MAX_ROWS", 50)  # 64 training rows
    images = [render_shape(("circle", "square")[i % 2], "red", "large", "center",
                           image_size=16, seed=i) for i in range(80)]
    table = pd.DataFrame({"image": images, "label": [("circle", "square")[i % 2]
                                                     for i in range(80)]})
    p = Predictor("label", preset="fast", time_limit=None, verbosity=0, seed=0,
                  recipe={"training.max_epochs": 1}).fit(table)
    assert any(isinstance(m, ClassicModel) for m in p.candidates_.values())
    assert p.refit_models_ == []


def test_large_media_tables_train_the_classic_models_on_a_sample(monkeypatch):
    import polymodal.api.candidates as candidates_module

    monkeypatch.setattr(candidates_module, "CLASSIC_MEDIA_MAX_ROWS", 30)
    images, labels = [], []
    for i in range(60):
        kind = ("circle", "square")[i % 2]
        images.append(render_shape(kind, "red", "large", "center", image_size=16, seed=i))
        labels.append(kind)
    table = pd.DataFrame({"image": images, "label": labels})
    p = Predictor("label", preset="fast", time_limit=None, verbosity=0, seed=0).fit(table)
    flat = next(e for e in p.train_log_ if e["event"] == "flat_features")
    assert flat["classic_train_rows"] == 30  # of 48 training rows
    assert "random_forest" in p.candidates_
    assert np.mean(p.predict(table) == table["label"]) > 0.8
