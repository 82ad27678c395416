"""AdamW with sensible parameter groups, and the warm-up + cosine learning-rate schedule.

The schedule is a plain function of the step: the loop sets each group's LR before every
step, so the scheduler's whole state is the step counter and the planned number of steps
(both saved in checkpoints). No ``torch.optim.lr_scheduler`` object to keep in sync.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from polymodal.errors import ConfigError

# Parameters of these layers are scales/shifts or lookup rows, not weights of a linear
# map: decaying them towards 0 hurts (Loshchilov & Hutter 2019; nanoGPT does the same).
_NO_DECAY_MODULES = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.Embedding,
    nn.EmbeddingBag,
)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights, and biases/norms/embeddings without decay."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue  # tied weights appear once
            seen.add(id(param))
            rms_norm = type(module).__name__.endswith("RMSNorm")
            if isinstance(module, _NO_DECAY_MODULES) or rms_norm or name.endswith("bias") \
                    or param.ndim < 2:
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float,
                    betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters (see :func:`parameter_groups`)."""
    groups = parameter_groups(model, weight_decay)
    if not groups:
        raise ConfigError("The model has no trainable parameters (every requires_grad is "
                          "False): unfreeze at least one module before training.")
    # The fused kernel updates every tensor in one pass, several times faster on CPU than
    # the default per-tensor loop (see bench/RESULTS.md, 'Ad-hoc probes'). Same update rule.
    params = [p for group in groups for p in group["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=fused or None)


def lr_at(step: int, *, base_lr: float, warmup_steps: int, planned_steps: int | None,
          min_lr_ratio: float) -> float:
    """Learning rate for optimiser step ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, then a half cosine from ``base_lr`` down to
    ``min_lr_ratio * base_lr`` at ``planned_steps`` (Loshchilov & Hutter 2017, SGDR Eq. 5,
    one cycle), flat after that. With ``planned_steps=None`` (length not known yet) the
    LR stays at ``base_lr`` after the warm-up.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if planned_steps is None:
        return base_lr
    decay_steps = max(1, planned_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr
