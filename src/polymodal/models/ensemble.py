"""Greedy ensemble selection over candidate models' validation outputs.

Caruana, Niculescu-Mizil, Crew & Ksikes 2004, "Ensemble Selection from Libraries of
Models" (ICML), Sec. 2: start from the empty ensemble and, for a fixed number of rounds,
add (with replacement) the model whose addition gives the best validation score of the
averaged outputs. Selecting with replacement makes the counts weights; initialising with
the best single model (their Sec. 2.1 "sorted ensemble initialisation", with N = 1) keeps
the ensemble from starting on a poor model. This is the weighted ensemble AutoGluon fits.

Outputs are the predictor's convention (see :mod:`polymodal.models.classic`): class or tag
probabilities (N, K), or regression values (N,); a weighted mean of either is again one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from polymodal.errors import ConfigError


def blend(outputs: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the models' outputs (weights need not sum to 1)."""
    total = float(sum(weights.values()))
    if total <= 0:
        raise ConfigError(f"ensemble weights must have a positive sum, got {dict(weights)}")
    names = [name for name, w in weights.items() if w > 0]
    missing = [name for name in names if name not in outputs]
    if missing:
        raise ConfigError(f"ensemble members {missing} have no outputs; have {sorted(outputs)}")
    mixed = sum(np.asarray(outputs[name], dtype=np.float64) * (weights[name] / total) for name in names)
    return np.asarray(mixed)


def ensemble_selection(
    outputs: Mapping[str, np.ndarray],
    score: Callable[[np.ndarray], float],
    *,
    mode: str = "max",
    num_rounds: int = 25,
    tolerance: float = 0.0,
) -> dict[str, float]:
    """Caruana's greedy selection with replacement; returns ``{model: weight}`` summing to 1.

    Args:
        outputs: each candidate's validation outputs, all the same shape.
        score: validation metric of a blended output (e.g. accuracy of the probabilities).
        mode: ``"max"`` when a larger score is better, ``"min"`` otherwise.
        num_rounds: models added in all (the resolution of the weights is ``1 / num_rounds``).
        tolerance: how far from the best single model's score another model may be and
            still count as indistinguishable from it (e.g. one validation row's worth of
            accuracy, ``1 / n``).

    A tie (common with accuracy on a small validation set) goes, among the models that
    score on their own within ``tolerance`` of the best one, to the one picked least so
    far: the validation cannot tell them apart, and their average varies less than any one of them
    (on speakers never heard in training it did better than each, bench/RESULTS.md,
    audio_speakers). Otherwise it goes to the model that scores best on its own, then to
    the one listed first, so a weaker model is not added for free and the result is
    deterministic.
    """
    if mode not in ("max", "min"):
        raise ConfigError(f"mode={mode!r}: use 'max' or 'min'")
    if not outputs:
        raise ConfigError("ensemble_selection needs at least one model's outputs")
    if not isinstance(num_rounds, int) or num_rounds < 1:
        raise ConfigError(f"num_rounds={num_rounds!r} must be a positive integer")
    names = list(outputs)
    values = {name: np.asarray(outputs[name], dtype=np.float64) for name in names}
    shapes = {name: v.shape for name, v in values.items()}
    if len(set(shapes.values())) != 1:
        raise ConfigError(f"every model's outputs must have the same shape; got {shapes}")

    def better(a: float, b: float) -> bool:
        if np.isnan(b):  # a NaN score (an undefined metric) loses to any number
            return not np.isnan(a)
        return a > b if mode == "max" else a < b

    alone = {name: float(score(values[name])) for name in names}
    ranked = sorted(names, key=lambda n: (np.isnan(alone[n]),
                                          -alone[n] if mode == "max" else alone[n]))
    names = ranked  # sorted() is stable: equal scores keep the given order
    top = {name for name in names  # the models the validation cannot tell from the best
           if abs(alone[name] - alone[names[0]]) <= tolerance + 1e-12}
    counts = dict.fromkeys(names, 0)
    running = np.zeros_like(values[names[0]])  # sum of the selected models' outputs
    for round_index in range(num_rounds):
        best_name, best_score = None, None
        for name in names:
            candidate = (running + values[name]) / (round_index + 1)
            value = float(score(candidate))
            if best_score is None or better(value, best_score):
                best_name, best_score = name, value
            elif (value == best_score and name in top and best_name in top
                  and counts[name] < counts[best_name]):
                best_name = name
        counts[best_name] += 1
        running += values[best_name]
    return {name: count / num_rounds for name, count in counts.items() if count}
