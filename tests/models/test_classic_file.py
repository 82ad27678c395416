"""Classic candidates' files load as data: every kind round-trips through the exact type
list, and anything else — other functions, other shapes, damaged files — is refused."""

from __future__ import annotations

import importlib
import itertools
import json
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from polymodal.errors import ModelFolderError
from polymodal.models.classic import CLASSIC_KINDS, ClassicModel, supports
from polymodal.models.classic_file import (
    SAVED_TYPES,
    file_types,
    read_estimator,
    refused_names,
)

PROBLEMS = {"binary": 2, "multiclass": 3, "regression": 1, "multilabel": 3}


def _data(problem: str, n: int = 80, one_class: bool = False):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 4] = rng.integers(0, 4, n)  # a category-code column
    if problem == "regression":
        return X, X[:, 0] * 2.0
    if problem == "multilabel":
        y = np.stack([X[:, 0] > 0, X[:, 1] > 0, np.zeros(n, bool)], axis=1).astype(np.float32)
        return X, y
    y = (X[:, 0] > 0).astype(np.int64) if problem == "binary" else np.digitize(X[:, 0], [-0.5, 0.5])
    return X, (np.zeros(n, np.int64) if one_class else y)


CASES = [(k, p, False) for k, p in itertools.product(CLASSIC_KINDS, PROBLEMS) if supports(k, p)]
CASES += [(k, "binary", True) for k in CLASSIC_KINDS]  # a one-class target: DummyClassifier


@pytest.mark.parametrize(("kind", "problem", "one_class"), CASES)
def test_every_kind_saves_only_listed_types_and_loads_to_identical_outputs(
        kind, problem, one_class, tmp_path):
    X, y = _data(problem, one_class=one_class)
    model = ClassicModel(kind, problem, PROBLEMS[problem], categorical=[False] * 4 + [True],
                         seed=0).fit(X, y)
    model.save(tmp_path)
    if kind != "lightgbm" and (kind != "catboost" or one_class):  # the boosters' own formats
        assert refused_names(tmp_path / "model.skops") == []
    else:
        assert not (tmp_path / "model.skops").exists()
    loaded = ClassicModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_outputs(X), model.predict_outputs(X))


def test_every_listed_type_exists_in_the_installed_libraries():
    """A renamed private class would otherwise silently refuse every saved model."""
    for name in SAVED_TYPES:
        module, _, attribute = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute), name


def test_a_function_outside_the_list_is_refused_before_anything_is_built(tmp_path):
    path = tmp_path / "model.skops"
    sio.dump(make_pipeline(FunctionTransformer(np.log1p), StandardScaler()), path)
    assert "numpy.log1p" in refused_names(path)
    with pytest.raises(ModelFolderError, match=r"numpy\.log1p"):
        read_estimator(path)


def test_an_unknown_loader_is_refused(tmp_path):
    """A node rebuilt by a loader polymodal never writes (here a bound method) is refused,
    even where its type names alone look harmless."""
    path = tmp_path / "model.skops"
    sio.dump(StandardScaler().fit(np.ones((3, 2))), path)
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    schema = json.loads(files["schema.json"])
    schema["content"]["content"]["extra"] = {"__class__": "dict", "__module__": "builtins",
                                             "__loader__": "MethodNode", "content": {}}
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    assert "loader MethodNode" in refused_names(path)
    with pytest.raises(ModelFolderError, match="MethodNode"):
        read_estimator(path)


def test_a_listed_estimator_in_the_wrong_shape_is_refused(tmp_path):
    """Only listed types, but not what the model.json's kind writes."""
    X, y = _data("binary")
    model = ClassicModel("random_forest", "binary", 2, seed=0).fit(X, y)
    model.save(tmp_path)
    sio.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
             tmp_path / "model.skops")
    with pytest.raises(ModelFolderError, match="random_forest"):
        ClassicModel.load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"{}"])
def test_a_damaged_file_is_one_clear_error(content, tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(content)
    with pytest.raises(ModelFolderError, match="damaged"):
        file_types(path)
    with pytest.raises(ModelFolderError, match="damaged"):
        read_estimator(path)


def test_a_schema_too_large_to_be_ours_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    import polymodal.models.classic_file as classic_file

    path = tmp_path / "model.skops"
    sio.dump(StandardScaler().fit(np.ones((3, 2))), path)
    monkeypatch.setattr(classic_file, "MAX_SCHEMA_BYTES", 10)
    with pytest.raises(ModelFolderError, match="refusing to read it"):
        file_types(path)


@pytest.mark.parametrize("field, value", [("left_child", 1 << 40), ("feature", 1 << 30),
                                          ("right_child", 0)])
def test_a_tree_pointing_outside_itself_is_refused(field, value, tmp_path):
    """scikit-learn's compiled predict reads a tree's indices unchecked (a crafted one crashes
    the process): the loader checks every node first."""
    X, y = _data("binary")
    model = ClassicModel("random_forest", "binary", 2, seed=0).fit(X, y, max_size=10)
    tree = model.estimator_.steps[-1][1].estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][0] = value  # the root: an internal node
    state["nodes"] = nodes
    tree.__setstate__(state)
    model.save(tmp_path)
    with pytest.raises(ModelFolderError, match="malformed tree"):
        ClassicModel.load(tmp_path)


def test_a_boosted_tree_pointing_outside_itself_is_refused(tmp_path):
    X, y = _data("binary")
    model = ClassicModel("hist_gradient_boosting", "binary", 2, seed=0).fit(X, y, max_size=10)
    predictor = model.estimator_._predictors[0][0]
    predictor.nodes["left"][0] = 10_000
    model.save(tmp_path)
    with pytest.raises(ModelFolderError, match="malformed tree"):
        ClassicModel.load(tmp_path)
