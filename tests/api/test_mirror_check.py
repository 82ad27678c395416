"""``image_augment="auto"``: the check that decides whether a mirrored training image keeps
its label (:mod:`polymodal.api.mirror_check`), on tables where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal import datasets
from polymodal.api import Predictor
from polymodal.api.mirror_check import check_mirroring
from polymodal.data.schema import infer_schema
from polymodal.data.transforms import TableTransform

pytestmark = pytest.mark.usefixtures("one_thread")


def fitted(table: pd.DataFrame) -> TableTransform:
    return TableTransform(infer_schema(table, label="label")).fit(table)


def arrows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Arrows pointing left or right on noise, at random heights: mirroring one turns it
    into the other class."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        image = rng.uniform(0, 60, (16, 16)).astype(np.uint8)
        row = int(rng.integers(4, 12))
        image[row, 3:13] = 255  # the shaft
        for step in range(1, 4):  # the head, at the left or the right end
            col = 3 + step if i % 2 == 0 else 12 - step
            image[row - step, col] = image[row + step, col] = 255
        images.append(image)
        labels.append("left" if i % 2 == 0 else "right")
    return pd.DataFrame({"image": images, "label": labels})


def blobs(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Discs or squares (the label) at random places: mirroring keeps the label."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    images, labels = [], []
    for i in range(n):
        cy, cx, r = rng.uniform(5, 11), rng.uniform(5, 11), rng.uniform(2.5, 4)
        disc = i % 2 == 0
        shape = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if disc else (
            (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8))
        images.append(np.where(shape, 255, rng.uniform(0, 80, (16, 16))).astype(np.uint8))
        labels.append("disc" if disc else "square")
    return pd.DataFrame({"image": images, "label": labels})


def test_mirrored_digits_and_arrows_change_their_label():
    digits = datasets.load("digits", split=False, seed=0)
    for table in (digits, arrows()):
        check = check_mirroring(fitted(table), table, seed=0)
        assert check is not None and not check.keeps
        assert check.error_mirrored > 1.5 * check.error_plain


def test_mirrored_shapes_keep_their_label():
    table = blobs()
    check = check_mirroring(fitted(table), table, seed=0)
    assert check is not None and check.keeps and check.num_rows == 400


def test_the_check_does_not_apply_without_images_a_class_label_or_enough_rows():
    numbers = pd.DataFrame({"x": np.arange(300.0), "label": ["a", "b"] * 150})
    assert check_mirroring(fitted(numbers), numbers, seed=0) is None
    few = blobs(n=60)
    assert check_mirroring(fitted(few), few, seed=0) is None
    regression = blobs()
    regression["label"] = np.arange(len(regression), dtype=float) * 0.37
    assert check_mirroring(fitted(regression), regression, seed=0) is None


@pytest.mark.parametrize("make, mirrored", [(arrows, False), (blobs, True)])
def test_auto_is_the_default_and_is_saved_with_the_model(make, mirrored, tmp_path):
    recipe = {"training.max_epochs": 1, "candidates.classic": ["random_forest"],
              "candidates.cv_folds": 0}
    p = Predictor("label", verbosity=0, recipe=recipe).fit(make())
    assert bool((p.transform_.augment or {}).get("hflip")) is mirrored
    p.save(tmp_path / "model")
    loaded = Predictor.load(tmp_path / "model")
    assert bool((loaded.transform_.augment or {}).get("hflip")) is mirrored
    # An explicit choice is kept as it is.
    p = Predictor("label", verbosity=0, recipe=recipe, image_augment="none").fit(make())
    assert p.transform_.augment is None


def test_a_rare_class_does_not_break_the_check():
    table = blobs()
    table.loc[:1, "label"] = "triangle"  # two rows: too few for stratified folds
    check = check_mirroring(fitted(table), table, seed=0)
    assert check is not None and check.num_rows == 400
