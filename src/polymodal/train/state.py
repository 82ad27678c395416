"""What a run reports: its progress (saved in checkpoints, handed to callbacks), its result,
and the hooks callbacks may define."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

STOP_REASONS = ("time_limit", "max_epochs", "max_steps", "early_stopping", "nan_loss")


@dataclass
class TrainState:
    """Progress of a run; saved in checkpoints and handed to callbacks."""

    step: int = 0
    """Optimiser steps done."""
    epoch: int = 0
    """Current epoch (0-based)."""
    batch_in_epoch: int = 0
    """Batches of the current epoch already trained on (where a resumed run continues)."""
    images_seen: int = 0
    """Training examples consumed, over all processes."""
    elapsed_s: float = 0.0
    """Wall time of the run so far, earlier parts of a resumed run included."""
    train_time_s: float = 0.0
    """Wall time spent in training steps (data loading included, evaluation excluded)."""
    planned_steps: int | None = None
    """Steps the LR schedule decays over (``None`` while unknown)."""
    best_metric: float | None = None
    best_tie_break: float | None = None
    """The best evaluation's :data:`~polymodal.train.loop.TIE_BREAK` value, when its
    ``eval_fn`` returns one."""
    best_step: int | None = None
    evals_since_best: int = 0
    last_loss: float | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: str | None = None
    """Where the run writes (callbacks may put sample grids here); ``None`` for nowhere."""
    is_main: bool = True
    """True on the process that evaluates, logs and writes (rank 0)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainState:
        return cls(**values)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    stop_reason: str
    """One of ``STOP_REASONS``."""
    steps: int
    epochs: float
    """Passes over the data (fractional when stopped mid-epoch; whole epochs for iterables)."""
    images_seen: int
    best_metric: float | None
    best_step: int | None
    history: list[dict[str, Any]]
    """Log and evaluation records: step, epoch, lr, loss, metrics, elapsed_s."""
    wall_s: float
    """Wall time of this call (not of earlier parts of a resumed run)."""
    images_per_s: float
    """Training throughput over this call's training steps."""
    nan_step: int | None = None
    """The step whose loss or gradient was NaN/inf (``stop_reason == "nan_loss"``)."""
    resumed_from_step: int | None = None


class Callback:
    """Hooks into the loop; override the ones you need. They run on rank 0 only.

    Any object with some of these methods works as a callback; subclassing is optional.
    """

    def on_eval(self, state: TrainState, model: nn.Module) -> None:
        """After each evaluation; ``model`` is the evaluated (EMA, if on) model."""

    def on_step_end(self, state: TrainState, model: nn.Module) -> None:
        """After each optimiser step (and any evaluation at that step); ``model`` is the live
        model being trained (unwrapped from DDP), not the EMA."""
