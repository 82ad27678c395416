"""``Generator.export``: the denoising UNet and the condition encoder as ONNX graphs.

``unet.onnx`` maps ``(x, t, cond)`` to the flow's velocity; ``condition.onnx`` maps the
encoded condition columns (as :mod:`polymodal.api.export_onnx` lays them out) to the
condition vector, zero where no column is present (the null condition of guidance).
``runtime.py`` samples with them: the Euler/Heun steps and the guidance of
:mod:`polymodal.models.samplers`, in numpy.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from polymodal.api.export_onnx import (
    BatchGraph,
    batch_inputs,
    check_packages,
    example_inputs,
    export_graph,
    preprocess_spec,
    write_export,
    write_spec,
)
from polymodal.api.export_readme import generator_readme
from polymodal.api.export_text import needs_minilm, write_minilm


class _Velocity(nn.Module):
    """The UNet with the exported signature: (x, t[, cond]) -> velocity."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.unet(*tensors)  # x (B, C, H, W), t (B,)[, cond (B, D)]


def export_generator(g, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the fitted generator ``g`` as an ONNX export folder ``out`` (see the module)."""
    check_packages()
    spec = g.transform_.feature_spec()
    conditions = list(g.conditions_)
    inputs, media, masks = batch_inputs(spec, conditions, conditions)
    pre = preprocess_spec(g.transform_, conditions, media, masks)
    channels, height, width = g.image_shape_
    pre.update({
        "kind": "generator", "image_column": g.image, "image_shape": [channels, height, width],
        "sampling": asdict(g._sampling()),
        "unet": {"file": "unet.onnx", "cond_dim": g.unet_.cond_dim},
        "condition": None if g.condition_encoder_ is None else {
            "file": "condition.onnx", "columns": conditions, "inputs": list(inputs)},
    })
    pre["sampling"]["guidance_interval"] = list(pre["sampling"]["guidance_interval"])

    def write(folder: Path) -> None:
        x = torch.zeros(2, channels, height, width)
        t = torch.full((2,), 0.5)
        args, names = (x, t), ["x", "t"]
        if g.condition_encoder_ is not None:
            args, names = (x, t, torch.zeros(2, g.unet_.cond_dim)), ["x", "t", "cond"]
            graph = BatchGraph(g.condition_encoder_, lambda enc, batch: enc(batch), inputs)
            export_graph(graph, example_inputs(spec, inputs), folder / "condition.onnx",
                         list(inputs), "cond")
        export_graph(_Velocity(g.unet_), args, folder / "unet.onnx", names, "velocity")
        if needs_minilm(pre):
            write_minilm(folder)
        write_spec(folder, pre)
        (folder / "README.md").write_text(generator_readme(g, pre), encoding="utf-8")

    return write_export(out, write, force=force)
