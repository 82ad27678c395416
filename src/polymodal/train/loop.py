"""The training loop shared by every polymodal model: ``Trainer(config).fit(model, data, ...)``.

It knows nothing of tables or images: it trains an ``nn.Module`` from a map-style (or
iterable) torch ``Dataset`` and a ``loss_fn(model, batch) -> (loss, logs)``. One explicit
loop, no framework; per step:

1. fetch the next batch (its order is a pure function of ``seed`` and the epoch) and move it
   to the device;
2. set the LR from the warm-up + cosine schedule (:mod:`.schedule`);
3. forward under autocast (bf16 on CUDA only) and compute the loss;
4. share the loss and rank 0's stop/save decisions in one all-reduce, so every process
   takes the same branch; a NaN/inf loss stops here, before it can touch the weights;
5. backward, clip the gradient norm (a non-finite norm also stops), AdamW step, EMA update;
6. log, evaluate when due (rank 0, on the EMA weights when EMA is on, keeping the best),
   run callbacks, checkpoint when due, and check the stop conditions.

At the end the model holds the weights to use: the best-scoring evaluated weights when an
``eval_fn`` was given (and ``restore_best_weights``), else the EMA weights when EMA is on,
else the last weights.

Reproducibility: with the same seed a CPU run gives bitwise-identical weights, and a run
interrupted and resumed from its last checkpoint (``resume=True``) gives the same bits as
an uninterrupted one, as long as the run is bounded by steps/epochs (a time limit makes the
step count, hence the result, depend on the machine's speed) and DataLoader workers do not
draw random numbers (with ``num_workers > 0`` their RNG streams restart on resume).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data.distributed import DistributedSampler

from polymodal.errors import ConfigError, ModelFolderError
from polymodal.files import write_json
from polymodal.train.budget import TimeBudget
from polymodal.train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from polymodal.train.config import TrainConfig
from polymodal.train.distributed import DistributedContext
from polymodal.train.ema import ModelEMA
from polymodal.train.progress import JsonlLog, ProgressDisplay, progress_enabled
from polymodal.train.schedule import build_optimizer, lr_at, set_lr
from polymodal.train.seed import (
    capture_rng_state,
    preserved_rng_state,
    restore_rng_state,
    seed_dataloader_worker,
    seed_everything,
)

STOP_REASONS = ("time_limit", "max_epochs", "max_steps", "early_stopping", "nan_loss")

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, float]] | torch.Tensor"]
EvalFn = Callable[[nn.Module], dict[str, float]]


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


# --- small helpers ------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else as given (validated)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available on this machine; use "
                          f"device='auto' or 'cpu'.")
    return device


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` on ``device``: tensors, tuples/lists/dicts of them, or objects with ``.to``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(move_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


def batch_length(batch: Any) -> int:
    """Examples in a batch: its ``len``, or the leading dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, tuple | list) and batch:
        return batch_length(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_length(next(iter(batch.values())))
    return len(batch)


def _unpack_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    loss, logs = (out if isinstance(out, tuple) else (out, {}))
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConfigError(f"loss_fn must return a scalar tensor (or (scalar tensor, dict of "
                          f"floats)), got {type(loss).__name__}"
                          f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}; "
                          f"reduce the loss with .mean().")
    return loss, {k: float(v) for k, v in (logs or {}).items()}


class _ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle, ``set_epoch``) that can skip a prefix.

    The order of epoch ``e`` is ``randperm(n, seed + e)``, so resuming needs only the epoch
    and the number of samples already consumed. With one process it is a plain shuffle.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip_samples = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip_samples, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip_samples)


def _hooks(callbacks: Sequence[Any], name: str) -> list[Callable]:
    """The callbacks' ``name`` methods, skipping callbacks that do not define it."""
    return [hook for cb in callbacks if (hook := getattr(cb, name, None)) is not None]


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters()
               if p.is_floating_point())


# --- the trainer --------------------------------------------------------------------------


