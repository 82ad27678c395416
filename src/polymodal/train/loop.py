"""The training loop shared by every polymodal model: ``Trainer(config).fit(model, data, ...)``.

It knows nothing of tables or images: it trains an ``nn.Module`` from a map-style (or
iterable) torch ``Dataset`` and a ``loss_fn(model, batch) -> (loss, logs)``. One explicit
loop, no framework; per step:

1. fetch the next batch (its order is a pure function of ``seed`` and the epoch) and move it
   to the device;
2. set the LR from the warm-up + cosine schedule (:mod:`.schedule`);
3. forward under autocast (bf16 on a GPU that has it, see :mod:`.devices`) and compute
   the loss;
4. share the loss and rank 0's stop/save decisions in one all-reduce, so every process
   takes the same branch; a NaN/inf loss stops here, before it can touch the weights;
5. backward, clip the gradient norm (a non-finite norm also stops), AdamW step, EMA update;
6. log, evaluate when due (rank 0, on the EMA weights when EMA is on, keeping the best),
   run callbacks, checkpoint when due, and check the stop conditions.

``Trainer._fit`` is that loop, written as calls; everything the loop changes as it goes
lives in one ``_Run``, whose methods are the steps.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset

from polymodal.errors import ConfigError
from polymodal.files import write_json
from polymodal.train.batches import ResumableSampler, batch_length, move_to
from polymodal.train.budget import TimeBudget
from polymodal.train.checkpoint import CHECKPOINT_NAME
from polymodal.train.config import TrainConfig
from polymodal.train.devices import autocast_dtype, pins_memory, resolve_device
from polymodal.train.distributed import DistributedContext
from polymodal.train.ema import ModelEMA
from polymodal.train.progress import JsonlLog, ProgressDisplay, progress_enabled
from polymodal.train.resume import restore_run, save_run
from polymodal.train.schedule import build_optimizer, lr_at, set_lr
from polymodal.train.seed import preserved_rng_state, seed_dataloader_worker, seed_everything
from polymodal.train.state import Callback, TrainResult, TrainState

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, float]] | torch.Tensor"]
EvalFn = Callable[[nn.Module], dict[str, float]]
# An eval_fn may return this too: a lower-is-better value (a validation loss) that decides
# between evaluations whose metric is equal, as accuracy often is once a small validation
# set is all right; without it the first of them would be kept and patience would run out
# while the network still improves.
TIE_BREAK = "tie_break_loss"


# --- small helpers ------------------------------------------------------------------------


def _unpack_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    loss, logs = (out if isinstance(out, tuple) else (out, {}))
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConfigError(f"loss_fn must return a scalar tensor (or (scalar tensor, dict of "
                          f"floats)), got {type(loss).__name__}"
                          f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}; "
                          f"reduce the loss with .mean().")
    return loss, {k: float(v) for k, v in (logs or {}).items()}


def _hooks(callbacks: Sequence[Any], name: str) -> list[Callable]:
    """The callbacks' ``name`` methods, skipping callbacks that do not define it."""
    return [hook for cb in callbacks if (hook := getattr(cb, name, None)) is not None]


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters()
               if p.is_floating_point())


