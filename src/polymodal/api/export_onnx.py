"""What every ONNX export shares: the output folder, the graphs, the preprocessing spec.

An export folder holds ONNX graphs, ``preprocess.json`` (the frozen transforms as data,
see :func:`preprocess_spec`), ``runtime.py`` and ``cells.py`` (copies of
:mod:`polymodal.api.export_runtime` and :mod:`polymodal.api.export_cells`, which score
rows with onnxruntime and numpy alone) and a README. It is written whole or not at all (:func:`polymodal.files.write_folder`),
and an existing folder is replaced only with ``force`` and only when it is an export
(or empty), so a typo in ``--out`` cannot wipe a user's data.

Graphs are traced with ``torch.onnx.export``'s dynamo exporter (``onnxscript``), the one
torch 2.9+ maintains; the batch dimension is dynamic.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from polymodal.data.batch import Batch
from polymodal.data.number_encoding import NUMERIC_CLIP
from polymodal.errors import ConfigError, ModelFolderError
from polymodal.files import write_folder, write_json, write_text
from polymodal.models.classic import category_numbers

SPEC_FILE = "preprocess.json"
RUNTIME_FILE = "runtime.py"
# What every export ships beside its graphs, and the module of this package each copies.
RUNTIME_SOURCES = {RUNTIME_FILE: "export_runtime.py", "cells.py": "export_cells.py"}
FORMAT = "polymodal-onnx-export"
FORMAT_VERSION = 1
OPSET = 18
FORMATS = ("onnx",)
EXPORT_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
_INSTALL_HINT = 'pip install "polymodal[export]"'


class ExportError(ConfigError):
    """A model (or a part of it) that cannot be exported, with how to refit or what to use."""


def check_export_format(format: str) -> None:
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not an export format; use one of {FORMATS}")


def check_packages(*extra: str) -> None:
    """One error naming the export packages that are not installed."""
    missing = [p for p in (*EXPORT_PACKAGES, *extra) if importlib.util.find_spec(p) is None]
    if missing:
        raise ExportError(f"exporting to ONNX needs {', '.join(missing)}; install them with "
                          f"{_INSTALL_HINT}")


def check_target(out: str | os.PathLike, *, force: bool) -> Path:
    """The output folder, after checking it may be written: new, empty, or (with ``force``)
    an earlier export."""
    target = Path(out).absolute()
    if target.exists() and not target.is_dir():
        raise ModelFolderError(f"--out {target} is a file; pass a new folder for the export")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise ModelFolderError(f"--out {target} exists and is not empty; pass --force to "
                                   "replace an earlier export, or choose a new folder")
        if not (target / SPEC_FILE).is_file():
            raise ModelFolderError(f"--out {target} exists and is not a polymodal export (no "
                                   f"{SPEC_FILE}); refusing to replace it even with --force — "
                                   "choose a new or empty folder")
    return target


def write_export(out: str | os.PathLike, write: Callable[[Path], None], *, force: bool) -> Path:
    """Check ``out``, then ``write(staging)`` and swap the staging folder in atomically."""
    target = check_target(out, force=force)

    def write_all(folder: Path) -> None:
        write(folder)
        for name, source in RUNTIME_SOURCES.items():
            write_text(folder / name, Path(__file__).with_name(source).read_text(encoding="utf-8"))

    return write_folder(target, write_all)


# ---------------------------------------------------------------------------- graphs


class BatchGraph(nn.Module):
    """Named flat tensors -> a :class:`Batch` -> ``fn(batch)``: the ONNX graph's inputs are
    plain arrays (``numeric``, ``categorical``, ``multilabel``, ``text_i``, ``image_i``,
    ``mask_i``) that the runtime builds from raw rows."""

    def __init__(self, module: nn.Module, fn: Callable, inputs: dict[str, tuple[str, str]]):
        super().__init__()
        self.module = module
        self.fn = fn
        self.inputs = inputs  # input name -> (Batch field, column or "")

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        fields: dict = {"text": {}, "image": {}, "mask": {}}
        for (field, column), tensor in zip(self.inputs.values(), tensors, strict=True):
            if column:
                fields[field][column] = tensor
            else:
                fields[field] = tensor
            rows = tensor.shape[0]
        index = torch.arange(rows)
        return self.fn(self.module, Batch(index=index, **fields))


def batch_inputs(spec: dict, columns: list[str], mask_columns: list[str]
                 ) -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, str]]:
    """The graph's inputs for the feature spec's ``columns``: ``{input: (field, column)}``,
    and the input names of the text/image columns and of the masks, by column."""
    inputs: dict[str, tuple[str, str]] = {}
    if spec["n_numeric"]:
        inputs["numeric"] = ("numeric", "")
    if spec["categorical_cardinalities"]:
        inputs["categorical"] = ("categorical", "")
    if spec["multilabel_dim"]:
        inputs["multilabel"] = ("multilabel", "")
    media: dict[str, str] = {}
    for kind, key in (("text", "text_dims"), ("image", "image_shapes")):
        for i, column in enumerate(c for c in spec[key] if c in columns):
            media[column] = f"{kind}_{i}"
            inputs[f"{kind}_{i}"] = (kind, column)
    masks = {column: f"mask_{i}" for i, column in enumerate(mask_columns)}
    inputs.update({name: ("mask", column) for column, name in masks.items()})
    return inputs, media, masks


def example_inputs(spec: dict, inputs: dict[str, tuple[str, str]], rows: int = 2
                   ) -> tuple[torch.Tensor, ...]:
    """Zeros of the right shape and dtype for each input (rows > 1: the batch is dynamic)."""
    shapes = {"numeric": [spec["n_numeric"]], "multilabel": [spec["multilabel_dim"]],
              "categorical": [len(spec["categorical_cardinalities"])]}
    out = []
    for field, column in inputs.values():
        if field == "categorical":
            out.append(torch.ones(rows, *shapes[field], dtype=torch.int64))
        elif field == "mask":
            out.append(torch.ones(rows, dtype=torch.bool))
        elif field == "text":
            out.append(torch.zeros(rows, spec["text_dims"][column]))
        elif field == "image":
            out.append(torch.zeros(rows, *spec["image_shapes"][column]))
        else:
            out.append(torch.zeros(rows, *shapes[field]))
    return tuple(out)


def export_graph(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                 input_names: list[str], output_name: str, dynamic_shapes=None) -> None:
    """Write ``module(*args)`` as an ONNX graph. By default ``module.forward`` takes
    ``*tensors`` whose first (batch) dimension is dynamic; ``dynamic_shapes`` (as
    ``torch.export`` takes them) says otherwise."""
    shapes = dynamic_shapes
    if shapes is None:
        batch = torch.export.Dim("batch", min=1)
        shapes = (tuple({0: batch} for _ in args),)  # forward(*tensors): one varargs entry
    module.eval()
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        _export(module, args, path, input_names, output_name, shapes)
    finally:
        quiet.setLevel(level)


def _export(module, args, path, input_names, output_name, shapes) -> None:
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and tracing notes
        program = torch.onnx.export(module, args, dynamo=True, input_names=input_names,
                                    output_names=[output_name], dynamic_shapes=shapes,
                                    opset_version=OPSET, external_data=False,
                                    verbose=False, optimize=True)
    program.save(str(path))


# ---------------------------------------------------------------------------- spec


def preprocess_spec(transform, columns: list[str], media: dict[str, str],
                    masks: dict[str, str]) -> dict:
    """The frozen transform as data for ``runtime.py`` (README.md documents each field).

    ``columns``: the feature columns the export reads; the numeric, categorical and
    multilabel blocks keep every column of the transform (the graphs index into them).
    """
    schema = transform.schema
    for column in columns:
        modality = schema.modality(column)
        if modality == "audio":
            raise ExportError(f"audio column {column!r} cannot be exported yet: its log-mel "
                              "front end has no numpy runtime; refit without it "
                              f"(--column {column}=ignored)")
    numbers = category_numbers(transform.vocab_)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "columns": {c: schema.modality(c) for c in columns},
        "numeric_clip": NUMERIC_CLIP,
        "numeric": [{"column": c, **s} for c, s in transform.numeric_stats_.items()],
        "datetime": [{"column": c, **s} for c, s in transform.datetime_stats_.items()],
        "categorical": [{"column": c, "vocabulary": list(v),
                         "numbers": (None if c not in numbers else
                                     [None if v != v else float(v) for v in numbers[c]])}
                        for c, v in transform.vocab_.items()],
        "multilabel": [{"column": c, **v} for c, v in transform.tag_vocab_.items()],
        "text": text_entries(transform, media),
        "image": [{"column": c, "input": media[c], "shape": list(transform.image_shapes_[c])}
                  for c in schema.by_modality("image") if c in media],
        "mask_inputs": masks,
    }


MINILM_KINDS = ("minilm", "minilm+hashed")


def text_entries(transform, media: dict[str, str]) -> list[dict]:
    """``preprocess.json``'s ``text`` list: per exported text column its input name and
    how it is embedded (``kind``: hashed, minilm or minilm+hashed; the n-gram buckets, and
    MiniLM's size and token limit; MiniLM's files: :mod:`polymodal.api.export_text`)."""
    embedder = transform.text_embedder_
    entries = []
    for column in transform.schema.by_modality("text"):
        if column not in media:
            continue
        entry = {"column": column, "input": media[column], "kind": embedder.kind,
                 "dim": embedder.hashed_dim}
        if embedder.kind in MINILM_KINDS:
            from polymodal.data.text import MINILM_DIM, _load_minilm

            entry["minilm"] = {"dim": MINILM_DIM,
                               "max_length": int(_load_minilm().max_seq_length)}
        entries.append(entry)
    return entries


def write_spec(folder: Path, spec: dict) -> None:
    write_json(folder / SPEC_FILE, spec)
