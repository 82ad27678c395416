"""The wall-clock budget: when to stop, and how many steps fit in it.

Only a time limit bounds a run as often as not (``Predictor(time_limit=120)``), yet the
cosine schedule needs a planned number of steps. We *estimate* that number from measured
step times once a few steps have run and re-estimate after each evaluation (whose cost is
only known once one has run). The alternative, an LR that is a function of the elapsed
fraction of the budget, would make the update sequence depend on clock jitter from step to
step; a step plan keeps the schedule a pure function of the step between re-estimates, so
logs are interpretable and the plan can be saved in a checkpoint.
"""

from __future__ import annotations

import math
import time

# Steps timed before the first estimate; the first step (allocations, lazy init) is excluded.
_STEPS_BEFORE_ESTIMATE = 5


class TimeBudget:
    """Tracks elapsed time against an optional ``time_limit_s``: the one budget type.

    A fit creates one when it starts, so everything it does (reading the table, the
    transforms, every candidate, augmentation, the ensemble) counts against the limit;
    each part gets a share of what is left (:meth:`share_s`).

    ``elapsed_offset_s`` carries time spent in earlier (interrupted) parts of a resumed run.
    """

    def __init__(self, time_limit_s: float | None, *, elapsed_offset_s: float = 0.0,
                 start: float | None = None):
        self.time_limit_s = time_limit_s
        self._offset_s = elapsed_offset_s
        # ``start`` (a ``time.perf_counter()`` value) lets set-up before the budget object
        # existed (building the optimiser, reading a checkpoint) count against the limit.
        self._start = time.perf_counter() if start is None else start
        self._step_times_s: list[float] = []
        self.last_eval_s = 0.0

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started, including earlier parts of a resumed run."""
        return self._offset_s + time.perf_counter() - self._start

    def left_s(self) -> float:
        """Seconds left of the limit (``inf`` without one; negative once overrun)."""
        return math.inf if self.time_limit_s is None else self.time_limit_s - self.elapsed_s

    def share_s(self, fraction: float) -> float | None:
        """``fraction`` of the seconds left, for a part of the run to spend (``None``
        without a limit)."""
        left = self.left_s()
        return None if math.isinf(left) else max(0.0, left * fraction)

    def record_step(self, duration_s: float) -> None:
        """Record one optimiser step's wall time (data loading included)."""
        self._step_times_s.append(duration_s)

    @property
    def step_time_s(self) -> float | None:
        """Typical seconds per step (median of recent steps), ``None`` before any step."""
        recent = self._step_times_s[1:][-50:] or self._step_times_s
        if not recent:
            return None
        return sorted(recent)[len(recent) // 2]

    def should_stop(self, *, final_eval: bool) -> bool:
        """True when another step (plus the final evaluation, if one will run) would not fit."""
        if self.time_limit_s is None:
            return False
        reserve_s = (self.step_time_s or 0.0) + (self.last_eval_s if final_eval else 0.0)
        return self.elapsed_s + reserve_s >= self.time_limit_s

    def ready_to_estimate(self) -> bool:
        """Whether enough steps were timed for :meth:`estimate_total_steps`."""
        return len(self._step_times_s) >= _STEPS_BEFORE_ESTIMATE

    def estimate_total_steps(self, steps_done: int, *,
                             eval_every_steps: float | None) -> int | None:
        """Steps that fit in the whole budget at the measured pace (``None`` without a limit).

        ``eval_every_steps`` spreads the measured evaluation cost over the steps between
        evaluations.
        """
        if self.time_limit_s is None or self.step_time_s is None:
            return None
        per_step_s = self.step_time_s
        if eval_every_steps:
            per_step_s += self.last_eval_s / eval_every_steps
        remaining_s = max(0.0, self.time_limit_s - self.elapsed_s - self.last_eval_s)
        return steps_done + int(remaining_s / per_step_s)
