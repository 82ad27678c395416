"""``polymodal export``: a saved model folder as a deployable ONNX export.

The folder's kind decides the exporter (:meth:`polymodal.api.Predictor.export` or
:meth:`polymodal.api.Generator.export`); the output folder is checked before the model
is loaded, so a refusal costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from polymodal.api.export_onnx import check_export_format, check_packages, check_target
from polymodal.api.model_folder import folder_kind


def export_model(model_dir: str | os.PathLike, out: str | os.PathLike, *, format: str = "onnx",
                 force: bool = False) -> tuple[str, Path]:
    """Export the model saved in ``model_dir`` to ``out``; returns (kind, the folder)."""
    check_export_format(format)
    check_packages()
    kind = folder_kind(Path(model_dir))
    check_target(out, force=force)
    if kind == "predictor":
        from polymodal.api.predictor import Predictor

        return kind, Predictor.load(model_dir).export(out, format=format, force=force)
    from polymodal.api.generator import Generator

    return kind, Generator.load(model_dir).export(out, format=format, force=force)