class Trainer:
    """Trains any ``nn.Module``; see the module docstring for the loop.

    ``out_dir`` receives ``train_config.json``, ``train_log.jsonl`` and
    ``checkpoint.safetensors`` (rank 0 only); ``None`` writes nothing (no checkpoints).
    """

    def __init__(self, config: TrainConfig | None = None, *, out_dir: str | Path | None = None):
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}; "
                              f"build one with TrainConfig.from_dict({{...}}).")
        self.config.validate()
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.state: TrainState | None = None
        self.ema: ModelEMA | None = None

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_NAME

    # --- public entry point ---------------------------------------------------------------

    def fit(self, model: nn.Module, train_dataset: Dataset, *,
            collate_fn: Callable | None = None, loss_fn: LossFn,
            eval_fn: EvalFn | None = None, metric_name: str = "loss",
            metric_mode: str = "min", resume: bool = False,
            callbacks: Sequence[Callback] = ()) -> TrainResult:
        """Train ``model`` in place and return what happened.

        ``loss_fn(model, batch)`` returns the scalar loss (and optionally a dict of floats
        to log); under ``torchrun`` it receives the DDP-wrapped model, so call the model
        itself rather than its submodules. ``eval_fn(model)`` returns metrics including
        ``metric_name`` (``metric_mode`` "min" or "max" says which way is better); it runs
        on rank 0 in eval mode under ``no_grad`` with every global RNG restored afterwards
        (so do callbacks), so evaluating never changes the training trajectory. ``fit``
        seeds the global RNGs with ``config.seed`` (plus the rank) before training.
        ``resume=True`` continues from ``out_dir/checkpoint.safetensors`` when it exists
        (else starts afresh).
        """
        cfg = self.config
        if metric_mode not in ("min", "max"):
            raise ConfigError(f"metric_mode={metric_mode!r}: use 'min' (lower is better, e.g. "
                              f"a loss) or 'max' (e.g. accuracy).")
        if resume and self.out_dir is None:
            raise ConfigError("resume=True needs the folder of the earlier run: pass "
                              "Trainer(config, out_dir=...).")
        if not isinstance(train_dataset, IterableDataset) and len(train_dataset) == 0:
            raise ConfigError("train_dataset is empty (0 rows); check the table and filters.")

        wall_start = time.perf_counter()
        device = resolve_device(cfg.device)
        ctx = DistributedContext.from_env(device.type)
        try:
            result = self._fit(wall_start, ctx, device, model, train_dataset, collate_fn,
                               loss_fn, eval_fn, metric_name, metric_mode, resume,
                               list(callbacks))
            # Every rank leaves its last collective before any rank tears the group down:
            # a gloo peer closing its sockets under a rank still at work can abort it.
            ctx.barrier()
            return result
        finally:
            ctx.close()

    # --- the loop -----------------------------------------------------------------------

    def _fit(self, wall_start: float, ctx: DistributedContext, device: torch.device,
             model: nn.Module, dataset: Dataset, collate_fn, loss_fn, eval_fn, metric_name,
             metric_mode, resume, callbacks) -> TrainResult:
        cfg = self.config
        if ctx.enabled and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size={cfg.batch_size} is not divisible by the "
                              f"{ctx.world_size} processes; choose a multiple of "
                              f"{ctx.world_size} so the global batch matches one process.")
        per_rank_batch = cfg.batch_size // ctx.world_size
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        # Distinct streams per rank (dropout, noise), identical to a single process on rank 0.
        seed_everything(cfg.seed + ctx.rank)
        use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")

        # 1. Model, EMA, optimiser, state — then overwrite from the checkpoint if resuming.
        model.to(device)
        self.ema = None
        if cfg.ema_halflife_images is not None:
            self.ema = ModelEMA(model, batch_size=cfg.batch_size,
                                halflife_images=cfg.ema_halflife_images)
        optimizer = build_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    betas=cfg.betas)
        state = TrainState(out_dir=None if self.out_dir is None else str(self.out_dir),
                           is_main=ctx.is_main)
        best_weights: dict[str, torch.Tensor] | None = None
        resumed_from = None
        ckpt_path = self.checkpoint_path
        if resume and ckpt_path is not None and ckpt_path.exists():
            best_weights = self._restore(ckpt_path, model, optimizer, state, ctx)
            resumed_from = state.step
        elif resume:
            warnings.warn(f"resume=True but {ckpt_path} does not exist; starting afresh.",
                          stacklevel=3)
        self.state = state

        wrapped: nn.Module = model
        if ctx.enabled:
            wrapped = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)

        # 2. Data order: a seeded sampler per epoch; the DataLoader draws its workers' base
        # seed from its own generator, so it never consumes the global torch RNG.
        iterable = isinstance(dataset, IterableDataset)
        sampler = None if iterable else _ResumableSampler(
            dataset, num_replicas=ctx.world_size, rank=ctx.rank, seed=cfg.seed)
        loader_generator = torch.Generator()
        loader = DataLoader(
            dataset, batch_size=per_rank_batch, sampler=sampler, collate_fn=collate_fn,
            num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
            generator=loader_generator,
            worker_init_fn=seed_dataloader_worker if cfg.num_workers else None)
        steps_per_epoch = None if iterable else len(loader)

        # 3. The plan: steps the cosine decays over, from the step/epoch bounds; a time
        # limit may shorten it once the pace is measured (see budget.py).
        bounds = []
        if cfg.max_steps is not None:
            bounds.append(cfg.max_steps)
        if cfg.max_epochs is not None and steps_per_epoch is not None:
            bounds.append(cfg.max_epochs * steps_per_epoch)
        fixed_plan = min(bounds) if bounds else None
        if cfg.time_limit_s is None or state.planned_steps is None:
            state.planned_steps = fixed_plan
        budget = TimeBudget(cfg.time_limit_s, elapsed_offset_s=state.elapsed_s, start=wall_start)

        def epochs_done() -> float:
            """Passes over the data so far (whole epochs when the epoch length is unknown)."""
            fraction = state.batch_in_epoch / steps_per_epoch if steps_per_epoch else 0.0
            return round(state.epoch + fraction, 4)

        def replan() -> None:
            estimate = None
            if ctx.is_main:
                estimate = budget.estimate_total_steps(
                    state.step, eval_every_steps=cfg.eval_every_steps or steps_per_epoch)
            estimate = ctx.broadcast_int(estimate, device)  # every rank needs the same LR
            if estimate is not None:
                state.planned_steps = estimate if fixed_plan is None else min(fixed_plan,
                                                                              estimate)

        # 4. Outputs (rank 0 only).
        log = JsonlLog(self.out_dir if ctx.is_main else None)
        if ctx.is_main and self.out_dir is not None:
            write_json(self.out_dir / "train_config.json", cfg.to_dict())
        bar = ProgressDisplay(ctx.is_main and progress_enabled(cfg.progress),
                              total_steps=state.planned_steps, start_step=state.step)
        save_enabled = ckpt_path is not None and cfg.checkpoint_every_s is not None
        last_save = time.perf_counter()

        def save() -> None:
            nonlocal last_save
            state.elapsed_s = budget.elapsed_s
            self._save(ckpt_path, model, optimizer, state, best_weights, ctx)
            last_save = time.perf_counter()

        def evaluate() -> bool:
            """Evaluate on rank 0; True (on every rank) when early stopping triggers."""
            nonlocal best_weights, last_eval_step
            last_eval_step = state.step
            if eval_fn is None:
                return False
            stop = False
            if ctx.is_main:
                target = self.ema.module if self.ema is not None else model
                metrics = self._run_eval(eval_fn, target, device, budget, metric_name)
                value = metrics[metric_name]
                better = state.best_metric is None or (
                    value < state.best_metric if metric_mode == "min"
                    else value > state.best_metric)
                if better and math.isfinite(value):
                    state.best_metric, state.best_step = value, state.step
                    state.evals_since_best = 0
                    best_weights = _copy_state(target)
                else:
                    state.evals_since_best += 1
                state.last_metrics = metrics
                record = {"event": "eval", "step": state.step, "epoch": epochs_done(),
                          "lr": optimizer.param_groups[0]["lr"], "loss": state.last_loss,
                          "metrics": metrics, "elapsed_s": round(budget.elapsed_s, 3)}
                state.history.append(record)
                log.write(record)
                with preserved_rng_state():
                    for hook in _hooks(callbacks, "on_eval"):
                        hook(state, target)
                patience = cfg.early_stopping_patience
                stop = patience is not None and state.evals_since_best >= patience
            stop = ctx.broadcast_flag(stop, device)
            if cfg.time_limit_s is not None:
                replan()
            return stop

        # 5. The loop.
        stop_reason: str | None = None
        nan_step: int | None = None
        last_eval_step: int | None = None
        window_loss, window_logs, window_steps, window_images = 0.0, {}, 0, 0
        window_start = time.perf_counter()
        images_this_call, train_time_this_call = 0, 0.0
        estimated_once = False
        flags = torch.zeros(4, dtype=torch.float64, device=device)
        model.train()
        try:
            while stop_reason is None:
                if cfg.max_steps is not None and state.step >= cfg.max_steps:
                    stop_reason = "max_steps"
                    break
                if cfg.max_epochs is not None and state.epoch >= cfg.max_epochs:
                    stop_reason = "max_epochs"
                    break
                loader_generator.manual_seed(cfg.seed + state.epoch)
                if hasattr(dataset, "set_epoch"):
                    # Per-item augmentation draws from seed + epoch + index: new each epoch,
                    # the same again after a resume.
                    dataset.set_epoch(state.epoch)
                if sampler is not None:
                    sampler.set_epoch(state.epoch)
                    sampler.skip_samples = state.batch_in_epoch * per_rank_batch
                    batches: Iterable = loader
                else:  # an iterable dataset can only be fast-forwarded by reading it
                    batches = itertools.islice(loader, state.batch_in_epoch, None)
                step_start = time.perf_counter()
                for batch in batches:
                    # -- one optimiser step --
                    batch = move_to(batch, device)
                    lr = lr_at(state.step, base_lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                               planned_steps=state.planned_steps, min_lr_ratio=cfg.min_lr_ratio)
                    set_lr(optimizer, lr)
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        loss, logs = _unpack_loss(loss_fn(wrapped, batch))
                    # One collective per step: [loss not finite, stop now, save now, loss].
                    flags.zero_()
                    flags[0] = float(not bool(torch.isfinite(loss.detach())))
                    if ctx.is_main:
                        flags[1] = float(budget.should_stop(final_eval=eval_fn is not None))
                        flags[2] = float(save_enabled and time.perf_counter() - last_save
                                         >= cfg.checkpoint_every_s)
                    flags[3] = loss.detach().double()
                    ctx.sum_(flags)
                    if flags[0] > 0:
                        stop_reason, nan_step = "nan_loss", state.step
                        break
                    loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(
                        model.parameters(), cfg.grad_clip_norm or math.inf)
                    if not bool(torch.isfinite(grad_norm)):
                        # Gradients are all-reduced, so every rank sees the same norm.
                        optimizer.zero_grad(set_to_none=True)
                        stop_reason, nan_step = "nan_loss", state.step
                        break
                    optimizer.step()
                    if self.ema is not None:
                        self.ema.update(model, state.step)

                    # -- bookkeeping --
                    n_images = batch_length(batch) * ctx.world_size
                    state.step += 1
                    state.batch_in_epoch += 1
                    state.images_seen += n_images
                    images_this_call += n_images
                    now = time.perf_counter()
                    budget.record_step(now - step_start)
                    state.train_time_s += now - step_start
                    train_time_this_call += now - step_start
                    state.last_loss = float(flags[3]) / ctx.world_size
                    window_loss += state.last_loss
                    window_steps += 1
                    window_images += n_images
                    for k, v in logs.items():
                        window_logs[k] = window_logs.get(k, 0.0) + v
                    if state.step % cfg.log_every_steps == 0:
                        record = {"event": "train", "step": state.step, "epoch": epochs_done(),
                                  "lr": lr, "loss": window_loss / window_steps,
                                  **{k: v / window_steps for k, v in window_logs.items()},
                                  "images_per_s": window_images / max(1e-9, now - window_start),
                                  "elapsed_s": round(budget.elapsed_s, 3)}
                        if ctx.is_main:
                            state.history.append(record)
                            log.write(record)
                        window_loss, window_logs, window_steps, window_images = 0.0, {}, 0, 0
                        window_start = now
                    if cfg.time_limit_s is not None and not estimated_once \
                            and budget.ready_to_estimate():
                        estimated_once = True
                        replan()

                    # -- evaluation, callbacks, checkpoint, stop conditions --
                    early = False
                    if cfg.eval_every_steps is not None and state.step % cfg.eval_every_steps == 0:
                        early = evaluate()
                    step_hooks = _hooks(callbacks, "on_step_end") if ctx.is_main else []
                    if step_hooks:
                        with preserved_rng_state():
                            for hook in step_hooks:
                                hook(state, model)
                    if flags[2] > 0:
                        save()
                    bar.update(state.step, total_steps=state.planned_steps,
                               info=self._bar_info(state, metric_name))
                    if early:
                        stop_reason = "early_stopping"
                    elif flags[1] > 0:
                        stop_reason = "time_limit"
                    elif cfg.max_steps is not None and state.step >= cfg.max_steps:
                        stop_reason = "max_steps"
                    if stop_reason is not None:
                        break
                    step_start = time.perf_counter()
                else:
                    # The epoch ran out of batches.
                    state.epoch += 1
                    state.batch_in_epoch = 0
                    if cfg.eval_every_steps is None and evaluate():
                        stop_reason = "early_stopping"

            # 6. Final evaluation (unless the last step was just evaluated), checkpoint.
            if stop_reason != "nan_loss" and last_eval_step != state.step:
                evaluate()
            if ckpt_path is not None and (stop_reason != "nan_loss" or _all_finite(model)):
                save()  # never a checkpoint with NaN weights
        finally:
            bar.close()

        # 7. Hand back the weights to use.
        if best_weights is not None and cfg.restore_best_weights and eval_fn is not None:
            model.load_state_dict(best_weights)
        elif self.ema is not None:
            model.load_state_dict(self.ema.module.state_dict())
        # Evaluation ran on rank 0 only: share its outcome so every rank returns the same.
        ctx.broadcast_module_(model)
        state.best_metric, state.best_step, state.history = ctx.broadcast_object(
            (state.best_metric, state.best_step, state.history))
        state.elapsed_s = budget.elapsed_s
        wall_s = time.perf_counter() - wall_start
        result = TrainResult(
            stop_reason=stop_reason, steps=state.step,
            epochs=epochs_done(),
            images_seen=state.images_seen, best_metric=state.best_metric,
            best_step=state.best_step, history=list(state.history), wall_s=wall_s,
            images_per_s=images_this_call / max(1e-9, train_time_this_call),
            nan_step=nan_step, resumed_from_step=resumed_from)
        log.write({"event": "end", "stop_reason": stop_reason, "step": state.step,
                   "nan_step": nan_step, "best_metric": state.best_metric,
                   "best_step": state.best_step, "wall_s": round(wall_s, 3),
                   "images_per_s": result.images_per_s})
        return result

    # --- pieces -------------------------------------------------------------------------

    @staticmethod
    def _run_eval(eval_fn: EvalFn, target: nn.Module, device: torch.device,
                  budget: TimeBudget, metric_name: str) -> dict[str, float]:
        was_training = target.training
        target.eval()
        start = time.perf_counter()
        try:
            with torch.no_grad(), preserved_rng_state():
                raw = eval_fn(target)
        finally:
            target.train(was_training)
        budget.last_eval_s = time.perf_counter() - start
        if not isinstance(raw, dict) or metric_name not in raw:
            keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise ConfigError(f"eval_fn must return a dict including metric_name="
                              f"{metric_name!r}; it returned {keys}. Return that key or pass "
                              f"metric_name= one of the returned keys.")
        return {k: float(v) for k, v in raw.items()}

    @staticmethod
    def _bar_info(state: TrainState, metric_name: str) -> str:
        info = "" if state.last_loss is None else f"loss {state.last_loss:.4g}"
        if state.best_metric is not None:
            info += f"  best {metric_name} {state.best_metric:.4g}"
        return info

    def _save(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
              state: TrainState, best_weights, ctx: DistributedContext) -> None:
        rng_states = ctx.gather_objects(capture_rng_state())  # every rank takes part
        if not ctx.is_main:
            return
        trainer = {"state": state.to_dict(), "config": self.config.to_dict(),
                   "world_size": ctx.world_size}
        save_checkpoint(path, Checkpoint(
            model=model.state_dict(), optimizer=optimizer.state_dict(), trainer=trainer,
            ema=None if self.ema is None else self.ema.module.state_dict(),
            best=best_weights, rng=rng_states))

    def _restore(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 state: TrainState, ctx: DistributedContext):
        """Load a checkpoint into model/optimiser/EMA/state/RNG; return the best weights."""
        ckpt = load_checkpoint(path)
        saved_cfg = ckpt.trainer["config"]
        for key in ("batch_size", "seed"):
            if saved_cfg.get(key) != getattr(self.config, key):
                raise ConfigError(
                    f"Cannot resume {path}: it was trained with {key}={saved_cfg.get(key)!r} "
                    f"but this config has {key}={getattr(self.config, key)!r}; the data order "
                    f"would not continue. Use the same {key}, or start a fresh run.")
        if (ckpt.ema is None) != (self.ema is None):
            raise ConfigError(f"Cannot resume {path}: EMA was "
                              f"{'off' if ckpt.ema is None else 'on'} in that run but "
                              f"ema_halflife_images={self.config.ema_halflife_images!r} now.")
        try:
            model.load_state_dict(ckpt.model)
            if self.ema is not None:
                self.ema.module.load_state_dict(ckpt.ema)
            optimizer.load_state_dict(ckpt.optimizer)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ModelFolderError(f"Checkpoint {path} does not fit this model/optimiser: "
                                   f"{exc}. Resume with the same model architecture, or start "
                                   f"afresh with resume=False.") from exc
        saved = TrainState.from_dict(ckpt.trainer["state"])
        for name in ("step", "epoch", "batch_in_epoch", "images_seen", "elapsed_s",
                     "train_time_s", "planned_steps", "best_metric", "best_step",
                     "evals_since_best", "last_loss", "last_metrics", "history"):
            setattr(state, name, getattr(saved, name))
        if ctx.rank < len(ckpt.rng):
            restore_rng_state(*ckpt.rng[ctx.rank])
        return ckpt.best
