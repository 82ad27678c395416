"""Choosing among a fit's candidates: a greedy weighted ensemble, then the best on validation."""

from __future__ import annotations

import dataclasses
import math
import time

import pandas as pd

from polymodal.api.candidates import CandidateRun
from polymodal.models.ensemble import blend, ensemble_selection

ENSEMBLE = "ensemble"


@dataclasses.dataclass
class Choice:
    """The chosen model, the ensemble's weights (``None`` unless the ensemble won), the
    leaderboard and the chosen model's validation metric."""

    chosen: str
    ensemble_weights: dict[str, float] | None
    leaderboard: pd.DataFrame
    val_metric: float

    def needed(self) -> set[str]:
        """The candidates predictions use."""
        return set(self.ensemble_weights or {self.chosen: 1.0})


def _resolution(run: CandidateRun) -> float:
    """One validation row's worth of accuracy: models that far apart are not told apart."""
    return 1.0 / run.num_val_rows if run.metric == "accuracy" and run.num_val_rows else 0.0


def choose(run: CandidateRun, *, ensemble_rounds: int) -> Choice:
    """A greedy weighted ensemble when more than one model trained (recorded in ``run``
    as one more candidate); the best on validation wins, ties going to the ensemble (an
    average of models the validation cannot tell apart), then to the cheaper (earlier)
    model."""
    weights = None
    if len(run.val_outputs) > 1:
        start = time.perf_counter()
        found = ensemble_selection(run.val_outputs, run.score, mode=run.mode,
                                   num_rounds=ensemble_rounds, tolerance=_resolution(run))
        if len(found) > 1:
            predict_s = sum(r["predict_time_s"] for r in run.rows if r["model"] in found)
            weights = found
            run.record(ENSEMBLE, blend(run.val_outputs, found), time.perf_counter() - start,
                       predict_s, weights=found)
    column = f"val_{run.metric}"

    def key(row: dict) -> tuple[float, bool]:
        value = row[column]
        return (math.inf if not math.isfinite(value) else -value if run.mode == "max"
                else value, row["model"] != ENSEMBLE)

    trained = [row for row in run.rows if row["model"] in run.val_outputs]  # not the skipped
    chosen = min(trained, key=key)["model"]  # min keeps the first of equal keys
    for row in run.rows:
        row["chosen"] = row["model"] == chosen
    leaderboard = pd.DataFrame(run.rows, columns=["model", column, "fit_time_s",
                                                  "predict_time_s", "chosen", "note"])
    leaderboard["note"] = leaderboard["note"].fillna("")  # the ensemble's row has none
    val_metric = float(next(r[column] for r in run.rows if r["chosen"]))
    return Choice(chosen, weights if chosen == ENSEMBLE else None, leaderboard, val_metric)
