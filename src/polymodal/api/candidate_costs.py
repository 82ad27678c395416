"""What a classic candidate will cost on this table, decided before it is fitted.

A candidate's time share is a deadline its model grows towards in chunks (trees,
boosting iterations), but the first chunk is always grown, and on a large table that
chunk alone can cost many times the share (a 10-tree forest on a million rows). So, on
tables larger than a probe, :func:`plan_classic` first fits the smallest model (one
chunk; the whole model for the linear candidate, whose solver cannot stop early) on a
seeded slice of the rows, times it, and extrapolates to the full table with the
candidate's complexity in the number of rows (:func:`row_cost`). When the estimate does
not fit in ``TARGET_SHARE`` of the share, the candidate trains on a seeded subsample
that does; when not even ``MIN_ROWS`` rows would, it is skipped. The plan's ``note``
says which and why; the leaderboard and the training log keep it.

The probe is injectable (``probe=``), so tests can decide what it measures and bound
their work by rows, not seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from polymodal.models.classic import ClassicModel, chunk_size

PROBE_FRACTION = 0.02  # the probe's slice: this share of the rows ...
PROBE_MIN_ROWS, PROBE_MAX_ROWS = 1_000, 20_000  # ... within these bounds
# The smallest model may use this share of the candidate's time: the rest grows it, and
# covers the error of an extrapolation from a timing on a busy machine.
TARGET_SHARE = 0.5
MIN_ROWS = 1_000  # below this a subsample is not worth fitting: the candidate is skipped
# Tables with fewer rows than this many probe slices are not probed: the probe would cost
# a good part of the fit it plans, and the chunked deadline bounds such a fit anyway.
PROBE_MIN_MULTIPLE = 4
# When the first (quarter-slice) timing already took this share of the candidate's time,
# the second is left out and the cost is taken as proportional to the rows.
PROBE_MAX_SHARE = 0.1

# seconds of the smallest model of ``kind`` on ``rows`` of (x, y): what the probe returns
Probe = Callable[[str, np.ndarray, np.ndarray], float]


@dataclasses.dataclass(frozen=True)
class CostPlan:
    """How a classic candidate trains: on ``rows`` (positions; ``None``: every row), or
    not at all (``skip``); ``note`` says why when either (empty otherwise)."""

    rows: np.ndarray | None = None
    skip: bool = False
    note: str = ""
    probe_s: float = 0.0  # seconds the probe itself took
    estimate_s: float | None = None  # the smallest model on every row, extrapolated


def row_cost(kind: str, num_rows: float) -> float:
    """Relative cost of fitting ``kind`` on ``num_rows`` rows: trees sort each feature's
    values at every node (n log n); histogram boosting and the linear solver pass over
    the rows a fixed number of times (n)."""
    num_rows = max(2.0, float(num_rows))
    if kind in ("random_forest", "extra_trees"):
        return num_rows * math.log2(num_rows)
    return num_rows


def probe_slice(num_rows: int) -> int:
    """Rows the probe fits on for a table of ``num_rows`` (all of them when it is small)."""
    return int(min(num_rows, max(PROBE_MIN_ROWS, min(PROBE_MAX_ROWS,
                                                     round(PROBE_FRACTION * num_rows)))))


def plan_classic(model: ClassicModel, x: np.ndarray, y: np.ndarray, share_s: float | None,
                 *, seed: int, required: bool = False, probe: Probe | None = None) -> CostPlan:
    """The plan for fitting ``model`` on (x, y) within ``share_s`` seconds (``None``: no
    limit). ``required``: the run has no other model yet, so a candidate that would be
    skipped trains on ``MIN_ROWS`` rows instead."""
    n = len(x)
    m = probe_slice(n)
    if share_s is None or n < PROBE_MIN_MULTIPLE * m:
        return CostPlan()  # no limit, or a table too small to probe: the deadline does
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # one seeded order: the probe's slice and any subsample
    sliced = np.sort(order[:m])
    start = time.perf_counter()
    probe = probe or time_smallest_fit(model)
    # Two timings, on a quarter of the slice and on all of it, tell the fixed cost (set-up,
    # binning) from the cost per row: scaling the fixed cost with the rows would
    # overestimate a large table many times over.
    quarter = sliced[::4]
    small_s = probe(model.kind, x[quarter], y[quarter])
    if small_s > PROBE_MAX_SHARE * share_s:  # the second timing would cost too much: one will do
        seconds, m = small_s, len(quarter)
        per_unit, fixed_s = small_s / row_cost(model.kind, m), 0.0
    else:
        seconds = probe(model.kind, x[sliced], y[sliced])
        per_unit = max(0.0, seconds - small_s) / (row_cost(model.kind, m)
                                                  - row_cost(model.kind, len(quarter)))
        fixed_s = max(0.0, seconds - per_unit * row_cost(model.kind, m))
    probe_s = time.perf_counter() - start
    estimate = fixed_s + per_unit * row_cost(model.kind, n)
    target = TARGET_SHARE * max(0.0, share_s - probe_s)
    if estimate <= target:
        return CostPlan(probe_s=probe_s, estimate_s=estimate)
    units = (target - fixed_s) / per_unit if per_unit > 0 else 0.0
    rows = _rows_within(model.kind, units, n)
    why = (f"the smallest model on all {n:,} rows needs ~{estimate:.1f} s "
           f"(probe: {seconds:.2f} s on {m:,} rows), its share is {share_s:.1f} s")
    if rows < MIN_ROWS and not required:
        return CostPlan(skip=True, note=f"skipped: {why}", probe_s=probe_s, estimate_s=estimate)
    rows = max(rows, min(MIN_ROWS, n))
    return CostPlan(rows=np.sort(order[:rows]), note=f"subsampled to {rows:,} rows: {why}",
                    probe_s=probe_s, estimate_s=estimate)


def _rows_within(kind: str, units: float, num_rows: int) -> int:
    """The most rows (at most ``num_rows``) whose :func:`row_cost` is at most ``units``."""
    low, high = 0, num_rows
    while low < high:  # bisection: row_cost increases with the rows
        mid = (low + high + 1) // 2
        if row_cost(kind, mid) <= units:
            low = mid
        else:
            high = mid - 1
    return low


def time_smallest_fit(model: ClassicModel) -> Probe:
    """The default probe: seconds to fit the smallest model of ``model``'s kind and
    settings (one chunk of trees or iterations; the linear model whole)."""

    def probe(kind: str, x: np.ndarray, y: np.ndarray) -> float:
        trial = ClassicModel(kind, model.problem_type, model.n_outputs,
                             categorical=model.categorical, seed=model.seed)
        start = time.perf_counter()
        trial.fit(x, y, max_size=chunk_size(kind))
        return time.perf_counter() - start

    return probe


# Writing the model folder: a fixed part (the JSON files, the transform, the atomic
# rename) and the models' arrays at a conservative write rate; the save happens after
# ``fit`` returns, inside the same time limit (bench/RESULTS.md, 'budget').
SAVE_FIXED_S = 1.0
SAVE_BYTES_PER_S = 20e6
TREE_NODE_BYTES = 64  # scikit-learn's node record, without its values


def model_bytes(model) -> int:
    """About how many bytes ``model`` (a classic model or the network) takes on disk."""
    if isinstance(model, ClassicModel):
        estimator = model.estimator_
        if hasattr(estimator, "steps"):  # a forest in its pipeline
            estimator = estimator.steps[-1][1]
        total = 0
        for tree in getattr(estimator, "estimators_", []):
            tree = tree[0] if isinstance(tree, np.ndarray) else tree
            t = getattr(tree, "tree_", None)
            if t is not None:
                total += t.node_count * (TREE_NODE_BYTES + 8 * t.n_outputs * t.max_n_classes)
        for predictors in getattr(estimator, "_predictors", []):  # histogram boosting
            total += sum(p.nodes.nbytes for p in predictors)
        return total
    network = getattr(model, "model_", None)
    if network is None:
        return 0
    return sum(p.numel() * p.element_size() for p in network.parameters())


def save_seconds(models) -> float:
    """Seconds to keep back for writing ``models`` into the model folder."""
    return SAVE_FIXED_S + sum(model_bytes(m) for m in models) / SAVE_BYTES_PER_S
