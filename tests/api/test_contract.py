"""The estimator contract, run over every registered estimator.

``Predictor`` (a small tabular table), ``Generator`` (32 digits, 8x8) and each classic
candidate kind (``ClassicModel``): ``fit`` returns the estimator; save -> load gives
identical outputs; the same seed twice gives identical outputs; using it before ``fit``
raises; and, for the two public estimators, the constructor parameters round-trip,
``sklearn.base.clone`` works and the saved recipe reloads equal.

Every fit is bounded by epochs (``time_limit=None``: the fast preset's epochs), never by
seconds, so the outputs compared here do not depend on the machine's speed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal import datasets
from polymodal.api import Generator, Predictor
from polymodal.errors import ConfigError, ModelFolderError, NotFittedError
from polymodal.models.classic import CLASSIC_KINDS, ClassicModel, supports

pytestmark = pytest.mark.usefixtures("one_thread")


def _table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Two numbers and a category; the label follows x1 and the colour."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(2 * x1 + 2 * (color == "red") > 0.5, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "label": label})


def _flat(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flat features (n, 3) float32 and binary class indices (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


class PredictorCase:
    name = "predictor"
    error = NotFittedError

    def __init__(self):
        self.table = _table()

    def make(self, seed: int = 0) -> Predictor:
        return Predictor("label", preset="fast", text_encoder="hashed", time_limit=None,
                         seed=seed, verbosity=0)

    def fit(self, estimator):
        return estimator.fit(self.table)

    def outputs(self, estimator) -> np.ndarray:
        return estimator.predict_proba(self.table)

    def save(self, estimator, folder):
        estimator.save(folder)

    def load(self, folder):
        return Predictor.load(folder)


class GeneratorCase:
    name = "generator"
    error = NotFittedError

    def __init__(self):
        self.table = datasets.load("digits", split=True, seed=0)[0].head(32)

    def make(self, seed: int = 0) -> Generator:
        # 32 rows, batch 16: 2 steps per epoch, the fast preset's epochs.
        return Generator(condition=["label"], text_encoder="hashed", time_limit=None,
                         batch_size=16, num_steps=2, seed=seed, verbosity=0)

    def fit(self, estimator):
        return estimator.fit(self.table)

    def outputs(self, estimator) -> np.ndarray:
        return estimator.sample(4, conditions={"label": [0, 1, 2, 3]}, seed=7)

    def save(self, estimator, folder):
        estimator.save(folder)

    def load(self, folder):
        return Generator.load(folder)


class ClassicCase:
    # Today an unfitted ClassicModel raises ModelFolderError ("has no fitted estimator"),
    # not NotFittedError; this records current behaviour.
    error = ModelFolderError

    def __init__(self, kind: str):
        self.kind, self.name = kind, f"classic-{kind}"
        self.x, self.y = _flat()

    def make(self, seed: int = 0) -> ClassicModel:
        return ClassicModel(self.kind, "binary", 2, seed=seed)

    def fit(self, estimator):
        return estimator.fit(self.x, self.y)

    def outputs(self, estimator) -> np.ndarray:
        return estimator.predict_outputs(self.x)

    def save(self, estimator, folder):
        estimator.save(folder)

    def load(self, folder):
        return ClassicModel.load(folder)


CASES = ["predictor", "generator", *(f"classic-{k}" for k in CLASSIC_KINDS
                                     if supports(k, "binary"))]


@pytest.fixture(scope="module")
def fitted(one_thread) -> dict:
    """name -> (case, fitted estimator, the value fit returned); each fitted once."""
    done = {}

    def get(name: str):
        if name not in done:
            case = (PredictorCase() if name == "predictor" else GeneratorCase()
                    if name == "generator" else ClassicCase(name.removeprefix("classic-")))
            estimator = case.make(seed=0)
            done[name] = (case, estimator, case.fit(estimator))
        return done[name]
    return get


@pytest.mark.parametrize("name", CASES)
def test_fit_returns_self(fitted, name):
    _, estimator, returned = fitted(name)
    assert returned is estimator


@pytest.mark.parametrize("name", CASES)
def test_save_then_load_gives_identical_outputs(fitted, name, tmp_path):
    case, estimator, _ = fitted(name)
    case.save(estimator, tmp_path / "model")
    loaded = case.load(tmp_path / "model")
    assert type(loaded) is type(estimator)
    np.testing.assert_array_equal(case.outputs(loaded), case.outputs(estimator))


@pytest.mark.parametrize("name", CASES)
def test_same_seed_gives_identical_outputs(fitted, name):
    case, estimator, _ = fitted(name)
    again = case.fit(case.make(seed=0))
    np.testing.assert_array_equal(case.outputs(again), case.outputs(estimator))


@pytest.mark.parametrize("name", CASES)
def test_use_before_fit_raises(fitted, name):
    case, _, _ = fitted(name)
    with pytest.raises(case.error):
        case.outputs(case.make())


@pytest.mark.parametrize("name", ["predictor", "generator"])
def test_the_saved_recipe_reloads_equal_and_is_what_resolving_gives(fitted, name, tmp_path):
    case, estimator, _ = fitted(name)
    case.save(estimator, tmp_path / "model")
    loaded = case.load(tmp_path / "model")
    assert loaded.recipe_ is not None and loaded.recipe_ == estimator.recipe_
    loaded.recipe_.validate()


@pytest.mark.parametrize("name", ["predictor", "generator"])
def test_get_params_round_trip(fitted, name):
    case, _, _ = fitted(name)
    estimator = case.make(seed=3)
    params = estimator.get_params()
    rebuilt = type(estimator)(**params)
    assert rebuilt.get_params() == params
    assert params["seed"] == 3


@pytest.mark.parametrize("name", ["predictor", "generator"])
def test_set_params_and_sklearn_clone(fitted, name):
    from sklearn.base import clone

    case, _, _ = fitted(name)
    estimator = case.make(seed=3)
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params() == estimator.get_params()
    assert estimator.set_params(seed=5) is estimator and estimator.get_params()["seed"] == 5
    with pytest.raises(ConfigError, match="unknown parameter.*'sead'"):
        estimator.set_params(sead=1)


@pytest.mark.parametrize("name", ["predictor", "generator"])
def test_device_is_a_runtime_choice_the_folder_does_not_keep(fitted, name, tmp_path):
    case, estimator, _ = fitted(name)
    case.save(estimator, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert "device" not in config["params"]
    cls = type(estimator)
    assert cls.load(tmp_path / "model").device == "auto"
    on_cpu = cls.load(tmp_path / "model", device="cpu")
    assert on_cpu.device == "cpu"
    trained_on = estimator.device
    try:  # the fitted estimator moves to the CPU too: the same weights, the same outputs
        np.testing.assert_array_equal(case.outputs(on_cpu),
                                      case.outputs(estimator.set_params(device="cpu")))
    finally:
        estimator.set_params(device=trained_on)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("name", ["predictor", "generator"])
def test_an_absent_gpu_is_refused_before_any_work(fitted, name, tmp_path):
    case, estimator, _ = fitted(name)
    case.save(estimator, tmp_path / "model")
    with pytest.raises(ConfigError, match="device='cuda'"):
        type(estimator).load(tmp_path / "model", device="cuda")
    with pytest.raises(ConfigError, match="device='cuda'"):
        case.fit(case.make().set_params(device="cuda"))