def _run_eval(eval_fn: EvalFn, target: nn.Module, budget: TimeBudget,
              metric_name: str) -> dict[str, float]:
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
        if metric_mode not in ("min", "max"):
            raise ConfigError(f"metric_mode={metric_mode!r}: use 'min' (lower is better, e.g. "
                              f"a loss) or 'max' (e.g. accuracy).")
        if resume and self.out_dir is None:
            raise ConfigError("resume=True needs the folder of the earlier run: pass "
                              "Trainer(config, out_dir=...).")
        if not isinstance(train_dataset, IterableDataset) and len(train_dataset) == 0:
            raise ConfigError("train_dataset is empty (0 rows); check the table and filters.")

        wall_start = time.perf_counter()
        device = resolve_device(self.config.device)
        ctx = DistributedContext.from_env(device.type)
        try:
            result = self._fit(_Run(
                self, ctx, device, model, train_dataset, collate_fn=collate_fn,
                loss_fn=loss_fn, eval_fn=eval_fn, metric_name=metric_name,
                metric_mode=metric_mode, resume=resume, callbacks=list(callbacks),
                wall_start=wall_start))
        except BaseException:
            ctx.close()  # some rank failed: the others may never reach the end
            raise
        ctx.barrier()  # every rank past its last collective before rank 0 goes on alone
        ctx.close(in_step=True)  # and, when this joined the group, they leave it in order
        return result

    # --- the loop -----------------------------------------------------------------------

    @staticmethod
    def _fit(run: _Run) -> TrainResult:
        try:
            while run.stop_reason is None:
                run.stop_reason = run.bound_reached()
                if run.stop_reason is not None:
                    break
                for batch in run.epoch_batches():
                    if not run.step(batch):
                        break
                    early_stop = run.maybe_evaluate()
                    run.call_step_hooks()
                    run.maybe_checkpoint()
                    run.show_progress()
                    if run.should_stop(early_stop):
                        break
                else:
                    run.end_epoch()
            run.final_evaluation()
            run.final_checkpoint()
        finally:
            run.close()
        return run.finish()


@dataclass
class _LogWindow:
    """Sums over the steps since the last ``train`` record, which logs their means."""

    loss: float = 0.0
    logs: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, loss: float, logs: dict[str, float], n_images: int) -> None:
        self.loss += loss
        self.steps += 1
        self.images += n_images
        for k, v in logs.items():
            self.logs[k] = self.logs.get(k, 0.0) + v


