"""The lightgbm classic candidate: native category splits, seeds, deadlines, refits, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polymodal.errors import ModelFolderError
from polymodal.models import lightgbm_model
from polymodal.models.classic import ClassicModel

CATEGORICAL = [False, False, True]


def _table(n: int, seed: int = 0):
    """A label set by an unordered set of category codes {2, 5, 7} and a number."""
    rng = np.random.default_rng(seed)
    X = np.stack([rng.normal(size=n), rng.normal(size=n), rng.integers(1, 9, n)], axis=1)
    y = (np.isin(X[:, 2], [2, 5, 7]) ^ (X[:, 0] > 1.2)).astype(np.int64)
    return X.astype(np.float32), y


def test_category_codes_are_split_as_sets():
    X, y = _table(600)
    model = ClassicModel("lightgbm", "binary", 2, categorical=CATEGORICAL, seed=0).fit(X, y)
    text = model.estimator_.model_to_string()
    # some tree splits on a set of categories
    assert any(line.startswith("num_cat=") and line != "num_cat=0" for line in text.splitlines())
    test_X, test_y = _table(400, seed=1)
    accuracy = (model.predict_outputs(test_X).argmax(axis=1) == test_y).mean()
    assert accuracy > 0.9, accuracy


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_same_seed_same_model_and_outputs_follow_the_convention(problem):
    X, y = _table(700)
    if problem == "multiclass":
        y = y + (X[:, 1] > 0.5)
    target = X[:, 0] * 2.0 + y if problem == "regression" else y
    outputs = 3 if problem == "multiclass" else 2 if problem == "binary" else 1
    first, second = (ClassicModel("lightgbm", problem, outputs, categorical=CATEGORICAL, seed=3)
                     .fit(X, target) for _ in range(2))
    assert first.estimator_.model_to_string() == second.estimator_.model_to_string()
    out = first.predict_outputs(X)
    np.testing.assert_array_equal(out, second.predict_outputs(X))
    if problem == "regression":
        assert out.shape == (len(X),)
    else:
        assert out.shape == (len(X), outputs)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    # 700 rows: a tenth held out stops the rounds early, so the model is under the cap
    assert 0 < first.size_ < lightgbm_model.MAX_ROUNDS


def test_a_passed_deadline_keeps_the_first_chunk_and_a_refit_keeps_the_size():
    X, y = _table(300)
    cut = ClassicModel("lightgbm", "binary", 2, categorical=CATEGORICAL, seed=0)
    cut.fit(X, y, time_limit_s=0.0)
    assert cut.size_ == lightgbm_model.ROUND_CHUNK and not cut.complete_
    full = ClassicModel("lightgbm", "binary", 2, categorical=CATEGORICAL, seed=0).fit(X, y)
    assert full.complete_ and full.size_ == lightgbm_model.SMALL_TABLE_ROUNDS  # no holdout
    refit = cut.refit_like(X[:200], y[:200])
    assert refit.size_ == lightgbm_model.ROUND_CHUNK


def test_saved_as_lightgbm_text_and_refused_when_it_is_not_what_model_json_says(tmp_path):
    X, y = _table(300)
    model = ClassicModel("lightgbm", "binary", 2, categorical=CATEGORICAL, seed=0).fit(X, y)
    model.save(tmp_path)
    assert (tmp_path / "model.txt").read_text().startswith("tree\n")
    assert not (tmp_path / "model.skops").exists()
    np.testing.assert_array_equal(ClassicModel.load(tmp_path).predict_outputs(X),
                                  model.predict_outputs(X))
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "problem_type": "regression",
                                                     "n_outputs": 1}))
    with pytest.raises(ModelFolderError, match="regression LightGBM model"):
        ClassicModel.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    (tmp_path / "model.txt").write_text("not a model")
    with pytest.raises(ModelFolderError, match="not a readable LightGBM model"):
        ClassicModel.load(tmp_path)
    (tmp_path / "model.txt").unlink()
    with pytest.raises(ModelFolderError, match="model.txt is missing"):
        ClassicModel.load(tmp_path)

