"""The ``"lightgbm"`` classic candidate: a LightGBM booster over flat features.

LightGBM (Ke et al. 2017) is the field's standard gradient-boosting library for tables;
beside scikit-learn's histogram boosting it brings leaf-wise trees and native category
splits: the category-code columns of the flat features (``categorical`` True, however
many categories: names that recur, such as a business, included) are declared
categorical, so a node splits on a set of categories instead of the codes' arbitrary
order, its smoothing (``cat_smooth``, ``min_data_per_group``) guarding rare ones.

Fitting is seeded and deterministic (``deterministic=True``, row-wise histograms, a fixed
thread count), learning rate :data:`LEARNING_RATE`, at most :data:`MAX_ROUNDS` rounds.
A first fit on at least :data:`HOLDOUT_MIN_ROWS` rows holds out a seeded tenth to stop
adding rounds when its loss has not improved for :data:`PATIENCE` rounds; smaller tables
train :data:`SMALL_TABLE_ROUNDS` rounds. A refit (``max_rounds``) trains exactly that many
rounds on every row given. A deadline stops adding rounds once passed (the first
:data:`ROUND_CHUNK` always train).

The booster is saved in LightGBM's own text model format (``model_to_string``), which
loads as data: no pickle, nothing that can name code.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from polymodal.errors import ModelFolderError

LEARNING_RATE = 0.05
MAX_ROUNDS = 1000
SMALL_TABLE_ROUNDS = 200  # below HOLDOUT_MIN_ROWS: too few rows to hold any out
HOLDOUT_MIN_ROWS = 500
HOLDOUT_FRACTION = 0.1
PATIENCE = 50
ROUND_CHUNK = 10  # rounds a deadline cannot cut (also the cost probe's smallest model)
MODEL_TEXT_FILE = "model.txt"
# LightGBM leaves a category with fewer rows than cat_smooth out of its category splits:
# at its default 10, names that recur in 5-10 rows (a business in each of its
# inspections) are never split on.
CAT_SMOOTH = 3


def params(problem_type: str, n_outputs: int, *, seed: int, threads: int) -> dict:
    """LightGBM's training parameters for a problem type (seeded, deterministic, quiet)."""
    objective = {"binary": {"objective": "binary"},
                 "multiclass": {"objective": "multiclass", "num_class": int(n_outputs)},
                 "regression": {"objective": "regression"}}.get(problem_type)
    if objective is None:
        raise ValueError(f"lightgbm does not fit {problem_type!r} problems")
    return {**objective, "learning_rate": LEARNING_RATE, "seed": int(seed),
            "deterministic": True, "force_row_wise": True, "num_threads": max(1, int(threads)),
            "verbose": -1, "min_data_in_leaf": 20, "min_data_per_group": 20, "cat_smooth": CAT_SMOOTH}


def fit_booster(X: np.ndarray, y: np.ndarray, categorical: list[bool], problem_type: str,
                n_outputs: int, *, seed: int, threads: int, deadline: float | None,
                max_rounds: int | None) -> tuple[object, bool]:
    """A booster fitted on ``X`` (N, F) float32 and ``y`` (class indices or standardised
    values), and whether it trained all the rounds it planned (False: the deadline cut it)."""
    import lightgbm as lgb

    cat_columns = [i for i, is_cat in enumerate(categorical) if is_cat] \
        if len(categorical) == X.shape[1] else []
    config = params(problem_type, n_outputs, seed=seed, threads=threads)
    label = np.asarray(y, dtype=np.float64).reshape(-1)
    holdout = None
    if max_rounds is None and len(X) >= HOLDOUT_MIN_ROWS:
        order = np.random.default_rng(seed).permutation(len(X))
        cut = int(round(HOLDOUT_FRACTION * len(X)))
        holdout, kept = np.sort(order[:cut]), np.sort(order[cut:])
        rounds = MAX_ROUNDS
    else:
        kept = np.arange(len(X))
        rounds = max_rounds or SMALL_TABLE_ROUNDS
    train = lgb.Dataset(X[kept], label[kept], categorical_feature=cat_columns,
                        free_raw_data=True, params={"verbose": -1})
    state = {"cut": False}

    def stop_at_deadline(env) -> None:
        if (deadline is not None and env.iteration + 1 >= ROUND_CHUNK
                and time.perf_counter() >= deadline and env.iteration + 1 < env.end_iteration):
            state["cut"] = True
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    callbacks = [stop_at_deadline]
    valid_sets = []
    if holdout is not None:
        valid_sets = [lgb.Dataset(X[holdout], label[holdout], reference=train,
                                  categorical_feature=cat_columns, params={"verbose": -1})]
        callbacks.append(lgb.early_stopping(PATIENCE, first_metric_only=True, verbose=False))
    booster = lgb.train(config, train, num_boost_round=int(rounds), valid_sets=valid_sets,
                        callbacks=callbacks)
    if holdout is not None and booster.best_iteration > 0:
        # Keep the rounds up to the best holdout loss: later ones only overfit.
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return booster, not state["cut"]


def predict_booster(booster, X: np.ndarray, problem_type: str, n_outputs: int, *,
                    threads: int) -> np.ndarray:
    """Probabilities (N, K) for binary/multiclass, standardised values (N,) for regression."""
    raw = np.asarray(booster.predict(X, num_threads=max(1, int(threads))), dtype=np.float64)
    if problem_type == "regression":
        return raw.reshape(-1)
    if problem_type == "binary":
        return np.stack([1.0 - raw, raw], axis=1)  # (N, 2)
    return raw.reshape(len(X), n_outputs)  # (N, K)


def rounds(booster) -> int:
    """Boosting rounds in a booster (per class for multiclass)."""
    return int(booster.current_iteration())


def write_booster(booster, directory: Path) -> None:
    (directory / MODEL_TEXT_FILE).write_text(booster.model_to_string(), encoding="utf-8")


def read_booster(directory: Path, problem_type: str, n_outputs: int, num_features: int):
    """The booster saved by :func:`write_booster`, checked against what model.json declares."""
    import lightgbm as lgb

    path = directory / MODEL_TEXT_FILE
    if not path.is_file():
        raise ModelFolderError(f"{path} is missing; the model folder is incomplete — save the "
                               "predictor again")
    try:
        text = path.read_text(encoding="utf-8")
        header = dict(line.split("=", 1) for line in text.split("\nTree=", 1)[0].splitlines()
                      if "=" in line)
        booster = lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFolderError(f"{path} is not a readable LightGBM model ({exc}); save the "
                               "predictor again") from None
    objective = header.get("objective", "").split(" ")[0]
    expected = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
    classes = booster.num_model_per_iteration()
    if (objective != expected.get(problem_type)
            or classes != (n_outputs if problem_type == "multiclass" else 1)
            or (num_features and booster.num_feature() != num_features)):
        raise ModelFolderError(f"{path} does not hold the {problem_type} LightGBM model its "
                               f"model.json declares (objective {objective!r}, {classes} "
                               f"outputs, {booster.num_feature()} features); save the predictor "
                               "again")
    return booster
