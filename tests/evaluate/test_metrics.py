"""Metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.evaluate import generation as gm
from polymodal.evaluate.metrics import (
    classification_metrics,
    compute_metrics,
    expected_calibration_error,
    multilabel_metrics,
    regression_metrics,
)


def test_perfect_and_wrong_classifiers():
    y = np.array([0, 1, 2, 1])
    perfect = np.eye(3)[y] * 0.98 + 0.02 / 3
    m = classification_metrics(y, perfect)
    assert m["accuracy"] == 1.0 and m["f1_macro"] == 1.0 and m["auroc"] == 1.0
    wrong = np.eye(3)[(y + 1) % 3]
    m = classification_metrics(y, wrong)
    assert m["accuracy"] == 0.0 and m["log_loss"] > 10


def test_binary_auroc_and_balanced_accuracy():
    y = np.array([0, 0, 0, 1])
    p1 = np.array([0.1, 0.2, 0.6, 0.7])
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1))
    assert m["auroc"] == 1.0
    assert m["accuracy"] == 0.75
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)


def test_ece_zero_when_confidence_matches_accuracy():
    # Confidence 0.75 everywhere, right 3 times out of 4 -> perfectly calibrated.
    y = np.array([0, 0, 0, 1])
    proba = np.tile([0.75, 0.25], (4, 1))
    assert expected_calibration_error(y, proba) == pytest.approx(0.0)
    overconfident = np.tile([1.0, 0.0], (4, 1))
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.25)


def test_regression_metrics_known_values():
    m = regression_metrics([1, 2, 3], [1, 2, 5])
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert regression_metrics([1, 2, 3], [1, 2, 3])["r2"] == 1.0


def test_multilabel_per_label_f1():
    y = np.array([[1, 0], [1, 1], [0, 1]])
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    m = multilabel_metrics(y, p, label_names=["cat", "dog"])
    assert m["f1[cat]"] == 1.0
    assert m["f1[dog]"] == pytest.approx(2 / 3)
    assert m["subset_accuracy"] == pytest.approx(2 / 3)
    assert compute_metrics("multilabel", y, p)["f1_macro"] == m["f1_macro"]


def test_frechet_distance_identical_sets_near_zero_and_shift_exact():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 4))
    assert gm.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, mean shifted by 3 along one axis -> FD = 9.
    assert gm.frechet_distance(a, a + np.array([3.0, 0, 0, 0])) == pytest.approx(9.0, rel=1e-6)


def test_kid_small_for_same_distribution_large_for_disjoint():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    same, _ = gm.kernel_inception_distance(a, b, num_subsets=10, subset_size=200)
    far, _ = gm.kernel_inception_distance(a, b + 5.0, num_subsets=10, subset_size=200)
    assert abs(same) < 0.05 and far > 10 * max(abs(same), 1e-3)


def test_precision_recall_of_a_mode_collapsed_generator():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 2))
    collapsed = rng.normal(scale=0.05, size=(400, 2))  # all fakes at the real mode's centre
    pr = gm.precision_recall(real, collapsed, k=3)
    assert pr["precision"] > 0.95 and pr["recall"] < 0.2
    disjoint = gm.precision_recall(real, real + 100.0)
    assert disjoint == {"precision": 0.0, "recall": 0.0}


def test_memorisation_flags_copies_but_not_fresh_samples():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(300, 16))
    held = rng.normal(size=(100, 16))
    fresh = gm.memorisation(rng.normal(size=(100, 16)), train, held)
    copies = gm.memorisation(train[:100] + 1e-3, train, held)
    assert fresh["near_copies"] == 0 and 0.8 < fresh["nn_dist_ratio"] < 1.2
    assert copies["near_copies"] == 100 and copies["nn_dist_ratio"] < 0.01