class _Run:
    """One call of :meth:`Trainer.fit`: what it trains with, where it stands, and its steps.

    Everything the loop changes lives here, so each step is a method rather than a
    closure. ``__init__`` is the set-up; it seeds before anything else and lets a checkpoint
    overwrite the weights and RNG state after that, so a resumed run continues the saved
    stream rather than a fresh one.
    """

    def __init__(self, trainer: Trainer, ctx: DistributedContext, device: torch.device,
                 model: nn.Module, dataset: Dataset, *, collate_fn: Callable | None,
                 loss_fn: LossFn, eval_fn: EvalFn | None, metric_name: str, metric_mode: str,
                 resume: bool, callbacks: list[Any], wall_start: float):
        cfg = trainer.config
        if ctx.enabled and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size={cfg.batch_size} is not divisible by the "
                              f"{ctx.world_size} processes; choose a multiple of "
                              f"{ctx.world_size} so the global batch matches one process.")
        self.cfg, self.ctx, self.device = cfg, ctx, device
        self.dataset, self.loss_fn, self.eval_fn = dataset, loss_fn, eval_fn
        self.metric_name, self.metric_mode = metric_name, metric_mode
        self.callbacks, self.wall_start = callbacks, wall_start
        self.per_rank_batch = cfg.batch_size // ctx.world_size
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        # Distinct streams per rank (dropout, noise), identical to a single process on rank 0.
        seed_everything(cfg.seed + ctx.rank)
        self.amp_dtype = autocast_dtype(device, cfg.precision)
        # fp16 gradients underflow without loss scaling; a step whose scaled gradients
        # overflow is skipped and the scale lowered, rather than stopping the run.
        self.scaler = (torch.amp.GradScaler(device.type) if self.amp_dtype == torch.float16
                       else None)

        # Model, EMA, optimiser, state — then overwrite from the checkpoint if resuming.
        model.to(device)
        self.model = model
        self.ema: ModelEMA | None = None
        if cfg.ema_halflife_images is not None:
            self.ema = ModelEMA(model, batch_size=cfg.batch_size,
                                halflife_images=cfg.ema_halflife_images)
        trainer.ema = self.ema
        self.optimizer = build_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                         betas=cfg.betas)
        self.state = TrainState(out_dir=None if trainer.out_dir is None else str(trainer.out_dir),
                                is_main=ctx.is_main)
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.resumed_from: int | None = None
        self.ckpt_path = trainer.checkpoint_path
        if resume and self.ckpt_path is not None and self.ckpt_path.exists():
            self.best_weights = restore_run(self.ckpt_path, cfg, model, self.optimizer,
                                            self.ema, self.state, ctx)
            self.resumed_from = self.state.step
        elif resume:
            # stacklevel: this __init__, Trainer.fit, then the caller of fit.
            warnings.warn(f"resume=True but {self.ckpt_path} does not exist; starting afresh.",
                          stacklevel=3)
        trainer.state = self.state
        self.wrapped: nn.Module = model
        if ctx.enabled:
            self.wrapped = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            # Only the forward the loss calls; EMA, evaluation and checkpoints use ``model``,
            # whose state dict keeps its names. Static shapes: a short last batch compiles
            # once more, and random draws with an optional generator trace.
            self.wrapped = torch.compile(self.wrapped, dynamic=False)

        # Data order: a seeded sampler per epoch; the DataLoader draws its workers' base
        # seed from its own generator, so it never consumes the global torch RNG.
        iterable = isinstance(dataset, IterableDataset)
        # An iterable that batches itself (a streamed table) reads this rank's share.
        batched = iterable and getattr(dataset, "batches_itself", False)
        if batched:
            dataset.set_shard(rank=ctx.rank, world_size=ctx.world_size,
                              batch_size=self.per_rank_batch)
        # A dataset of this rank's own rows (RankRows) is shuffled whole, in its own order.
        local = getattr(dataset, "rank_local", False)
        self.sampler = None if iterable else ResumableSampler(
            dataset, num_replicas=1 if local else ctx.world_size, rank=0 if local else ctx.rank,
            seed=cfg.seed + ctx.rank if local else cfg.seed)
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            dataset, batch_size=None if batched else self.per_rank_batch, sampler=self.sampler,
            collate_fn=collate_fn, num_workers=cfg.num_workers,
            pin_memory=pins_memory(device), generator=self.loader_generator,
            worker_init_fn=seed_dataloader_worker if cfg.num_workers else None)
        self.steps_per_epoch = len(self.loader) if not iterable or batched else None

        # The plan: steps the cosine decays over, from the step/epoch bounds; a time limit
        # may shorten it once the pace is measured (see budget.py).
        bounds = []
        if cfg.max_steps is not None:
            bounds.append(cfg.max_steps)
        if cfg.max_epochs is not None and self.steps_per_epoch is not None:
            bounds.append(cfg.max_epochs * self.steps_per_epoch)
        self.fixed_plan = min(bounds) if bounds else None
        if cfg.time_limit_s is None or self.state.planned_steps is None:
            self.state.planned_steps = self.fixed_plan
        self.budget = TimeBudget(cfg.time_limit_s, elapsed_offset_s=self.state.elapsed_s,
                                 start=wall_start)

        # Outputs (rank 0 only).
        self.log = JsonlLog(trainer.out_dir if ctx.is_main else None)
        if ctx.is_main and trainer.out_dir is not None:
            write_json(trainer.out_dir / "train_config.json", cfg.to_dict())
        self.bar = ProgressDisplay(ctx.is_main and progress_enabled(cfg.progress),
                                   total_steps=self.state.planned_steps,
                                   start_step=self.state.step)
        self.save_enabled = self.ckpt_path is not None and cfg.checkpoint_every_s is not None
        self.last_save = time.perf_counter()

        # What the loop changes as it goes, besides ``state``.
        self.stop_reason: str | None = None
        self.nan_step: int | None = None
        self.last_eval_step: int | None = None
        self.window = _LogWindow()
        self.images_this_call, self.train_time_this_call = 0, 0.0
        self.estimated_once = False
        self.step_start = time.perf_counter()
        # One collective per step: [loss not finite, stop now, save now, loss].
        self.flags = torch.zeros(4, dtype=torch.float64, device=device)
        model.train()

    # --- where the run stands -------------------------------------------------------------

    def _epochs_done(self) -> float:
        """Passes over the data so far (whole epochs when the epoch length is unknown)."""
        state = self.state
        fraction = state.batch_in_epoch / self.steps_per_epoch if self.steps_per_epoch else 0.0
        return round(state.epoch + fraction, 4)

    def _replan(self) -> None:
        estimate = None
        if self.ctx.is_main:
            estimate = self.budget.estimate_total_steps(
                self.state.step,
                eval_every_steps=self.cfg.eval_every_steps or self.steps_per_epoch)
        estimate = self.ctx.broadcast_int(estimate, self.device)  # every rank needs the same LR
        if estimate is not None:
            self.state.planned_steps = (estimate if self.fixed_plan is None
                                        else min(self.fixed_plan, estimate))

    def bound_reached(self) -> str | None:
        """``"max_steps"`` or ``"max_epochs"`` once that bound is reached, else ``None``."""
        cfg, state = self.cfg, self.state
        if cfg.max_steps is not None and state.step >= cfg.max_steps:
            return "max_steps"
        if cfg.max_epochs is not None and state.epoch >= cfg.max_epochs:
            return "max_epochs"
        return None

    def epoch_batches(self) -> Iterator[Any]:
        """The current epoch's batches, from where it stands (mid-epoch after a resume)."""
        cfg, state = self.cfg, self.state
        self.loader_generator.manual_seed(cfg.seed + state.epoch)
        if hasattr(self.dataset, "set_epoch"):
            # Per-item augmentation draws from seed + epoch + index: new each epoch,
            # the same again after a resume.
            self.dataset.set_epoch(state.epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(state.epoch)
            self.sampler.skip_samples = state.batch_in_epoch * self.per_rank_batch
            batches: Iterable = self.loader
        else:  # an iterable dataset can only be fast-forwarded by reading it
            batches = itertools.islice(self.loader, state.batch_in_epoch, None)
        # A step's time runs from asking for its batch to the next ask, so loading counts.
        self.step_start = time.perf_counter()
        for batch in batches:
            yield batch
            self.step_start = time.perf_counter()

    # --- one step -------------------------------------------------------------------------

    def step(self, batch: Any) -> bool:
        """One optimiser step on ``batch``; False when a NaN/inf loss or gradient stopped
        the run (the weights are then those before the step)."""
        cfg, ctx, flags, optimizer = self.cfg, self.ctx, self.flags, self.optimizer
        batch = move_to(batch, self.device)
        lr = lr_at(self.state.step, base_lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                   planned_steps=self.state.planned_steps, min_lr_ratio=cfg.min_lr_ratio)
        set_lr(optimizer, lr)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                            enabled=self.amp_dtype is not None):
            loss, logs = _unpack_loss(self.loss_fn(self.wrapped, batch))
        flags.zero_()
        flags[0] = float(not bool(torch.isfinite(loss.detach())))
        if ctx.is_main:
            flags[1] = float(self.budget.should_stop(final_eval=self.eval_fn is not None))
            flags[2] = float(self.save_enabled and time.perf_counter() - self.last_save
                             >= cfg.checkpoint_every_s)
        flags[3] = loss.detach().double()
        ctx.sum_(flags)
        if flags[0] > 0:
            self.stop_reason, self.nan_step = "nan_loss", self.state.step
            return False
        if self.scaler is not None:
            return self._scaled_step(loss, lr, logs, batch)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), cfg.grad_clip_norm or math.inf)
        if not bool(torch.isfinite(grad_norm)):
            # Gradients are all-reduced, so every rank sees the same norm.
            optimizer.zero_grad(set_to_none=True)
            self.stop_reason, self.nan_step = "nan_loss", self.state.step
            return False
        optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model, self.state.step)
        self._account(batch, lr, logs)
        return True

    def _scaled_step(self, loss: torch.Tensor, lr: float, logs: dict, batch: Any) -> bool:
        """The fp16 step: backward through the scaled loss; the scaler skips the update
        when the gradients overflowed (and lowers the scale), so that is no failure."""
        scaler, optimizer = self.scaler, self.optimizer
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip_norm or math.inf)
        scaler.step(optimizer)
        scaler.update()
        if self.ema is not None:
            self.ema.update(self.model, self.state.step)
        self._account(batch, lr, logs)
        return True

    def _account(self, batch: Any, lr: float, logs: dict[str, float]) -> None:
        """Count the step just taken; log the window's means and re-plan when due."""
        cfg, state = self.cfg, self.state
        n_images = batch_length(batch) * self.ctx.world_size
        state.step += 1
        state.batch_in_epoch += 1
        state.images_seen += n_images
        self.images_this_call += n_images
        now = time.perf_counter()
        self.budget.record_step(now - self.step_start)
        state.train_time_s += now - self.step_start
        self.train_time_this_call += now - self.step_start
        state.last_loss = float(self.flags[3]) / self.ctx.world_size
        self.window.add(state.last_loss, logs, n_images)
        if state.step % cfg.log_every_steps == 0:
            self._log_window(lr, now)
        if cfg.time_limit_s is not None and not self.estimated_once \
                and self.budget.ready_to_estimate():
            self.estimated_once = True
            self._replan()

    def _log_window(self, lr: float, now: float) -> None:
        window, state = self.window, self.state
        record = {"event": "train", "step": state.step, "epoch": self._epochs_done(),
                  "lr": lr, "loss": window.loss / window.steps,
                  **{k: v / window.steps for k, v in window.logs.items()},
                  "images_per_s": window.images / max(1e-9, now - window.start),
                  "elapsed_s": round(self.budget.elapsed_s, 3)}
        if self.ctx.is_main:
            state.history.append(record)
            self.log.write(record)
        self.window = _LogWindow(start=now)

    # --- after a step: evaluation, callbacks, checkpoint, stop conditions -----------------

    def maybe_evaluate(self) -> bool:
        """Evaluate when ``eval_every_steps`` says so; True when early stopping triggers."""
        every = self.cfg.eval_every_steps
        return every is not None and self.state.step % every == 0 and self._evaluate()

    def call_step_hooks(self) -> None:
        hooks = _hooks(self.callbacks, "on_step_end") if self.ctx.is_main else []
        if hooks:
            with preserved_rng_state():
                for hook in hooks:
                    hook(self.state, self.model)

    def maybe_checkpoint(self) -> None:
        # Rank 0 decided before the step, in the shared flags, so every rank saves together.
        if self.flags[2] > 0:
            self._save()

    def show_progress(self) -> None:
        state = self.state
        info = "" if state.last_loss is None else f"loss {state.last_loss:.4g}"
        if state.best_metric is not None:
            info += f"  best {self.metric_name} {state.best_metric:.4g}"
        self.bar.update(state.step, total_steps=state.planned_steps, info=info)

    def should_stop(self, early_stop: bool) -> bool:
        """Set ``stop_reason`` when the run ends after this step; True when it does."""
        cfg = self.cfg
        if early_stop:
            self.stop_reason = "early_stopping"
        elif self.flags[1] > 0:
            self.stop_reason = "time_limit"
        elif cfg.max_steps is not None and self.state.step >= cfg.max_steps:
            self.stop_reason = "max_steps"
        return self.stop_reason is not None

    def end_epoch(self) -> None:
        """The epoch ran out of batches: move to the next, evaluating if per epoch."""
        self.state.epoch += 1
        self.state.batch_in_epoch = 0
        if self.cfg.eval_every_steps is None and self._evaluate():
            self.stop_reason = "early_stopping"

    # --- evaluation and checkpoints -------------------------------------------------------

    def _evaluate(self) -> bool:
        """Evaluate on rank 0; True (on every rank) when early stopping triggers."""
        state = self.state
        self.last_eval_step = state.step
        if self.eval_fn is None:
            return False
        stop = False
        if self.ctx.is_main:
            target = self.ema.module if self.ema is not None else self.model
            metrics = _run_eval(self.eval_fn, target, self.budget, self.metric_name)
            self._keep_if_best(metrics[self.metric_name], target, metrics.get(TIE_BREAK))
            state.last_metrics = metrics
            record = {"event": "eval", "step": state.step, "epoch": self._epochs_done(),
                      "lr": self.optimizer.param_groups[0]["lr"], "loss": state.last_loss,
                      "metrics": metrics, "elapsed_s": round(self.budget.elapsed_s, 3)}
            state.history.append(record)
            self.log.write(record)
            with preserved_rng_state():
                for hook in _hooks(self.callbacks, "on_eval"):
                    hook(state, target)
            patience = self.cfg.early_stopping_patience
            stop = patience is not None and state.evals_since_best >= patience
        stop = self.ctx.broadcast_flag(stop, self.device)
        if self.cfg.time_limit_s is not None:
            self._replan()
        return stop

    def _keep_if_best(self, value: float, target: nn.Module,
                      tie_break: float | None = None) -> None:
        state = self.state
        better = state.best_metric is None or (
            value < state.best_metric if self.metric_mode == "min"
            else value > state.best_metric)
        if (not better and value == state.best_metric and tie_break is not None
                and math.isfinite(tie_break)):
            better = state.best_tie_break is None or tie_break < state.best_tie_break
        if better and math.isfinite(value):
            state.best_metric, state.best_step = value, state.step
            state.best_tie_break = tie_break
            state.evals_since_best = 0
            self.best_weights = _copy_state(target)
        else:
            state.evals_since_best += 1

    def _save(self) -> None:
        self.state.elapsed_s = self.budget.elapsed_s
        save_run(self.ckpt_path, self.cfg, self.model, self.optimizer, self.ema, self.state,
                 self.best_weights, self.ctx)
        self.last_save = time.perf_counter()

    def final_evaluation(self) -> None:
        """Evaluate the last weights, unless the last step was just evaluated or was NaN."""
        if self.stop_reason != "nan_loss" and self.last_eval_step != self.state.step:
            self._evaluate()

    def final_checkpoint(self) -> None:
        if self.ckpt_path is not None and (self.stop_reason != "nan_loss"
                                           or _all_finite(self.model)):
            self._save()  # never a checkpoint with NaN weights

    # --- the end --------------------------------------------------------------------------

    def close(self) -> None:
        self.bar.close()
        self.wrapped = self.model  # the DDP wrapper holds the process group: let it go

    def finish(self) -> TrainResult:
        """Hand back the weights to use, the same on every rank, and what happened."""
        cfg, ctx, state, model = self.cfg, self.ctx, self.state, self.model
        if self.best_weights is not None and cfg.restore_best_weights \
                and self.eval_fn is not None:
            model.load_state_dict(self.best_weights)
        elif self.ema is not None:
            model.load_state_dict(self.ema.module.state_dict())
        # Evaluation ran on rank 0 only: share its outcome so every rank returns the same.
        ctx.broadcast_module_(model)
        state.best_metric, state.best_step, state.history = ctx.broadcast_object(
            (state.best_metric, state.best_step, state.history))
        state.elapsed_s = self.budget.elapsed_s
        wall_s = time.perf_counter() - self.wall_start
        result = TrainResult(
            stop_reason=self.stop_reason, steps=state.step, epochs=self._epochs_done(),
            images_seen=state.images_seen, best_metric=state.best_metric,
            best_step=state.best_step, history=list(state.history), wall_s=wall_s,
            images_per_s=self.images_this_call / max(1e-9, self.train_time_this_call),
            nan_step=self.nan_step, resumed_from_step=self.resumed_from)
        self.log.write({"event": "end", "stop_reason": self.stop_reason, "step": state.step,
                        "nan_step": self.nan_step, "best_metric": state.best_metric,
                        "best_step": state.best_step, "wall_s": round(wall_s, 3),
                        "images_per_s": result.images_per_s})
        return result
