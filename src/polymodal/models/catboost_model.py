"""The ``"catboost"`` classic candidate: a CatBoost model over flat features.

CatBoost (Prokhorenkova et al. 2018, "CatBoost: unbiased boosting with categorical
features") grows symmetric (oblivious) trees with ordered boosting, which overfit less
than leaf-wise trees on tables of a few hundred rows, and encodes each category column by
ordered target statistics (plus their combinations) instead of one split per code. With
its defaults it is the strongest single contender on the tabular suite's small and messy
tables (bench/RESULTS.md, 'tabular_suite'), so the predictor fits it nearly as it is:
:data:`MAX_ROUNDS` rounds at the learning rate CatBoost chooses for the table's size and
round count, depth 6. The category-code columns of the flat features are handed to it as
categories (integer codes), the rest as numbers (NaN: missing).

Fitting is seeded and deterministic for a fixed thread count. CatBoost's learning rate
is chosen for the number of rounds, so a model cut short by a deadline would be one
tuned for 1000 rounds that trained a few: under a deadline, a first fit of
:data:`PROBE_ROUNDS` rounds is timed and the rounds are planned to end by the deadline
(at most :data:`MAX_ROUNDS`), then the model trains those at the rate CatBoost chooses
for them. The deadline still stops adding rounds once passed (the first
:data:`ROUND_CHUNK` always train). A refit (``max_rounds``) trains exactly that many rounds on every row given.

The model is saved in CatBoost's own binary model format (``.cbm``, FlatBuffers), which
loads as data: no pickle, nothing that can name code.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from polymodal.errors import ModelFolderError

# CatBoost's default is 1000; at 300, with the faster rate CatBoost picks for them, it
# scores about as well on the tabular suite's tables in 0.3x the time, which pays for the
# cross-validation that judges it (bench/RESULTS.md, 'tabular_suite').
MAX_ROUNDS = 300
ROUND_CHUNK = 10  # rounds a deadline cannot cut (also the cost probe's smallest model)
PROBE_ROUNDS = 20  # the timed first fit that plans the rounds under a deadline
PLAN_SHARE = 0.8  # of the seconds left after the probe: a margin for a busy CPU
MODEL_FILE = "model.cbm"
CBM_MAGIC = b"CBM1"  # the first bytes of CatBoost's binary model format
_LOSS = {"binary": "Logloss", "multiclass": "MultiClass", "regression": "RMSE"}


def is_model_file(path: Path) -> bool:
    """Whether ``path`` starts as CatBoost's binary model format does (its first 4 bytes)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(CBM_MAGIC)) == CBM_MAGIC
    except OSError:
        return False


def _pool(X: np.ndarray, categorical: list[bool], label: np.ndarray | None = None):
    """A CatBoost Pool: category-code columns as integers, the rest as float32."""
    import pandas as pd
    from catboost import Pool

    columns = [i for i, is_cat in enumerate(categorical) if is_cat] \
        if len(categorical) == X.shape[1] else []
    if not columns:
        return Pool(np.ascontiguousarray(X, dtype=np.float32), label=label)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    for i in columns:  # codes are never NaN (0 unknown, 1 missing); guard anyway
        frame[f"f{i}"] = np.nan_to_num(X[:, i], nan=1.0).astype(np.int64)
    return Pool(frame, label=label, cat_features=columns)


class _Ticks:
    """A CatBoost callback that notes when each round ends."""

    def __init__(self):
        self.times: list[float] = []

    def after_iteration(self, info) -> bool:
        self.times.append(time.perf_counter())
        return True


def _quiet() -> dict:
    """CatBoost writes warnings (a class absent from a fold) past ``logging_level``: to a sink."""
    sink = io.StringIO()
    return {"log_cout": sink, "log_cerr": sink}


