"""Self-training on the rows whose label is empty: the selection of pseudo-labels, a fit
that uses them (read from the saved recipe and summary, not the console), its
determinism, and ``unlabelled="ignore"``. Fits are bounded by epochs and rounds."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from polymodal.api import Predictor
from polymodal.api.self_training import select_pseudo_labels, spread_labels
from polymodal.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

# One epoch-bounded round, one classic model: seconds on one thread.
BOUNDED = {"training.max_epochs": 40, "training.batch_size": 16, "unlabelled.rounds": 1,
           "candidates.classic": ["random_forest"], "candidates.cv_folds": 0}


def partly_labelled(n: int = 300, num_labelled: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three classes of two numbers; only ``num_labelled`` rows keep their label."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = np.select([x1 < -0.4, x1 > 0.4], ["low", "high"], "mid").astype(object)
    label[rng.permutation(n)[num_labelled:]] = None
    return pd.DataFrame({"x1": x1, "x2": x2, "label": label})


def fit(table: pd.DataFrame, **params) -> Predictor:
    return Predictor("label", text_encoder="hashed", verbosity=0, recipe=BOUNDED,
                     **params).fit(table)


def test_selection_keeps_confident_rows_class_balanced_and_bounded():
    probs = np.array([[0.95, 0.05], [0.90, 0.10], [0.80, 0.20], [0.60, 0.40],
                      [0.10, 0.90], [0.25, 0.75]])
    rows, classes = select_pseudo_labels(probs, threshold=0.7, max_rows=100)
    # Class 0 has 3 confident rows, class 1 has 2: the median (2.5) caps each class at 2,
    # the most confident first; row 3 is below the threshold.
    assert rows.tolist() == [0, 1, 4, 5] and classes.tolist() == [0, 0, 1, 1]
    rows, _ = select_pseudo_labels(probs, threshold=0.7, max_rows=2)  # 1 per class
    assert rows.tolist() == [0, 4]
    rows, _ = select_pseudo_labels(probs, threshold=0.99, max_rows=100)
    assert rows.size == 0


def test_fit_uses_the_unlabelled_rows_and_saves_what_they_did(tmp_path):
    table = partly_labelled()
    p = fit(table)
    summary = p.unlabelled_
    assert summary["method"] == "self_training" and summary["num_rows"] == 240
    first = summary["rounds"][0]
    assert first["num_scored"] == 240 and 0 < first["num_pseudo"] <= 240
    assert sum(first["pseudo_per_class"]) == first["num_pseudo"]
    assert summary["used"] == first["kept"]
    # Kept only when clearly better: more validation rows gained than lost, by a margin.
    gained, lost = first["val_rows_gained"], first["val_rows_lost"]
    assert not first["kept"] or gained - lost >= max(1.0, (gained + lost) ** 0.5)
    assert p.recipe_.unlabelled.method == "self_training"
    # Validation holds labelled rows only: 20 % of the 60.
    assert p.num_val_rows_ == 12
    p.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["recipe"]["unlabelled"]["method"] == "self_training"
    assert config["params"]["unlabelled"] == "auto"
    assert config["unlabelled"]["num_rows"] == 240
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "240" in card  # the model card counts the rows without a label
    loaded = Predictor.load(tmp_path / "model")
    assert loaded.unlabelled_ == json.loads(json.dumps(summary))


def test_self_training_is_deterministic_for_a_seed():
    table = partly_labelled()
    a, b = fit(table, seed=3), fit(table, seed=3)
    timeless = [{k: v for k, v in r.items() if not k.endswith("_s")}
                for p in (a, b) for r in p.unlabelled_["rounds"]]
    assert timeless[:len(timeless) // 2] == timeless[len(timeless) // 2:]
    np.testing.assert_array_equal(a.predict_proba(table), b.predict_proba(table))


def test_ignore_leaves_them_out():
    p = fit(partly_labelled(), unlabelled="ignore")
    assert p.recipe_.unlabelled.method == "none"
    assert p.unlabelled_ == {"num_rows": 240, "method": "none", "used": False}


def test_regression_labels_do_not_self_train():
    table = partly_labelled()
    table["label"] = np.where(table["label"].isna(), np.nan, table["x1"] * 2.0)
    p = fit(table)
    assert p.recipe_.unlabelled.method == "none" and not p.unlabelled_["used"]
    with pytest.raises(ConfigError, match="self_training"):
        fit(table, unlabelled="self_training")


def test_bad_unlabelled_value_names_the_parameter():
    with pytest.raises(ConfigError, match="unlabelled='bogus'"):
        Predictor("label", unlabelled="bogus").fit(partly_labelled())


def test_spreading_follows_the_chain_of_neighbours_not_the_nearest_labelled_point():
    # Two arcs on the unit sphere, latitude +/-0.25, longitude 0 to pi, one labelled
    # point at opposite ends: past the middle, a point is nearer (by cosine) to the
    # other arc's labelled point than to its own, so only a label carried along each arc
    # gets the far halves right.
    longitude = np.tile(np.linspace(0.0, np.pi, 100), 2)
    latitude = np.repeat([0.25, -0.25], 100)
    points = np.stack([np.cos(latitude) * np.cos(longitude),
                       np.cos(latitude) * np.sin(longitude), np.sin(latitude)], axis=1)
    arc = np.repeat([0, 1], 100)
    labelled = np.array([0, 199])  # arc 0 at longitude 0, arc 1 at longitude pi
    rest = np.delete(np.arange(200), labelled)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the fit's thread may not have our filters
        probs = spread_labels(points[labelled], arc[labelled], points[rest], num_classes=3)
    assert caught == []  # it converges: nothing for the console
    assert probs.shape == (198, 3) and np.allclose(probs.sum(axis=1), 1.0)  # all reached
    assert (probs[:, 2] == 0).all()  # no labelled point has class 2
    nearest = arc[labelled][(points[rest] @ points[labelled].T).argmax(axis=1)]
    assert (nearest == arc[rest]).mean() < 0.7  # the nearest labelled point misleads
    assert (probs.argmax(axis=1) == arc[rest]).mean() > 0.95


def test_propagation_can_be_switched_off_and_is_recorded(tmp_path):
    table = partly_labelled()
    on = fit(table)
    off = Predictor("label", text_encoder="hashed", verbosity=0,
                    recipe={**BOUNDED, "unlabelled.propagate": False}).fit(table)
    assert on.unlabelled_["rounds"][0]["propagated"] is True
    assert off.unlabelled_["rounds"][0]["propagated"] is False
    assert on.recipe_.unlabelled.propagate and not off.recipe_.unlabelled.propagate
    with pytest.raises(ConfigError, match="unlabelled.propagate"):
        Predictor("label", recipe={**BOUNDED, "unlabelled.propagate": "maybe"}).fit(table)
