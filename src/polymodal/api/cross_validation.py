"""Small tables: the candidates judged by repeated k-fold cross-validation.

One validation split of a few dozen rows is a noisy judge (issue 18: a 53-row split chose
a model 6 points worse on test than its score said). When the table is small and the
budget left after the candidates pays for it, :func:`cross_validate` refits each classic
candidate (same size as on the split) and, on tables without images or audio, the
network (for the steps at which it scored best, :mod:`polymodal.api.network_folds`) on
every fold of ``repeats`` seeded k-fold partitions of all labelled rows — when the time
pays for fewer, the best of them on the hold-out split (:func:`plan_models`) — and keeps
their out-of-fold (OOF) outputs, averaged over the repeats. :func:`choose_on_oof` then
runs greedy ensemble selection on those OOF outputs and chooses, on the OOF score, among
the members and the ensemble — so the choice is never worse than its best member on the
rows it was judged on. The chosen classic models are then refitted on every labelled row
(the fit's step 7); the network keeps the weights the fit trained. Fold models are not
bagged: a refit on all rows keeps prediction as cheap as one model. A model left out of
the folds keeps its hold-out score and is not chosen in this mode.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np
import pandas as pd

from polymodal.api import network_folds
from polymodal.api.candidates import NEURAL
from polymodal.api.network_folds import FoldFit
from polymodal.evaluate.scoring import primary_metric
from polymodal.models.classic import ClassicModel
from polymodal.models.ensemble import blend, ensemble_selection

ENSEMBLE = "ensemble"
CV_MAX_ROWS = 5_000  # "auto" cross-validates tables with at most this many labelled rows
AUTO_FOLDS = 5
# "auto" falls back to this many folds when not one repeat of AUTO_FOLDS is affordable:
# a k-fold repeat costs k - 1 fits on all rows, so 3 folds cost half of 5, and an
# out-of-fold judge on every row still beats one small split (bench/RESULTS.md,
# 'tabular_suite').
FALLBACK_FOLDS = 3
MAX_AUTO_REPEATS = 5  # repeats "auto" buys at most ...
UNLIMITED_REPEATS = 1  # ... and what it takes without a time limit (the standard k-fold)
CV_SHARE = 0.8  # share of the seconds left the cross-validation may plan to use (each fold fit
# also waits for its expected time to be left, so a long plan stops at the limit)
COST_MARGIN = 1.5  # a fold fit starts when this many times its expected seconds are left


@dataclasses.dataclass(frozen=True)
class CvPlan:
    """``folds`` x ``repeats`` partitions of the labelled rows."""

    folds: int
    repeats: int

    @property
    def judged(self) -> str:
        """How the candidates were judged, as the leaderboard says it."""
        return f"{self.folds}-fold x{self.repeats} out-of-fold"


def plan(candidates, num_rows: int, fit_s: float, num_train_rows: int,
         left_s: float) -> CvPlan | None:
    """The cross-validation the recipe's ``candidates.cv_folds``/``cv_repeats`` ask for on
    ``num_rows`` labelled rows, given the classic candidates' ``fit_s`` seconds on the
    ``num_train_rows`` training rows and ``left_s`` seconds left; ``None``: none."""
    asked, repeats = candidates.cv_folds, candidates.cv_repeats
    if asked == 0 or (asked == "auto" and num_rows > CV_MAX_ROWS):
        return None
    affordable = 0
    for folds in (AUTO_FOLDS, FALLBACK_FOLDS) if asked == "auto" else (int(asked),):
        if num_rows < 2 * folds:
            continue
        affordable = _affordable_repeats(folds, num_rows, fit_s, num_train_rows, left_s)
        if affordable >= 1:
            break
    if repeats == "auto":
        repeats = UNLIMITED_REPEATS if math.isinf(affordable) else min(MAX_AUTO_REPEATS,
                                                                        affordable)
    else:
        repeats = min(int(repeats), affordable)  # never past the limit, even when asked
    return CvPlan(folds, int(repeats)) if repeats >= 1 else None


def plan_models(candidates, scores: dict[str, float], fit_s: dict[str, float], *, mode: str,
                num_rows: int, num_train_rows: int, left_s: float
                ) -> tuple[CvPlan | None, list[str]]:
    """The cross-validation :func:`plan` and the models it judges, best on the hold-out
    split first (``scores``, better by ``mode``): all of them when it pays for them, else
    as many as it pays for — at least two, so there is an ensemble to choose among. The
    slowest candidate alone could otherwise rule the folds out for all, and the choice
    fall back to one small split (bench/RESULTS.md, 'tabular_suite')."""
    def rank(name: str) -> tuple[bool, float]:
        value = scores[name]
        return math.isnan(value), -value if mode == "max" else value

    order = sorted(scores, key=rank)  # stable: ties keep the candidates' order
    for count in [len(order), *range(len(order) - 1, 1, -1)]:
        names = order[:count]
        cv = plan(candidates, num_rows, sum(fit_s[n] for n in names), num_train_rows, left_s)
        if cv is not None:
            return cv, names
    return None, []


def _affordable_repeats(folds: int, num_rows: int, fit_s: float, num_train_rows: int,
                        left_s: float) -> float:
    """Repeats of ``folds``-fold cross-validation that ``CV_SHARE`` of the ``left_s``
    seconds pays for at the candidates' measured pace (:func:`cross_validate`'s margin
    guards each fold fit; a margin here too left seconds unused, bench/RESULTS.md,
    'tabular_suite')."""
    per_repeat_s = fit_s * folds * (num_rows * (folds - 1) / folds) / max(1, num_train_rows)
    if math.isinf(left_s):
        return math.inf
    affordable = math.floor(CV_SHARE * max(0.0, left_s) / max(per_repeat_s, 1e-9))
    if affordable == 0 and per_repeat_s <= max(0.0, left_s):
        # Beyond the share, but the seconds would otherwise go unused; the models that
        # finish their folds before the guard stops the rest are still judged.
        affordable = 1
    return affordable


def _splits(y: np.ndarray, problem_type: str, folds: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    # Stratifying needs a class with at least ``folds`` rows (scikit-learn refuses
    # otherwise); a label of many one- or two-row classes folds unstratified.
    classes = problem_type in ("binary", "multiclass")
    if classes and np.unique(y, return_counts=True)[1].max() >= folds:
        with warnings.catch_warnings():  # a class rarer than the folds: stratified as can be
            warnings.simplefilter("ignore", UserWarning)
            return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y))
    return list(KFold(folds, shuffle=True, random_state=seed).split(y))


def classic_fold_fit(model: ClassicModel, x: np.ndarray, y: np.ndarray) -> FoldFit:
    """A classic model's fold fit on the flat features ``x`` and targets ``y``: refitted
    like ``model`` (its trees, iterations) on the fold's training rows."""
    return lambda train, test: model.refit_like(x[train], y[train]).predict_outputs(x[test])


