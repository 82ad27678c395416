"""Models trained on a GPU load and run on the CPU (skipped without a CUDA device).

Bounded by the fast preset's epochs, not seconds. GPU and CPU arithmetic differ in the last
bits (TF32 convolutions, other kernels), so outputs are compared within a tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal import datasets
from polymodal.api import Generator, Predictor

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _table(n: int = 64, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(2 * x1 + 2 * (color == "red") > 0.5, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "label": label})


def test_a_predictor_trained_on_cuda_predicts_the_same_on_the_cpu(tmp_path):
    table = _table()
    predictor = Predictor("label", text_encoder="hashed", verbosity=0, device="cuda").fit(table)
    network = predictor.candidates_["neural"].model_
    assert next(network.parameters()).device.type == "cuda"
    on_gpu = predictor.predict_proba(table)
    predictor.save(tmp_path / "model")
    loaded = Predictor.load(tmp_path / "model", device="cpu")
    on_cpu = loaded.predict_proba(table)
    np.testing.assert_allclose(on_cpu, on_gpu, atol=1e-3)
    assert (loaded.predict(table) == predictor.predict(table)).mean() >= 0.95


def test_a_generator_trained_on_cuda_samples_alike_on_the_cpu(tmp_path):
    digits = datasets.load("digits", split=True, seed=0)[0].head(64)
    generator = Generator(condition=["label"], text_encoder="hashed", batch_size=16,
                          num_steps=4, verbosity=0, device="cuda").fit(digits)
    assert next(generator.network_.parameters()).device.type == "cuda"
    on_gpu = generator.sample(8, conditions={"label": [0, 1]}, seed=3)
    generator.save(tmp_path / "model")
    loaded = Generator.load(tmp_path / "model", device="cpu")
    on_cpu = loaded.sample(8, conditions={"label": [0, 1]}, seed=3)
    assert next(loaded.network_.parameters()).device.type == "cpu"
    assert np.abs(on_cpu.astype(int) - on_gpu.astype(int)).mean() < 2.0
