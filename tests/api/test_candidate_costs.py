"""The classic candidates' cost plan: probed, extrapolated, subsampled or skipped with a
reason. The probe is faked, so every test is bounded by rows, never by seconds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from polymodal.api import Predictor, candidate_costs
from polymodal.api.candidate_costs import (
    MIN_ROWS,
    TARGET_SHARE,
    plan_classic,
    probe_slice,
    row_cost,
)
from polymodal.models.classic import ClassicModel

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = 4_000  # PROBE_MIN_MULTIPLE probe slices (PROBE_MIN_ROWS each): the plan probes


def _xy(rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _model(kind: str = "random_forest") -> ClassicModel:
    return ClassicModel(kind, "binary", 2)


def linear_probe(seconds_per_unit: float, fixed_s: float = 0.0):
    """A fake probe: ``fixed_s + seconds_per_unit * row_cost(kind, rows)``, and the rows
    it was asked about."""
    asked: list[int] = []

    def probe(kind: str, x: np.ndarray, y: np.ndarray) -> float:
        asked.append(len(x))
        return fixed_s + seconds_per_unit * row_cost(kind, len(x))

    probe.asked = asked
    return probe


def test_a_cheap_candidate_trains_on_every_row():
    x, y = _xy()
    probe = linear_probe(1e-9)
    plan = plan_classic(_model(), x, y, 10.0, seed=0, probe=probe)
    assert plan.rows is None and not plan.skip and plan.note == ""
    assert probe.asked == [math.ceil(probe_slice(ROWS) / 4), probe_slice(ROWS)]


def test_a_costly_candidate_trains_on_the_subsample_that_fits_its_share():
    n, share_s = 8_000, 10.0
    x, y = _xy(n)
    # The whole table would take twice the share; the plan aims at TARGET_SHARE of it.
    per_unit = 2 * share_s / row_cost("random_forest", n)
    plan = plan_classic(_model(), x, y, share_s, seed=0, probe=linear_probe(per_unit))
    assert not plan.skip and plan.note.startswith("subsampled to")
    rows = len(plan.rows)
    assert MIN_ROWS <= rows < n
    assert per_unit * row_cost("random_forest", rows) <= TARGET_SHARE * share_s
    assert per_unit * row_cost("random_forest", rows + 10) > TARGET_SHARE * share_s
    assert np.all(np.diff(plan.rows) > 0) and plan.rows[-1] < n  # sorted, distinct
    again = plan_classic(_model(), x, y, share_s, seed=0, probe=linear_probe(per_unit))
    np.testing.assert_array_equal(again.rows, plan.rows)  # seeded


def test_a_fixed_cost_is_not_scaled_with_the_rows():
    x, y = _xy()
    # 3 s of set-up whatever the rows, almost nothing per row: fits a 40 s share whole
    # (the whole table would "cost" 3 s x 4 at a fixed cost per row).
    plan = plan_classic(_model("hist_gradient_boosting"), x, y, 40.0, seed=0,
                        probe=linear_probe(1e-9, fixed_s=3.0))
    assert plan.rows is None and not plan.skip
    assert plan.estimate_s == pytest.approx(3.0, abs=0.01)


def test_a_candidate_that_cannot_fit_is_skipped_with_the_reason_unless_required():
    x, y = _xy()
    probe = linear_probe(1.0)  # a second per row: nothing fits in 1 s
    plan = plan_classic(_model("extra_trees"), x, y, 1.0, seed=0, probe=probe)
    assert plan.skip and plan.rows is None
    assert plan.note.startswith("skipped:") and f"{ROWS:,} rows" in plan.note
    required = plan_classic(_model("extra_trees"), x, y, 1.0, seed=0, required=True,
                            probe=linear_probe(1.0))
    assert not required.skip and len(required.rows) == MIN_ROWS


def test_a_costly_first_timing_is_not_repeated_on_the_whole_slice():
    x, y = _xy()
    probe = linear_probe(1.0)  # the quarter slice alone takes far more than the share
    plan = plan_classic(_model(), x, y, 10.0, seed=0, probe=probe)
    assert probe.asked == [math.ceil(probe_slice(ROWS) / 4)]
    assert plan.skip


def test_no_limit_or_a_table_no_larger_than_the_probe_is_not_probed():
    def refuse(*_):
        raise AssertionError("probed")

    x, y = _xy()
    assert plan_classic(_model(), x, y, None, seed=0, probe=refuse).rows is None
    small_x, small_y = _xy(ROWS - 1)
    assert plan_classic(_model(), small_x, small_y, 0.001, seed=0, probe=refuse).rows is None


def test_the_real_probe_fits_the_smallest_model():
    x, y = _xy()
    seconds = candidate_costs.time_smallest_fit(_model())("random_forest", x[:200], y[:200])
    assert seconds > 0


def test_predictor_records_a_skipped_candidate_in_the_leaderboard_and_the_log(
        monkeypatch, tmp_path):
    def fake(model):  # extra trees "cost" a second per row; the others nothing
        return linear_probe(1.0 if model.kind == "extra_trees" else 1e-12)

    monkeypatch.setattr(candidate_costs, "time_smallest_fit", fake)
    x, y = _xy(int(ROWS / 0.8) + 10)  # enough training rows to probe after the split
    table = pd.DataFrame(x, columns=["a", "b", "c"])
    table["label"] = np.where(y == 1, "yes", "no")
    p = Predictor("label", time_limit=600, verbosity=0,
                  recipe={"candidates.neural": False,
                          "candidates.classic": ["random_forest", "extra_trees"]})
    p.fit(table)
    board = p.leaderboard().set_index("model")
    assert board.loc["extra_trees", "note"].startswith("skipped:")
    assert math.isnan(board.loc["extra_trees", "val_accuracy"])
    assert not board.loc["extra_trees", "chosen"]
    assert board.loc["random_forest", "note"] == ""
    assert "extra_trees" not in p.candidates_
    assert [e["model"] for e in p.train_log_ if e.get("event") == "skipped"] == ["extra_trees"]
    p.save(tmp_path / "m")
    loaded = Predictor.load(tmp_path / "m").leaderboard()
    pd.testing.assert_frame_equal(loaded, p.leaderboard(), check_exact=False)
