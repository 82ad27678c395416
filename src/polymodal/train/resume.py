"""A run in a checkpoint and back: what :mod:`.checkpoint` stores of a run, and putting it back.

Saving is collective: every rank hands rank 0 its RNG state, so a resumed run under
``torchrun`` continues each rank's dropout and noise streams, not only rank 0's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from polymodal.errors import ConfigError, ModelFolderError
from polymodal.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from polymodal.train.config import TrainConfig
from polymodal.train.distributed import DistributedContext
from polymodal.train.ema import ModelEMA
from polymodal.train.seed import capture_rng_state, restore_rng_state
from polymodal.train.state import TrainState

# Progress a resumed run continues from; ``out_dir`` and ``is_main`` describe this process.
_RESUMED_FIELDS = ("step", "epoch", "batch_in_epoch", "images_seen", "elapsed_s",
                   "train_time_s", "planned_steps", "best_metric", "best_tie_break", "best_step",
                   "evals_since_best", "last_loss", "last_metrics", "history")


def save_run(path: Path, config: TrainConfig, model: nn.Module,
             optimizer: torch.optim.Optimizer, ema: ModelEMA | None, state: TrainState,
             best_weights: dict[str, torch.Tensor] | None, ctx: DistributedContext) -> None:
    """Write the run's checkpoint (rank 0); every rank must call it."""
    rng_states = ctx.gather_objects(capture_rng_state())  # every rank takes part
    if not ctx.is_main:
        return
    trainer = {"state": state.to_dict(), "config": config.to_dict(),
               "world_size": ctx.world_size}
    save_checkpoint(path, Checkpoint(
        model=model.state_dict(), optimizer=optimizer.state_dict(), trainer=trainer,
        ema=None if ema is None else ema.module.state_dict(),
        best=best_weights, rng=rng_states))


def restore_run(path: Path, config: TrainConfig, model: nn.Module,
                optimizer: torch.optim.Optimizer, ema: ModelEMA | None, state: TrainState,
                ctx: DistributedContext) -> dict[str, torch.Tensor] | None:
    """Load a checkpoint into model/optimiser/EMA/state/RNG; return the best weights."""
    ckpt = load_checkpoint(path)
    saved_cfg = ckpt.trainer["config"]
    for key in ("batch_size", "seed"):
        if saved_cfg.get(key) != getattr(config, key):
            raise ConfigError(
                f"Cannot resume {path}: it was trained with {key}={saved_cfg.get(key)!r} "
                f"but this config has {key}={getattr(config, key)!r}; the data order "
                f"would not continue. Use the same {key}, or start a fresh run.")
    if (ckpt.ema is None) != (ema is None):
        raise ConfigError(f"Cannot resume {path}: EMA was "
                          f"{'off' if ckpt.ema is None else 'on'} in that run but "
                          f"ema_halflife_images={config.ema_halflife_images!r} now.")
    try:
        model.load_state_dict(ckpt.model)
        if ema is not None:
            ema.module.load_state_dict(ckpt.ema)
        optimizer.load_state_dict(ckpt.optimizer)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"Checkpoint {path} does not fit this model/optimiser: "
                               f"{exc}. Resume with the same model architecture, or start "
                               f"afresh with resume=False.") from exc
    saved = TrainState.from_dict(ckpt.trainer["state"])
    for name in _RESUMED_FIELDS:
        setattr(state, name, getattr(saved, name))
    if ctx.rank < len(ckpt.rng):
        restore_rng_state(*ckpt.rng[ctx.rank])
    return ckpt.best
