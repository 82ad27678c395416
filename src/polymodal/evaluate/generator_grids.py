"""Sample grids of a generator network: a fixed grid of conditions and noise, written as
``samples/step_XXXXXX.png`` and ``samples/latest.png`` while it trains and when it is saved.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from polymodal.data.generator_inputs import condition_batch
from polymodal.data.generator_rows import GRID_PER_ROW, grid_frame
from polymodal.data.image_encoding import tensor_to_uint8
from polymodal.data.transforms import TableTransform
from polymodal.evaluate.images import make_grid, save_png
from polymodal.models.generator_net import batch_device, integrate


def grid_size(info: dict, grid: dict) -> int:
    """Images in the sample grid of a generator with conditions ``info`` and grid ``grid``."""
    return grid_frame(info, grid)[2] * GRID_PER_ROW


def write_sample_grid(network: nn.Module, out_dir: Path, step: int, *,
                      transform: TableTransform, info: dict, grid: dict,
                      image_shape: tuple[int, int, int], sampling: dict) -> None:
    """Sample the fixed grid with ``network`` into ``out_dir/samples/``.

    ``info``/``grid``: the generator's ``conditions_`` and its grid rows; ``sampling``:
    the keyword arguments of :func:`~polymodal.models.generator_net.integrate`
    (``num_steps``, ``guidance``, ``sampler``, ``guidance_interval``, ``shift``).
    """
    frame, labels, num_rows = grid_frame(info, grid)
    cond = None
    if frame is not None:
        batch = condition_batch(frame, transform, info)
        with torch.no_grad():
            cond = network.condition(batch.to(batch_device(network)))
    noise = torch.randn(num_rows * GRID_PER_ROW, *image_shape,
                        generator=torch.Generator().manual_seed(0))
    was_training = network.training
    network.eval()
    try:
        x = integrate(network.unet, cond, noise, **sampling)
    finally:
        network.train(was_training)
    scale = max(1, 64 // image_shape[1])
    image = make_grid(tensor_to_uint8(x), ncols=GRID_PER_ROW, scale=scale,
                      row_labels=labels or None)
    save_png(image, out_dir / "samples" / f"step_{step:06d}.png")
    save_png(image, out_dir / "samples" / "latest.png")
