"""The fit's data steps (api/fit_data.py) that decide something from the time budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.api.fit_data import budget_text_encoder
from polymodal.data.schema import infer_schema
from polymodal.data.text import minilm_available
from polymodal.train.budget import TimeBudget

pytestmark = pytest.mark.skipif(not minilm_available(), reason="MiniLM is not installed")


@pytest.fixture()
def texts(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))  # nothing cached yet
    rng = np.random.default_rng(0)
    words = np.array(["river", "stone", "cloud", "paper", "tiger", "lemon", "piano", "glass"])
    df = pd.DataFrame({"note": [" ".join(rng.choice(words, 6)) + f" number {i}" for i in range(3000)],
                       "y": rng.integers(0, 2, 3000)})
    return df, infer_schema(df, label="y", overrides={"note": "text"})


def test_auto_text_falls_back_to_ngrams_when_minilm_would_not_fit_the_budget(texts):
    df, schema = texts
    said = []
    # 3,000 new texts cannot be embedded by MiniLM in a quarter of 0.5 s on any CPU.
    kind = budget_text_encoder("auto", schema, df, TimeBudget(0.5), said.append)
    assert kind == "hashed" and len(said) == 1  # and it is said once


def test_an_explicit_choice_or_no_limit_keeps_the_text_encoder(texts):
    df, schema = texts
    said = []
    assert budget_text_encoder("minilm", schema, df, TimeBudget(0.5), said.append) == "minilm"
    assert budget_text_encoder("auto", schema, df, TimeBudget(None), said.append) == "auto"
    assert said == []
