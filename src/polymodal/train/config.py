"""``TrainConfig``: every knob of the training loop, with defaults that run a small CPU job.

The config round-trips through JSON (:meth:`TrainConfig.to_dict` / :meth:`from_dict`), is
saved with every run (``train_config.json``) and inside every checkpoint. An unknown key is
an error that names it; :meth:`TrainConfig.validate` reports every problem at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from dataclasses import dataclass
from typing import Any

from polymodal.errors import ConfigError
from polymodal.train.devices import DEVICES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES_HINT = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
CPUINFO = "/proc/cpuinfo"


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware tiles (Intel AMX: Sapphire Rapids and
    later), where bf16 autocast trains small convolutional networks much faster than fp32
    (see bench/RESULTS.md, 'Ad-hoc probes'). Without AMX, bf16 convolutions are usually no
    faster than fp32, so fp32 stays the choice there. oneDNN's own ``ONEDNN_MAX_CPU_ISA``
    capped below AMX (e.g. ``AVX2``, to measure what a plain AVX2 CPU does) counts as none."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa not in ("ALL", "DEFAULT") and "AMX" not in isa:
        return False
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:  # not Linux, or /proc not mounted
        pass
    return False


# Below this image side bf16 bought nothing measurable (8x8 digits); from 28x28 on it did
# (see cpu_has_fast_bf16 and bench/RESULTS.md, 'Ad-hoc probes').
BF16_MIN_IMAGE_SIDE = 24


def bf16_pays_for_images(shapes) -> bool:
    """Whether to train a network over images of these ``(C, H, W)`` shapes in bf16: on a
    CPU with AMX, when the smallest image side is at least :data:`BF16_MIN_IMAGE_SIDE`."""
    sides = [min(shape[-2:]) for shape in shapes]
    return bool(sides) and min(sides) >= BF16_MIN_IMAGE_SIDE and cpu_has_fast_bf16()


@dataclass
class TrainConfig:
    """How to train: batch, optimiser, schedule, budget, EMA, evaluation and checkpoints."""

    batch_size: int = 32
    """Global batch size (summed over all processes under ``torchrun``)."""

    lr: float = 1e-3
    """Peak learning rate of AdamW, reached at the end of the warm-up."""

    weight_decay: float = 0.01
    """AdamW decoupled weight decay; biases, norms and embeddings get none."""

    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW moment decay rates (beta1, beta2)."""

    warmup_steps: int = 20
    """Optimiser steps of linear LR warm-up from ~0 to ``lr``."""

    min_lr_ratio: float = 0.1
    """Floor of the cosine decay, as a fraction of ``lr`` (0 decays to zero)."""

    grad_clip_norm: float | None = 1.0
    """Clip the global gradient L2 norm to this; ``None`` disables clipping."""

    max_epochs: int | None = 10
    """Stop after this many passes over the data; ``None`` for no epoch limit."""

    max_steps: int | None = None
    """Stop after this many optimiser steps; ``None`` for no step limit."""

    time_limit_s: float | None = None
    """Wall-clock budget in seconds for the whole run, resumed parts included; the loop
    stops early enough that the final evaluation also fits. ``None`` for no limit."""

    ema_halflife_images: float | None = None
    """Half-life of the weight EMA in training images (Karras et al. 2024, EDM2, Sec. 3.1);
    ``None`` disables the EMA. Evaluation and the returned model then use EMA weights."""

    eval_every_steps: int | None = None
    """Run ``eval_fn`` every this many steps; ``None`` evaluates once per epoch."""

    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement; ``None`` never stops early."""

    restore_best_weights: bool = True
    """At the end, load the weights that scored best on the metric (needs an ``eval_fn``)."""

    checkpoint_every_s: float | None = 300.0
    """Save a resumable checkpoint at most this often (seconds; 0 = after every step);
    one is always saved at the end. ``None`` saves only at the end. Needs ``out_dir``."""

    seed: int = 0
    """Seed of every RNG (python, numpy, torch) and of the data order."""

    deterministic: bool = False
    """Also call ``torch.use_deterministic_algorithms(True)`` (slower on GPU; CPU runs are
    bitwise reproducible without it). A process-wide switch, so off by default."""

    precision: str = "auto"
    """'auto' (on a CUDA GPU: bf16 autocast where it has bf16, else fp16 with loss scaling;
    fp32 elsewhere), 'fp32', 'bf16' or 'fp16' (CUDA only)."""

    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'. Under
    ``torchrun`` each process uses ``cuda:LOCAL_RANK`` when CUDA is chosen."""

    num_workers: int = 0
    """DataLoader worker processes (0 loads in the training process)."""

    compile: bool = False
    """``torch.compile`` the forward the loss calls (the model's weights, EMA and
    checkpoints are unchanged). Compiling costs seconds up front and pays back only on long
    runs; off by default (bench/RESULTS.md, 'compile')."""

    log_every_steps: int = 10
    """Write a log record (mean loss, LR, throughput) every this many steps."""

    progress: bool = True
    """Show a live progress bar on stderr (only when it is a terminal and not under CI)."""

    # --- construction -------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        """The configurable field names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from plain values (e.g. parsed JSON); unknown keys are an error."""
        if not isinstance(values, dict):
            raise ConfigError(
                f"TrainConfig.from_dict expects a dict of field values, got "
                f"{type(values).__name__}: {values!r}."
            )
        known = cls.field_names()
        unknown = [k for k in values if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(
                f"Unknown training option(s) {', '.join(hints)}. "
                f"Known options: {', '.join(known)}."
            )
        values = dict(values)
        if "betas" in values and isinstance(values["betas"], list):
            values["betas"] = tuple(values["betas"])  # JSON has no tuples
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values of every field."""
        out = {name: getattr(self, name) for name in self.field_names()}
        out["betas"] = list(self.betas)
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (unknown names are an error)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # --- validation ---------------------------------------------------------------------

    def validate(self) -> TrainConfig:
        """Check every field; raise one ``ConfigError`` listing all problems. Returns self."""
        problems: list[str] = []

        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                problems.append(f"{name}={getattr(self, name)!r}: {rule}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size",
             "must be an integer >= 1")
        need(is_num(self.lr) and self.lr > 0, "lr", "must be a number > 0, e.g. 1e-3")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay",
             "must be a number >= 0")
        need(isinstance(self.betas, tuple | list) and len(self.betas) == 2
             and all(is_num(b) and 0 <= b < 1 for b in self.betas), "betas",
             "must be two numbers in [0, 1), e.g. (0.9, 0.999)")
        need(is_int(self.warmup_steps) and self.warmup_steps >= 0, "warmup_steps",
             "must be an integer >= 0")
        need(is_num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio",
             "must be in [0, 1]")
        need(self.grad_clip_norm is None or (is_num(self.grad_clip_norm)
                                             and self.grad_clip_norm > 0),
             "grad_clip_norm", "must be a number > 0, or None to disable clipping")
        for name in ("max_epochs", "max_steps", "eval_every_steps", "early_stopping_patience"):
            value = getattr(self, name)
            need(value is None or (is_int(value) and value >= 1), name,
                 "must be an integer >= 1, or None")
        need(self.time_limit_s is None or (is_num(self.time_limit_s) and self.time_limit_s > 0),
             "time_limit_s", "must be a number of seconds > 0, or None")
        if self.max_epochs is None and self.max_steps is None and self.time_limit_s is None:
            problems.append("max_epochs, max_steps and time_limit_s are all None: the run would "
                            "never end; set at least one of them")
        need(self.ema_halflife_images is None
             or (is_num(self.ema_halflife_images) and self.ema_halflife_images > 0),
             "ema_halflife_images", "must be a number of images > 0, or None to disable EMA")
        need(self.checkpoint_every_s is None
             or (is_num(self.checkpoint_every_s) and self.checkpoint_every_s >= 0),
             "checkpoint_every_s", "must be a number of seconds >= 0, or None")
        need(is_int(self.seed) and self.seed >= 0, "seed", "must be an integer >= 0")
        need(self.precision in PRECISIONS, "precision",
             f"must be one of {', '.join(map(repr, PRECISIONS))}")
        need(isinstance(self.device, str) and (
            self.device in DEVICES or self.device.startswith("cuda:")),
             "device", f"must be {DEVICES_HINT}")
        need(is_int(self.num_workers) and self.num_workers >= 0, "num_workers",
             "must be an integer >= 0")
        need(is_int(self.log_every_steps) and self.log_every_steps >= 1, "log_every_steps",
             "must be an integer >= 1")
        for name in ("progress", "deterministic", "restore_best_weights", "compile"):
            need(isinstance(getattr(self, name), bool), name, "must be True or False")
        if problems:
            raise ConfigError("Invalid training config:\n  - " + "\n  - ".join(problems))
        return self
