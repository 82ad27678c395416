"""The recognition check behind guidance "auto": a pixel classifier fit on real images,
and the least guidance whose samples it recognises as well as real ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from polymodal.data.builtin import fashion_mnist
from polymodal.evaluate.guidance_check import (
    MAX_REAL_IMAGES,
    RecognitionCheck,
    choose_guidance,
    pooled_features,
    reaches,
)


@pytest.fixture(scope="module")
def digit_images():
    d = load_digits()
    images = torch.from_numpy((d.images * 255 / 16).round().astype(np.uint8))[:, None]  # (N,1,8,8)
    return images, d.target


def test_the_least_guidance_that_reaches_real_images_is_chosen():
    accuracy = {1.0: 0.80, 1.5: 0.945, 2.0: 0.97, 3.0: 0.99}
    assert choose_guidance(0.95, accuracy) == 1.5  # within the tolerance of 0.01
    assert choose_guidance(0.95, accuracy, tolerance=0.0) == 2.0
    assert choose_guidance(0.70, accuracy) == 1.0
    # None reaches: the greatest tried.
    assert choose_guidance(0.999, accuracy, tolerance=0.0) == 3.0
    assert reaches(0.94, 0.95) and not reaches(0.93, 0.95)


def test_pooling_keeps_small_images_and_halves_large_ones():
    assert pooled_features(torch.zeros(3, 1, 8, 8, dtype=torch.uint8)).shape == (3, 64)
    assert pooled_features(torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).shape == (3, 196)
    assert pooled_features(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 3 * 256)
    x = torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)
    np.testing.assert_allclose(pooled_features(x), 1.0)


def test_real_images_score_high_and_mislabelled_ones_low(digit_images):
    images, labels = digit_images
    check = RecognitionCheck(images, labels, seed=0)
    assert check.real_accuracy > 0.9 and check.num_real == pytest.approx(0.25 * len(labels), abs=2)
    assert check.classes == [str(i) for i in range(10)]
    hwc = images[:300].permute(0, 2, 3, 1).numpy()  # samples come as (n, H, W, C)
    assert check.sample_accuracy(hwc, labels[:300]) > 0.9
    shifted = (labels[:300] + 1) % 10  # the wrong class asked for every image
    assert check.sample_accuracy(hwc, shifted) < 0.1
    # Same seed, same classifier.
    again = RecognitionCheck(images, labels, seed=0)
    assert again.real_accuracy == check.real_accuracy


def test_many_images_are_subsampled_and_rare_classes_left_out(digit_images):
    images, labels = digit_images
    many = images.repeat(3, 1, 1, 1)
    many_labels = np.tile(labels, 3).astype(object)
    many_labels[:3] = "rare"  # 3 images: too few to hold one out and fit on the rest
    check = RecognitionCheck(many, many_labels, seed=1)
    assert "rare" not in check.classes
    assert check.num_real == pytest.approx(0.25 * MAX_REAL_IMAGES, abs=2)


def test_one_class_is_no_check(digit_images):
    images, _ = digit_images
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        RecognitionCheck(images[:50], np.zeros(50, dtype=int))


def test_images_without_a_class_are_left_out(digit_images):
    images, labels = digit_images
    with_missing = labels.astype(object)
    with_missing[::2] = None
    with_missing[1] = float("nan")
    check = RecognitionCheck(images, with_missing, seed=0)
    known = len(labels) - len(labels[::2]) - 1
    assert check.num_real == pytest.approx(0.25 * known, abs=2)
    assert "None" not in check.classes and "nan" not in check.classes


@pytest.mark.skipif(not fashion_mnist.is_available(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_the_check_does_not_print_scikit_learns_convergence_warning():
    """On Fashion-MNIST the classifier stops at its iteration cap; the check is a yardstick
    (the same fit scores real images and samples), so the user's console is not told."""
    from sklearn.exceptions import ConvergenceWarning

    from polymodal import datasets

    train = datasets.load("fashion-mnist", split=True)[0].iloc[:4000]
    images = torch.from_numpy(np.stack(train["image"].to_list()))[:, None]  # (N, 1, 28, 28)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check = RecognitionCheck(images, train["label"].to_numpy())
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert 0.7 < check.real_accuracy < 0.95  # pooled pixels tell garments apart, not perfectly
