"""What the generator's fit keeps back of its time limit for what follows training."""

from __future__ import annotations

import time
from pathlib import Path

from polymodal.train.generator_fit import (
    FINAL_SHARE,
    MAX_FINAL_S,
    MIN_FINAL_S,
    SAVE_S,
    SampleGrids,
    final_grid_steps,
    training_seconds,
)
from polymodal.train.state import TrainState


def test_training_keeps_back_a_share_for_the_grid_and_the_save():
    assert training_seconds(None) is None
    assert training_seconds(100.0) == 100.0 * (1 - FINAL_SHARE)
    assert training_seconds(5.0) == 5.0 - MIN_FINAL_S
    assert training_seconds(0.5) == 1.0  # the loop always gets a moment
    long = 2 * MAX_FINAL_S / FINAL_SHARE  # a long limit keeps back no more than the most
    assert training_seconds(long) == long - MAX_FINAL_S


def test_the_final_grid_takes_fewer_sampler_steps_or_none_when_time_is_short():
    # 100 images/s of training: a sampler pass of 60 images costs 0.2 s, a Heun step
    # with guidance four of them.
    pace = {"images_per_s": 100.0, "num_images": 60, "sampler": "heun", "guidance": 2.0}
    assert final_grid_steps(**pace, left_s=float("inf"), num_steps=16) == 16
    assert final_grid_steps(**pace, left_s=SAVE_S + 16 * 0.8 + 0.01, num_steps=16) == 16
    assert final_grid_steps(**pace, left_s=SAVE_S + 4 * 0.8 + 0.1, num_steps=16) == 4
    assert final_grid_steps(**pace, left_s=SAVE_S + 0.81, num_steps=16) == 0
    euler = {**pace, "sampler": "euler", "guidance": 1.0}  # one pass a step
    assert final_grid_steps(**euler, left_s=SAVE_S + 4 * 0.2 + 0.01, num_steps=16) == 4


def test_a_progress_grid_that_would_run_past_the_deadline_is_left_out(tmp_path: Path):
    written: list[int] = []
    state = TrainState()
    state.out_dir, state.is_main, state.step = str(tmp_path), True, 7
    late = SampleGrids(lambda model, folder, step: written.append(step), every_s=0.0,
                       deadline=time.perf_counter() - 1.0)
    late.on_eval(state, None)
    assert written == []
    free = SampleGrids(lambda model, folder, step: written.append(step), every_s=0.0)
    free.on_eval(state, None)
    assert written == [7]
