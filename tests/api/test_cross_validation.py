"""Cross-validated selection on small tables: when it runs, what it chooses, its budget.

Fits are bounded by epochs and tree counts, never by seconds; the budget test counts
fold fits against a fake clock."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.api import Predictor
from polymodal.api.cross_validation import (
    CV_MAX_ROWS,
    CV_SHARE,
    CvPlan,
    choose_on_oof,
    cross_validate,
    plan,
    plan_models,
)
from polymodal.errors import ConfigError
from polymodal.recipes.predictor import CandidatesRecipe

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"candidates.neural": False, "candidates.classic": ["linear", "random_forest"],
         "candidates.cv_repeats": 2}


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    noisy = 2 * x1 + (color == "red") + 0.7 * rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color,
                         "label": np.where(noisy > 0.3, "yes", "no")})


def test_plan_models_keeps_the_best_on_the_hold_out_that_the_time_pays_for():
    auto = CandidatesRecipe()
    # Higher is better: "slow" is best but costs most; then "a", "b", "c".
    scores = {"c": 0.70, "slow": 0.90, "a": 0.85, "b": 0.80}
    fit_s = {"c": 1.0, "slow": 6.0, "a": 1.0, "b": 1.0}
    cheap = plan_models(auto, scores, fit_s, mode="max", num_rows=300, num_train_rows=240,
                        left_s=1e6)
    assert cheap[1] == ["slow", "a", "b", "c"]  # all of them, best first, when affordable
    # One 3-fold repeat at the fits' pace costs 3 x (200 / 240) = 2.5 x the models' fit
    # seconds: 17.5 s for the best two, 20 s for three.
    tight = plan_models(auto, scores, fit_s, mode="max", num_rows=300, num_train_rows=240,
                        left_s=18.0)
    assert tight == (CvPlan(3, 1), ["slow", "a"])  # "b" and "c" left on their hold-out score
    # Lower is better (an error): the order turns round.
    errors = {"c": 0.70, "slow": 0.20, "a": 0.30, "b": 0.40}
    assert plan_models(auto, errors, fit_s, mode="min", num_rows=300, num_train_rows=240,
                       left_s=18.0)[1] == ["slow", "a"]
    # Never fewer than two (nothing to choose among), and not even those: none.
    assert plan_models(auto, scores, fit_s, mode="max", num_rows=300, num_train_rows=240,
                       left_s=17.0) == (None, [])
    # A single classic model is judged on its own, as before.
    assert plan_models(auto, {"a": 0.8}, {"a": 1.0}, mode="max", num_rows=300,
                       num_train_rows=240, left_s=1e6)[1] == ["a"]


def test_plan_small_table_cross_validated_large_not():
    auto = CandidatesRecipe()
    assert plan(auto, 300, fit_s=0.1, num_train_rows=240, left_s=50.0) == CvPlan(5, 5)
    assert plan(auto, 300, fit_s=0.1, num_train_rows=240, left_s=math.inf) == CvPlan(5, 1)
    assert plan(auto, CV_MAX_ROWS + 1, fit_s=0.1, num_train_rows=4000, left_s=1e6) is None
    assert plan(CandidatesRecipe(cv_folds=0), 300, 0.1, 240, math.inf) is None
    # the budget caps the repeats, even ones asked for; nothing when not one repeat fits
    # (a repeat at the fits' pace: 1 s x 3 folds x 2/3 of the rows = 2 s)
    assert (plan(CandidatesRecipe(cv_folds=3, cv_repeats=10), 300, 1.0, 300, 20.0).repeats
            == math.floor(CV_SHARE * 20.0 / 2.0))
    assert plan(auto, 300, fit_s=10.0, num_train_rows=240, left_s=5.0) is None
    # no repeat of 5 folds (4 s x 5 x 4/5 x 300/240 = 20 s) in 19 s: one of 3 (10 s)
    assert plan(auto, 300, fit_s=4.0, num_train_rows=240, left_s=19.0) == CvPlan(3, 1)
    assert plan(CandidatesRecipe(cv_folds=5), 300, 4.0, 240, 19.0) is None  # as asked, or none
    # 20 s pay for one repeat of 5 at the fits' pace: taken rather than left unused
    assert plan(auto, 300, fit_s=4.0, num_train_rows=240, left_s=20.0) == CvPlan(5, 1)
    assert plan(auto, 8, fit_s=0.1, num_train_rows=6, left_s=50.0).folds == 3  # too few for 5
    # one repeat (1.8 s x 5 folds x 4/5 x 300/240 = 9 s) fits in the 10 s left, if not in
    # its share (8 s)
    assert plan(auto, 300, fit_s=1.8, num_train_rows=240, left_s=10.0) == CvPlan(5, 1)


def test_recipe_fields_validated():
    for bad in ({"candidates.cv_folds": 1}, {"candidates.cv_folds": "many"},
                {"candidates.cv_repeats": 0}):
        with pytest.raises(ConfigError, match="cv_"):
            Predictor("label", recipe=bad, verbosity=0).fit(table(40))


class CountingClock:
    """A budget whose clock advances one second per fold fit."""

    def __init__(self, limit: int):
        self.calls, self.limit = 0, limit

    def left_s(self) -> float:
        return self.limit - self.calls


def constant_fit(value, clock: CountingClock):
    """A fold fit that predicts ``value`` for every held-out row, counted by ``clock``."""
    def fit(train_rows, test_rows):
        clock.calls += 1
        assert clock.left_s() >= 0  # a fit never starts past the limit
        assert not set(train_rows) & set(test_rows)
        return np.tile(value, (len(test_rows), 1))

    return fit


def test_cross_validate_stops_within_the_budget():
    y = np.arange(40) % 2
    clock = CountingClock(limit=25)
    fits = {"a": constant_fit([0.6, 0.4], clock), "b": constant_fit([0.3, 0.7], clock)}
    oof, repeats = cross_validate(fits, y, CvPlan(5, 4), problem_type="binary", seed=0,
                                  budget=clock)
    # 10 fits a repeat: two repeats each, and "a" (first) finished its folds of a third
    assert repeats == {"a": 3, "b": 2}
    assert clock.calls == 25
    assert np.allclose(oof["a"], [0.6, 0.4]) and np.allclose(oof["b"], [0.3, 0.7])


def test_cross_validate_starts_no_fit_its_expected_time_does_not_pay_for():
    y = np.arange(40) % 2
    clock = CountingClock(limit=25)
    fits = {"a": constant_fit([0.6, 0.4], clock), "b": constant_fit([0.3, 0.7], clock)}
    # "b" is expected to take 30 s a fold (a network's estimate): it never starts, and "a"
    # is judged on the one repeat it finished.
    oof, repeats = cross_validate(fits, y, CvPlan(5, 4), problem_type="binary", seed=0,
                                  budget=clock, expected_s={"b": 30.0})
    assert (list(oof), repeats, clock.calls) == (["a"], {"a": 1}, 5)


def test_choice_not_worse_than_any_member_on_oof():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    oof = {}
    for i, noise in enumerate((0.9, 1.0, 1.1)):
        logit = (2 * y - 1) + noise * rng.normal(size=200)
        p = 1 / (1 + np.exp(-logit))
        oof[f"m{i}"] = np.stack([1 - p, p], axis=1)

    def score(out):
        return float(np.mean(out.argmax(1) == y))

    chosen, weights, scores = choose_on_oof(oof, score, mode="max", ensemble_rounds=25)
    assert all(scores[chosen] >= scores[m] for m in oof)
    assert chosen != "ensemble" or len(weights) > 1


def test_small_table_chosen_on_folds_and_saved(tmp_path):
    train = table(120)
    p = Predictor("label", seed=3, verbosity=0, recipe=SMALL).fit(train)
    assert p.cv_["folds"] == 5 and p.cv_["repeats"] == 2
    board = p.leaderboard().set_index("model")
    assert set(board.loc[["linear", "random_forest"], "judged_on"]) == {"5-fold x2 out-of-fold"}
    scores = board["cv_accuracy"].dropna()
    assert scores[p.chosen_] == scores.max() == p.val_metric_
    again = Predictor("label", seed=3, verbosity=0, recipe=SMALL).fit(train)
    assert again.chosen_ == p.chosen_
    assert np.array_equal(again.predict_proba(train), p.predict_proba(train))
    p.save(tmp_path / "m")
    loaded = Predictor.load(tmp_path / "m")
    assert loaded.recipe_.candidates.cv_repeats == 2
    assert np.array_equal(loaded.predict_proba(train), p.predict_proba(train))


def test_the_network_is_judged_on_the_folds_too():
    recipe = {"candidates.classic": ["linear"], "training.max_epochs": 4,
              "candidates.cv_repeats": 1}
    train = table(150)
    p = Predictor("label", seed=2, verbosity=0, recipe=recipe).fit(train)
    board = p.leaderboard().set_index("model")
    assert board.loc["neural", "judged_on"] == "5-fold x1 out-of-fold"
    assert 0.5 < board.loc["neural", "cv_accuracy"] <= 1.0
    event = next(e for e in p.train_log_ if e["event"] == "cross_validation")
    assert event["models"] == ["linear", "neural"]
    scores = board["cv_accuracy"].dropna()
    assert scores[p.chosen_] == scores.max()
    again = Predictor("label", seed=2, verbosity=0, recipe=recipe).fit(train)
    assert again.leaderboard()["cv_accuracy"].equals(p.leaderboard()["cv_accuracy"])
    assert np.array_equal(again.predict_proba(train), p.predict_proba(train))


def test_off_and_large_tables_keep_the_hold_out_choice():
    p = Predictor("label", verbosity=0, recipe={**SMALL, "candidates.cv_folds": 0}).fit(table(120))
    assert p.cv_ is None and "judged_on" not in p.leaderboard().columns


EXE = Path(sys.executable).with_name("polymodal")


def test_the_installed_script_sets_and_checks_the_folds(tmp_path):
    table(80).to_csv(tmp_path / "t.csv", index=False)
    base = [str(EXE), "fit", str(tmp_path / "t.csv"), "--label", "label", "--text-encoder",
            "hashed", "--set", "candidates.neural=false", "--set",
            "candidates.classic=linear"]
    bad = subprocess.run([*base, "--out", str(tmp_path / "bad"), "--set",
                          "candidates.cv_folds=1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cv_folds=1" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = subprocess.run([*base, "--out", str(tmp_path / "m"), "--set", "candidates.cv_folds=3"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    board = pd.read_csv(tmp_path / "m" / "leaderboard.csv")
    assert board["judged_on"].tolist() == ["3-fold x1 out-of-fold"]
