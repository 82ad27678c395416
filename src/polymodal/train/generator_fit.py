"""The Generator's training run on the shared loop: its loop settings, a fixed validation
loss, and sample grids at intervals while it trains.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from polymodal.train.config import TrainConfig
from polymodal.train.loop import Trainer
from polymodal.train.state import Callback, TrainResult, TrainState

EVAL_ROWS = 256  # rows of the fixed validation loss the loop evaluates
GRID_EVERY_S = 30.0  # at most one sample grid per this many seconds of training
CHECKPOINT_EVERY_S = 60.0
# Of the time left when training starts, this share (at least MIN_FINAL_S) is kept for
# what follows it inside the limit: the final evaluation and checkpoint, the final sample
# grid (made cheaper to fit, see final_grid_steps) and saving the folder. At most
# MAX_FINAL_S: those do not grow with the limit, and a 15-minute fit left ~80 s of its
# share unused (bench/RESULTS.md, 'generator_guidance').
FINAL_SHARE, MIN_FINAL_S, MAX_FINAL_S = 0.1, 1.0, 30.0
SAVE_S = 1.0  # writing the generator's folder (its weights are a few megabytes)
# A sampler step costs a forward pass, about a third of a training step per image
# (forward and backward); a Heun step takes two, guidance doubles each.
FORWARD_SHARE_OF_STEP = 1 / 3

GridWriter = Callable[[nn.Module, Path, int], None]


class SampleGrids(Callback):
    """Calls ``write(model, out_dir, step)`` at evaluations, at most every ``every_s``.

    The first grid is due ``every_s`` after training starts (a grid of the untrained
    network shows nothing and costs a short run much of its budget); ``fit`` writes the
    final one. With a ``deadline`` (a ``time.perf_counter()`` value: the end of training)
    a grid is left out when the last one's cost would run past it.
    """

    def __init__(self, write: GridWriter, every_s: float, deadline: float | None = None):
        self.write = write
        self.every_s = every_s
        self.deadline = deadline
        self.last_write = time.perf_counter()
        self.cost_s = 0.0

    def on_eval(self, state: TrainState, model: nn.Module) -> None:
        if state.out_dir is None or not state.is_main:
            return
        now = time.perf_counter()
        if now - self.last_write < self.every_s:
            return
        if self.deadline is not None and now + max(self.cost_s, 0.1 * self.every_s) > self.deadline:
            return
        self.write(model, Path(state.out_dir), state.step)
        self.last_write = time.perf_counter()
        self.cost_s = self.last_write - now


class EarlySnapshot(Callback):
    """Keeps a copy of the evaluated (EMA) weights at the first evaluation at or past
    ``fraction`` of the planned steps: the weaker, less trained model that autoguidance
    guides with (Karras et al. 2024, "Guiding a diffusion model with a bad version of
    itself", Sec. 3). ``weights`` stays None until then."""

    def __init__(self, fraction: float):
        self.fraction = fraction
        self.weights: dict | None = None
        self.step: int | None = None

    def on_eval(self, state: TrainState, model: nn.Module) -> None:
        if self.weights is not None or not state.planned_steps:
            return
        if state.step >= self.fraction * state.planned_steps:
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.step = state.step


def training_seconds(left_s: float | None) -> float | None:
    """Seconds the loop may train when ``left_s`` are left of the limit (``None``: no
    limit), keeping back the share for what follows training (``FINAL_SHARE``, within
    ``MIN_FINAL_S`` and ``MAX_FINAL_S``)."""
    if left_s is None:
        return None
    return max(1.0, left_s - min(max(MIN_FINAL_S, FINAL_SHARE * left_s), MAX_FINAL_S))


def sampling_seconds(images_per_s: float, *, num_steps: int, sampler: str,
                     guidance: float) -> float:
    """Estimated seconds to sample one image, from the training pace ``images_per_s``."""
    passes = (2 if sampler == "heun" else 1) * (2 if guidance != 1.0 else 1)
    return num_steps * passes * FORWARD_SHARE_OF_STEP / max(images_per_s, 1e-9)


def final_grid_steps(*, images_per_s: float, left_s: float, num_images: int,
                     num_steps: int, sampler: str, guidance: float) -> int:
    """Sampler steps for the final grid of ``num_images`` that fit in ``left_s`` seconds
    (after the save), at most ``num_steps``; 0 when not even 2 fit. ``images_per_s``:
    the training pace, from which a sampler step's cost is estimated."""
    if left_s == float("inf"):
        return num_steps
    if images_per_s <= 0:
        return 0
    step_s = num_images * sampling_seconds(images_per_s, num_steps=1, sampler=sampler,
                                           guidance=guidance)
    steps = min(num_steps, int((left_s - SAVE_S) / step_s))
    return steps if steps >= 2 else 0


def generator_train_config(num_images: int, *, batch_size: int, lr: float,
                           weight_decay: float, warmup_steps: int, min_lr_ratio: float,
                           max_epochs: int, ema_halflife_images: float | None,
                           time_left_s: float | None, seed: int, progress: bool,
                           precision: str, checkpoints: bool,
                           max_steps: int | None = None, device: str = "auto",
                           compile: bool = False) -> TrainConfig:
    """The loop's settings: the recipe's, with ``max_epochs`` only without a time limit
    or a step bound (``max_steps``)."""
    steps_per_epoch = math.ceil(num_images / batch_size)
    return TrainConfig(
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
        min_lr_ratio=min_lr_ratio,
        max_epochs=None if time_left_s is not None or max_steps is not None else max_epochs,
        max_steps=max_steps, time_limit_s=time_left_s, ema_halflife_images=ema_halflife_images,
        # Evaluations are cheap (one fixed batch) and drive the sample grids.
        eval_every_steps=min(steps_per_epoch, 200),
        checkpoint_every_s=CHECKPOINT_EVERY_S if checkpoints else None, seed=seed,
        progress=progress, precision=precision, device=device, compile=compile,
        restore_best_weights=False)  # the EMA weights, not the noisiest-best snapshot


def train_generator(network: nn.Module, dataset, config: TrainConfig, *,
                    out_dir: str | os.PathLike | None, resume: bool,
                    write_grid: GridWriter | None, callbacks: Sequence[Callback] = ()
                    ) -> TrainResult:
    """Train ``network`` (a :class:`~polymodal.models.generator_net.GeneratorNetwork`) in
    place on ``dataset`` (:class:`~polymodal.data.generator_rows.TrainingRows`);
    ``callbacks`` run besides the sample grids' (an :class:`EarlySnapshot`)."""
    # In training-sized batches: one pass over all the rows at once held ~0.1 GiB more at
    # its peak than training does (bench/RESULTS.md, 'generator_guidance').
    rows = list(range(min(EVAL_ROWS, len(dataset))))
    chunks = [rows[i:i + config.batch_size] for i in range(0, len(rows), config.batch_size)]
    eval_batches = [(dataset.collate(chunk), len(chunk)) for chunk in chunks]

    def validation_loss(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total = sum(model.validation_loss(batch.to(device)) * n for batch, n in eval_batches)
        return {"val_loss": total / len(rows)}

    deadline = (None if config.time_limit_s is None
                else time.perf_counter() + config.time_limit_s)
    callbacks = [*callbacks, *([SampleGrids(write_grid, GRID_EVERY_S, deadline)]
                               if out_dir is not None and write_grid is not None else [])]
    return Trainer(config, out_dir=out_dir).fit(
        network, dataset, collate_fn=dataset.collate,
        loss_fn=lambda model, batch: model(batch), eval_fn=validation_loss,
        metric_name="val_loss", resume=resume, callbacks=callbacks)


def nan_message(result: TrainResult) -> str:
    """What a user is told when training stopped on a NaN/inf loss."""
    return (f"training stopped at step {result.nan_step}: the loss (or its gradient) became "
            "NaN/inf; the generator keeps the last good (EMA) weights. Try a smaller "
            "batch_size or check the images")


def run_summary(result: TrainResult, *, num_images: int, skipped_rows: int,
                precision: str) -> tuple[list[dict], dict]:
    """The training log with its end event, and the summary kept with the model."""
    history = [*result.history, {
        "event": "end", "stop_reason": result.stop_reason, "step": result.steps,
        "nan_step": result.nan_step, "images_per_s": result.images_per_s,
        "wall_s": result.wall_s}]
    summary = {
        "stop_reason": result.stop_reason, "steps": result.steps, "epochs": result.epochs,
        "images_seen": result.images_seen, "images_per_s": round(result.images_per_s, 2),
        "wall_s": round(result.wall_s, 2), "nan_step": result.nan_step,
        "num_images": num_images, "skipped_rows": skipped_rows,
        "precision": precision}  # of this fit, on this machine
    return history, summary