def cross_validate(fold_fits: dict[str, FoldFit], y: np.ndarray, cv: CvPlan, *,
                   problem_type: str, seed: int, budget,
                   expected_s: dict[str, float] | None = None) -> tuple[dict, dict]:
    """The OOF outputs on the rows of ``y`` of each model that finished a repeat within the
    budget, averaged over its finished repeats, and how many each finished.
    ``fold_fits[name](train_rows, test_rows)`` fits a model on a fold and returns the
    held-out rows' outputs; within a repeat the models take their folds one model after
    another, in ``fold_fits``' order, so a budget that runs out mid-repeat leaves the
    models before it judged. A fold fit starts only when the time it is expected to take
    (its previous fold's, at first ``expected_s[name]``, with a margin) is left of
    ``budget``."""
    expected = dict(expected_s or {})
    sums: dict = {}
    repeats = {name: 0 for name in fold_fits}
    for repeat in range(cv.repeats):
        folds = _splits(y, problem_type, cv.folds, seed + repeat)
        for name, fit in fold_fits.items():
            oof = None
            for train_rows, test_rows in folds:
                if budget.left_s() < COST_MARGIN * expected.get(name, 0.0):
                    return _mean(sums, repeats), {n: r for n, r in repeats.items() if r}
                start = time.perf_counter()
                out = fit(train_rows, test_rows)
                expected[name] = time.perf_counter() - start
                if oof is None:
                    oof = np.zeros((len(y),) + out.shape[1:])
                oof[test_rows] = out
            sums[name] = oof if name not in sums else sums[name] + oof
            repeats[name] += 1
    return _mean(sums, repeats), repeats


def _mean(sums: dict, repeats: dict) -> dict:
    return {name: s / repeats[name] for name, s in sums.items()}


def choose_on_oof(oof: dict, score, *, mode: str, ensemble_rounds: int
                  ) -> tuple[str, dict | None, dict]:
    """(chosen, the ensemble's weights or None when it has one member, OOF score per
    model and the ensemble): greedy
    ensemble selection on the OOF outputs, then the best OOF score wins, ties going to
    the single model listed first (the cheaper)."""
    scores = {name: float(score(out)) for name, out in oof.items()}
    weights = None
    if len(oof) > 1:
        found = ensemble_selection(oof, score, mode=mode, num_rounds=ensemble_rounds)
        if len(found) > 1:
            weights, scores[ENSEMBLE] = found, float(score(blend(oof, found)))
    sign = -1.0 if mode == "max" else 1.0
    chosen = min(scores, key=lambda n: math.inf if not math.isfinite(scores[n])
                 else sign * scores[n])
    return chosen, weights, scores


def select(p, run, flat) -> None:
    """The Predictor ``p``'s choice redone on cross-validation when the recipe and the
    budget allow it (sets ``chosen_``, ``ensemble_weights_``, ``val_metric_``,
    ``models_``, ``leaderboard_``, ``cv_``); otherwise the hold-out choice stands and
    ``cv_`` is None."""
    from polymodal.api.candidate_schedule import all_rows, known_rows

    p.cv_ = None
    x_train, y_train, x_val = flat
    models = {name: m for name, m in run.models.items()
              if isinstance(m, ClassicModel) and name not in run.subsampled}
    if x_train is None or not models or run.too_small:
        return
    x_all, y_all = all_rows(run, x_train, y_train, x_val)
    fold_fits = {name: classic_fold_fit(m, x_all, y_all) for name, m in models.items()}
    fit_s = {r["model"]: r["fit_time_s"] for r in run.rows if r["model"] in models}
    network = network_folds.fold_fit(run, known_rows(run), share=CV_SHARE)
    if network is not None:
        fold_fits[NEURAL], fit_s[NEURAL] = network
    val_scores = {r["model"]: r[f"val_{run.metric}"] for r in run.rows if r["model"] in fit_s}
    cv, names = plan_models(run.recipe.candidates, val_scores, fit_s,
                            mode=run.mode, num_rows=len(x_all), num_train_rows=len(x_train),
                            left_s=run.budget.left_s())
    if cv is None:
        return
    if len(names) < len(fold_fits):
        run.say(f"  cross-validating the {len(names)} best of {len(fold_fits)} models on "
                f"the hold-out split ({', '.join(names)}): the time left pays for no more")
    order = list(fold_fits)
    fold_fits = {name: fold_fits[name] for name in names}  # best on the hold-out split first
    start = time.perf_counter()
    fold_rows = len(x_all) * (cv.folds - 1) / cv.folds / len(x_train)
    oof, repeats = cross_validate(fold_fits, y_all, cv, problem_type=run.problem_type,
                                  seed=run.seed, budget=run.budget,
                                  expected_s={n: fit_s[n] * fold_rows for n in fold_fits})
    if len(oof) < min(2, len(fold_fits)):  # nothing judged, or one model against none
        spent = time.perf_counter() - start
        run.log.append({"event": "cross_validation_stopped", "time_s": spent,
                        "models": list(oof)})
        run.say(f"  {cv.folds}-fold cross-validation stopped after {spent:.1f} s with "
                f"{len(oof)} model judged: the fold fits were slower than planned; the "
                "hold-out choice stands")
        return
    if len(oof) < len(fold_fits):
        left_out = ", ".join(name for name in fold_fits if name not in oof)
        run.say(f"  the time ran out for the folds of {left_out}: judged on the hold-out split")
    oof = {name: oof[name] for name in order if name in oof}  # ties go to the cheaper
    cv = CvPlan(cv.folds, min(repeats.values()))
    y_true = _metric_targets(y_all, run.problem_type, run.transform)

    def score(outputs: np.ndarray) -> float:
        return primary_metric(run.problem_type, run.transform, y_true, outputs)

    chosen, weights, scores = choose_on_oof(oof, score, mode=run.mode,
                                            ensemble_rounds=run.recipe.candidates.ensemble_rounds)
    weights_used = weights if chosen == ENSEMBLE else None
    needed = set(weights_used or {chosen: 1.0})
    p.chosen_, p.ensemble_weights_, p.val_metric_ = chosen, weights_used, scores[chosen]
    p.models_ = {name: m for name, m in run.models.items() if name in needed}
    p.cv_ = {"folds": cv.folds, "repeats": cv.repeats, "rows": len(y_all),
             "time_s": time.perf_counter() - start}
    val_score = None if weights is None else float(run.score(blend(run.val_outputs, weights)))
    p.leaderboard_ = _leaderboard(p.leaderboard_, scores, chosen, run.metric, cv, repeats,
                                  val_score)
    run.log.append({"event": "cross_validation", **p.cv_, "models": list(oof),
                    "model_repeats": repeats, "chosen": chosen,
                    f"cv_{run.metric}": scores})
    run.say(f"  {cv.judged} on {len(y_all)} rows: chosen {chosen} "
            f"(cv {run.metric} {scores[chosen]:.4f}) in {p.cv_['time_s']:.1f} s")


def _metric_targets(y: np.ndarray, problem_type: str, transform) -> np.ndarray:
    if problem_type == "regression":
        return np.asarray(transform.inverse_label(y))
    return np.asarray(y).astype(np.int64)


def _leaderboard(board: pd.DataFrame, scores: dict, chosen: str, metric: str,
                 cv: CvPlan, repeats: dict, ensemble_val: float | None) -> pd.DataFrame:
    """The hold-out leaderboard with each model's ``cv_<metric>`` and ``judged_on`` (its
    own ``repeats``; the ensemble's, ``cv``'s: its members' fewest); the ensemble's row is
    the out-of-fold one, its ``val_<metric>`` its weights' blend of the members' hold-out
    outputs."""
    board = board.copy()
    if ensemble_val is not None:
        if ENSEMBLE not in set(board["model"]):
            board = pd.concat([board, pd.DataFrame([{"model": ENSEMBLE, "fit_time_s": 0.0,
                                                     "predict_time_s": 0.0, "note": ""}])],
                              ignore_index=True)
        board.loc[board["model"] == ENSEMBLE, f"val_{metric}"] = ensemble_val
    board[f"cv_{metric}"] = [scores.get(m, math.nan) for m in board["model"]]
    board["judged_on"] = [CvPlan(cv.folds, repeats.get(m, cv.repeats)).judged if m in scores
                          else "hold-out (not cross-validated)" for m in board["model"]]
    board["chosen"] = board["model"] == chosen
    return board
