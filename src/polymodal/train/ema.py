"""Exponential moving average of model weights, parameterised by a half-life in images.

Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models"
(EDM2), Sec. 3.1: an EMA is best described by how many training images it takes for a
weight's contribution to halve, which makes it independent of the batch size:

    decay per step  beta = 0.5 ** (batch_size / halflife_images)

Early in training the average would be dominated by the random initial weights, so the
decay is ramped in as ``min(beta, (1 + step) / (10 + step))`` (the warm-up used by
TensorFlow's ``ExponentialMovingAverage(num_updates=...)``).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


def ema_decay(step: int, *, batch_size: int, halflife_images: float) -> float:
    """EMA decay applied at optimiser step ``step`` (0-based)."""
    beta = 0.5 ** (batch_size / halflife_images)
    return min(beta, (1 + step) / (10 + step))


class ModelEMA:
    """A frozen copy of a model whose weights track an EMA of the live model's weights.

    Floating-point parameters and buffers are averaged; integer buffers (e.g. BatchNorm's
    ``num_batches_tracked``) are copied.
    """

    def __init__(self, model: nn.Module, *, batch_size: int, halflife_images: float):
        self.batch_size = batch_size
        self.halflife_images = halflife_images
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        """Fold the live ``model``'s weights into the average; return the decay used."""
        decay = ema_decay(step, batch_size=self.batch_size, halflife_images=self.halflife_images)
        averaged, live = [], []
        pairs = itertools.chain(zip(self.module.parameters(), model.parameters(), strict=True),
                                zip(self.module.buffers(), model.buffers(), strict=True))
        for avg, value in pairs:
            if avg.is_floating_point():
                averaged.append(avg)
                live.append(value.detach().to(avg.dtype))
            else:
                avg.copy_(value)
        if averaged:
            # avg = decay * avg + (1 - decay) * value, for all tensors in one call.
            torch._foreach_lerp_(averaged, live, 1.0 - decay)
        return decay
