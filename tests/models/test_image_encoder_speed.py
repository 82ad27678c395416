"""The default ImageEncoder stays cheap enough to train on a 2-core CPU.

Budgets are in multiply-adds and parameters, not seconds: counts are exact on any machine,
while timings on a shared CPU are noise. The default encoder for a 28x28 grey image was
chosen at ~2.3 M multiply-adds (``bench/image_recipe_probe.py``); the previous ResNet
cost 37 M and trained ~8x slower, so a budget of 3 M catches a regression of that kind.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from polymodal.models.encoders import ImageEncoder

pytestmark = pytest.mark.usefixtures("one_thread")

MACS_BUDGET_28PX = 3_000_000
PARAMS_BUDGET_28PX = 600_000


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of a single image (convolutions and linears)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
            total += output[0].numel() * per_output // module.groups
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return total


def test_default_28px_encoder_is_within_budget():
    encoder = ImageEncoder(1, 28)
    macs = count_macs(encoder, (1, 28, 28))
    params = sum(p.numel() for p in encoder.parameters())
    assert 1_000_000 < macs <= MACS_BUDGET_28PX, macs
    assert params <= PARAMS_BUDGET_28PX, params


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64), (3, 128, 128)])
def test_larger_images_cost_about_the_same_as_32px(shape):
    # The stem downsamples big images early, so cost grows far slower than pixel count.
    base = count_macs(ImageEncoder(3, 32), (3, 32, 32))
    macs = count_macs(ImageEncoder(3, shape[1:]), shape)
    assert macs <= 3 * base, (shape, macs, base)


def test_width_scales_the_cost():
    small = count_macs(ImageEncoder(1, 28, width=16), (1, 28, 28))
    default = count_macs(ImageEncoder(1, 28), (1, 28, 28))
    assert small < default / 2


def test_rows_are_encoded_independently_in_train_mode():
    # GroupNorm, not BatchNorm: a row's embedding must not depend on the other rows.
    torch.manual_seed(0)
    encoder = ImageEncoder(1, 28).train()
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    together = encoder(images)
    alone = torch.cat([encoder(images[i:i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.equal(encoder.eval()(images), together)  # no dropout: train == eval


def test_default_encoder_fits_a_small_batch():
    # One-batch overfit: 32 noisy images of 4 classes, learned in a few dozen steps.
    torch.manual_seed(0)
    prototypes = torch.rand(4, 1, 28, 28) * 2 - 1
    labels = torch.arange(32) % 4
    images = prototypes[labels] + 0.5 * torch.randn(32, 1, 28, 28)
    model = nn.Sequential(ImageEncoder(1, 28, out_dim=32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert (model(images).argmax(1) == labels).all()