def fit_model(X: np.ndarray, y: np.ndarray, categorical: list[bool], problem_type: str,
              n_outputs: int, *, seed: int, threads: int, deadline: float | None,
              max_rounds: int | None) -> tuple[object, bool]:
    """A CatBoost model fitted on ``X`` (N, F) float32 and ``y`` (class indices or
    standardised values), and whether it trained all the rounds it planned (False: the
    deadline cut it)."""
    from catboost import CatBoost

    loss = _LOSS.get(problem_type)
    if loss is None:
        raise ValueError(f"catboost does not fit {problem_type!r} problems")
    params = {"loss_function": loss, "random_seed": int(seed),
              "thread_count": max(1, int(threads)), "allow_writing_files": False,
              "logging_level": "Silent"}
    if problem_type == "multiclass":
        params["class_names"] = list(range(int(n_outputs)))  # every class, seen or not
    label = np.asarray(y).reshape(-1)
    label = label.astype(np.float64) if problem_type == "regression" else label.astype(np.int64)
    pool = _pool(np.asarray(X, dtype=np.float32), categorical, label)
    rounds_planned = int(max_rounds or MAX_ROUNDS)
    state = {"cut": False}
    if max_rounds is None and deadline is not None:
        affordable = 0.0  # a deadline already passed: the first chunk, without a timing
        if time.perf_counter() < deadline:
            start = time.perf_counter()
            ticks = _Ticks()
            CatBoost({**params, "iterations": PROBE_ROUNDS}).fit(pool, callbacks=[ticks],
                                                                 **_quiet())
            # Per round from the rounds' own times; the set-up (quantising, category
            # statistics) is paid once more by the real fit.
            per_round = (ticks.times[-1] - ticks.times[0]) / max(1, len(ticks.times) - 1)
            setup = ticks.times[0] - start
            left = deadline - time.perf_counter() - setup
            affordable = PLAN_SHARE * left / max(per_round, 1e-6)
        if affordable < rounds_planned:
            rounds_planned = max(ROUND_CHUNK, int(affordable))
            state["cut"] = True
    params["iterations"] = rounds_planned

    class StopAtDeadline:
        def after_iteration(self, info) -> bool:
            if (deadline is not None and info.iteration >= ROUND_CHUNK
                    and time.perf_counter() >= deadline):
                state["cut"] = True
                return False
            return True

    model = CatBoost(params)
    model.fit(pool, callbacks=[StopAtDeadline()] if deadline is not None else None, **_quiet())
    return model, not state["cut"]


def predict_model(model, X: np.ndarray, categorical: list[bool], problem_type: str,
                  n_outputs: int, *, threads: int) -> np.ndarray:
    """Probabilities (N, K) for binary/multiclass, standardised values (N,) for regression."""
    if len(X) == 0:
        return np.zeros((0,) if problem_type == "regression" else (0, n_outputs))
    pool = _pool(np.asarray(X, dtype=np.float32), categorical)
    if problem_type == "regression":
        raw = model.predict(pool, prediction_type="RawFormulaVal", thread_count=max(1, threads))
        return np.asarray(raw, dtype=np.float64).reshape(-1)
    proba = np.asarray(model.predict(pool, prediction_type="Probability",
                                     thread_count=max(1, threads)), dtype=np.float64)
    return proba.reshape(len(X), n_outputs)  # (N, K)


def rounds(model) -> int:
    """Trees in a model."""
    return int(model.tree_count_)


def write_model(model, directory: Path) -> None:
    model.save_model(str(directory / MODEL_FILE), format="cbm")


def read_model(directory: Path, problem_type: str, n_outputs: int, categorical: list[bool]):
    """The model saved by :func:`write_model`, checked against what model.json declares:
    its loss, its features and which are categories, and the shape of its outputs (one
    row of zeros predicted)."""
    from catboost import CatBoost, CatBoostError

    path = directory / MODEL_FILE
    if not path.is_file():
        raise ModelFolderError(f"{path} is missing; the model folder is incomplete — save the "
                               "predictor again")
    categories = [i for i, is_cat in enumerate(categorical) if is_cat]
    try:
        if not is_model_file(path):
            raise ValueError("not a CatBoost binary model")
        model = CatBoost().load_model(str(path), format="cbm")
        loss = str(model.get_all_params().get("loss_function", "")).split(":")[0]
        features = len(model.feature_names_ or [])
        model_categories = sorted(model.get_cat_feature_indices())
        # No flags in model.json (a ClassicModel built without them): every column a number.
        flags = categorical if categorical else [False] * features
        shape = None
        if features == len(flags) and model_categories == categories:
            shape = predict_model(model, np.zeros((1, features), np.float32), flags,
                                  problem_type, n_outputs, threads=1).shape
    except (CatBoostError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{path} is not a readable CatBoost model ({exc}); save the "
                               "predictor again") from None
    expected = (1,) if problem_type == "regression" else (1, n_outputs)
    if loss != _LOSS.get(problem_type) or shape != expected:
        raise ModelFolderError(f"{path} does not hold the {problem_type} CatBoost model its "
                               f"model.json declares (loss {loss!r}, {features} features, "
                               f"categories at {model_categories}); save the predictor again")
    return model
