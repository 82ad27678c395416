"""The catboost classic candidate: category statistics, seeds, deadlines, refits, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polymodal.errors import ModelFolderError
from polymodal.models import catboost_model
from polymodal.models.classic import ClassicModel

CATEGORICAL = [False, False, True]


def _table(n: int, seed: int = 0, categories: int = 40):
    """A label set by an unordered set of category codes (a third of ``categories``) and
    a number: the codes' order says nothing."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(2, 2 + categories, n)
    chosen = np.random.default_rng(99).permutation(np.arange(2, 2 + categories))[:categories // 3]
    X = np.stack([rng.normal(size=n), rng.normal(size=n), codes], axis=1)
    y = (np.isin(codes, chosen) ^ (X[:, 0] > 1.2)).astype(np.int64)
    return X.astype(np.float32), y


def test_category_codes_are_categories_and_learned():
    X, y = _table(800)
    model = ClassicModel("catboost", "binary", 2, categorical=CATEGORICAL, seed=0).fit(X, y)
    assert model.estimator_.get_cat_feature_indices() == [2]
    test_X, test_y = _table(400, seed=1)
    accuracy = (model.predict_outputs(test_X).argmax(axis=1) == test_y).mean()
    assert accuracy > 0.9, accuracy
    # The same codes read as numbers: 40 codes in no order, far harder for its trees.
    as_numbers = ClassicModel("catboost", "binary", 2, categorical=[False] * 3, seed=0).fit(X, y)
    assert (as_numbers.predict_outputs(test_X).argmax(axis=1) == test_y).mean() < accuracy


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_same_seed_same_model_and_outputs_follow_the_convention(problem):
    X, y = _table(300)
    if problem == "multiclass":
        y = y + (X[:, 1] > 0.5)  # classes 0-2 of 4: the fourth never seen
    target = X[:, 0] * 2.0 + y if problem == "regression" else y
    outputs = 4 if problem == "multiclass" else 2 if problem == "binary" else 1
    first, second = (ClassicModel("catboost", problem, outputs, categorical=CATEGORICAL, seed=3)
                     .fit(X, target) for _ in range(2))
    out = first.predict_outputs(X)
    np.testing.assert_array_equal(out, second.predict_outputs(X))
    if problem == "regression":
        assert out.shape == (len(X),)
        assert np.corrcoef(out, target)[0, 1] > 0.9
    else:
        assert out.shape == (len(X), outputs)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert first.size_ == catboost_model.MAX_ROUNDS and first.complete_


def test_a_passed_deadline_keeps_the_first_chunk_and_a_refit_keeps_the_size():
    X, y = _table(300)
    cut = ClassicModel("catboost", "binary", 2, categorical=CATEGORICAL, seed=0)
    cut.fit(X, y, time_limit_s=0.0)
    assert cut.size_ == catboost_model.ROUND_CHUNK and not cut.complete_
    refit = cut.refit_like(X[:200], y[:200])
    assert refit.size_ == catboost_model.ROUND_CHUNK


def test_a_deadline_plans_the_rounds_it_can_afford():
    """A limit shorter than the full model's time trains fewer rounds (planned from a
    timed probe), not 1000 rounds cut off at an arbitrary one."""
    X, y = _table(3000)
    timed = ClassicModel("catboost", "binary", 2, categorical=CATEGORICAL, seed=0)
    import time

    start = time.perf_counter()
    timed.fit(X, y, max_size=catboost_model.PROBE_ROUNDS * 5)
    per_round = (time.perf_counter() - start) / (catboost_model.PROBE_ROUNDS * 5)
    limited = ClassicModel("catboost", "binary", 2, categorical=CATEGORICAL, seed=0)
    limited.fit(X, y, time_limit_s=per_round * 200)  # about 200 rounds' worth
    assert catboost_model.ROUND_CHUNK <= limited.size_ < catboost_model.MAX_ROUNDS
    assert not limited.complete_


def test_saved_as_catboost_binary_and_refused_when_it_is_not_what_model_json_says(tmp_path):
    X, y = _table(300)
    model = ClassicModel("catboost", "binary", 2, categorical=CATEGORICAL, seed=0).fit(X, y)
    model.save(tmp_path)
    assert (tmp_path / catboost_model.MODEL_FILE).is_file()
    assert not (tmp_path / "model.skops").exists()
    loaded = ClassicModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_outputs(X), model.predict_outputs(X))
    assert loaded.features_in_ == 3
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "problem_type": "regression",
                                                     "n_outputs": 1}))
    with pytest.raises(ModelFolderError, match="model.cbm"):
        ClassicModel.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({**meta, "categorical": [False] * 5}))
    with pytest.raises(ModelFolderError, match="model.cbm"):  # 3 features, not 5
        ClassicModel.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    (tmp_path / catboost_model.MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(ModelFolderError, match="model.cbm"):
        ClassicModel.load(tmp_path)
    (tmp_path / catboost_model.MODEL_FILE).unlink()
    with pytest.raises(ModelFolderError, match="model.cbm"):
        ClassicModel.load(tmp_path)


def test_a_constant_target_gets_the_constant_and_saves(tmp_path):
    """CatBoost refuses a target of one value (a fold of a mostly-zero amount): the
    candidate predicts the constant instead, and saves and loads it."""
    X, _ = _table(50)
    model = ClassicModel("catboost", "regression", 1, categorical=CATEGORICAL, seed=0)
    model.fit(X, np.full(50, 2.5))
    np.testing.assert_allclose(model.predict_outputs(X), 2.5)
    loaded = ClassicModel.load(model.save(tmp_path))
    np.testing.assert_allclose(loaded.predict_outputs(X), 2.5)


def test_a_model_whose_categories_or_outputs_differ_from_model_json_is_refused(tmp_path):
    X, y = _table(200)
    model = ClassicModel("catboost", "binary", 2, categorical=CATEGORICAL, seed=0).fit(X, y)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "categorical": [False] * 3}))
    with pytest.raises(ModelFolderError, match="model.cbm"):
        ClassicModel.load(tmp_path)
    multi = ClassicModel("catboost", "multiclass", 3, categorical=CATEGORICAL, seed=0)
    multi.fit(X, y + (X[:, 1] > 0.5)).save(tmp_path)  # three outputs where two are declared
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match="model.cbm"):
        ClassicModel.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({**meta, "problem_type": "multilabel"}))
    with pytest.raises(ModelFolderError, match="model.json"):
        ClassicModel.load(tmp_path)
