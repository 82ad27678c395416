"""Sample grids of a generator network: a fixed grid of conditions and noise, written as
``samples/step_XXXXXX.png`` and ``samples/latest.png`` while it trains and when it is saved.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from polymodal.data.generator_inputs import condition_batch
from polymodal.data.generator_rows import GRID_PER_ROW, grid_frame
from polymodal.data.image_encoding import tensor_to_uint8
from polymodal.data.transforms import TableTransform
from polymodal.evaluate.images import make_grid, save_png
from polymodal.models.generator_net import batch_device, integrate
from polymodal.train.budget import TimeBudget
from polymodal.train.generator_fit import final_grid_steps


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


def write_final_grid(network: nn.Module, out_dir: Path, result, *, budget: TimeBudget,
                     sampling, say, **grid_arguments) -> dict:
    """The final sample grid of a fit, with fewer sampler steps (or none) when the full
    grid would not fit in what is left of ``budget``; returns the training-log event that
    says which. ``sampling``: the generator's ``SamplingRecipe``; ``say``: its console."""
    steps = final_grid_steps(images_per_s=result.images_per_s, left_s=budget.left_s(),
                             num_images=grid_size(grid_arguments["info"], grid_arguments["grid"]),
                             num_steps=sampling.num_steps, sampler=sampling.sampler,
                             guidance=sampling.guidance)
    event = {"event": "final_grid", "num_steps": steps, "time_left_s": round(budget.left_s(), 3)}
    if steps == 0:
        say("[yellow]note:[/] no final sample grid: the time limit has no room left for it")
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)  # so save() makes none
        return event
    if steps < sampling.num_steps:
        say(f"final sample grid with {steps} sampler steps instead of {sampling.num_steps}, "
            "to fit the time limit")
    sampling_args = {**dataclasses.asdict(sampling), "num_steps": steps}
    write_sample_grid(network, out_dir, result.steps, sampling=sampling_args, **grid_arguments)
    return event
