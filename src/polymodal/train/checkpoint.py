"""Resumable checkpoints: one safetensors file, written atomically, never pickled.

Everything needed to continue a run bit for bit lives in ``checkpoint.safetensors``:

- tensors under prefixes: ``model/`` (live weights), ``ema/`` (EMA weights), ``best/``
  (the best-scoring evaluated weights), ``optim/<param>/<key>`` (AdamW moments and step
  counts), ``rng/<rank>/<name>`` (torch CPU/CUDA RNG states of each process);
- everything else as JSON in the file's metadata: the trainer state (step, epoch, position
  within the epoch, best metric, history, plan), the optimiser's param groups, the python
  and numpy RNG states, and the resolved ``TrainConfig``.

A single file makes the checkpoint atomic as a whole: it is written to a temporary file in
the same folder, fsynced, then ``os.replace``d over the old one (:mod:`polymodal.files`), so a
crash mid-save leaves the previous checkpoint intact. Loading reads tensors and JSON only
(no pickle, hence no code from the file runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from polymodal.errors import ModelFolderError
from polymodal.files import atomic_path

CHECKPOINT_NAME = "checkpoint.safetensors"
FORMAT_VERSION = 1
_METADATA_KEY = "polymodal.train"


@dataclass
class Checkpoint:
    """The contents of a checkpoint, as plain state dicts and JSON-ready values."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    trainer: dict[str, Any]
    ema: dict[str, torch.Tensor] | None = None
    best: dict[str, torch.Tensor] | None = None
    rng: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = field(default_factory=list)
    """One (JSON values, tensors) pair per process rank, from ``seed.capture_rng_state``."""


def _cpu_copies(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    # Clone: safetensors refuses tensors that share memory (tied weights, views).
    return {f"{prefix}{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for index, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{index}/{key}"] = value.detach().to("cpu", copy=True)
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically; the previous file survives any failure."""
    tensors = _cpu_copies(ckpt.model, "model/")
    if ckpt.ema is not None:
        tensors.update(_cpu_copies(ckpt.ema, "ema/"))
    if ckpt.best is not None:
        tensors.update(_cpu_copies(ckpt.best, "best/"))
    optim_tensors, optim_json = _split_optimizer(ckpt.optimizer)
    tensors.update(optim_tensors)
    rng_json = []
    for rank, (values, rng_tensors) in enumerate(ckpt.rng):
        rng_json.append(values)
        tensors.update(_cpu_copies(rng_tensors, f"rng/{rank}/"))
    meta = {
        "format_version": FORMAT_VERSION,
        "trainer": ckpt.trainer,
        "optimizer": optim_json,
        "rng": rng_json,
        "has_ema": ckpt.ema is not None,
        "has_best": ckpt.best is not None,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_METADATA_KEY: json.dumps(meta)})
    return path


def _read_metadata(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        raw = (fh.metadata() or {}).get(_METADATA_KEY)
    if raw is None:
        raise ModelFolderError(f"{path} is a safetensors file but not a polymodal training "
                               f"checkpoint (no {_METADATA_KEY!r} metadata); point resume at "
                               f"the folder the Trainer wrote.")
    return json.loads(raw)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on CPU)."""
    path = Path(path)
    try:
        meta = _read_metadata(path)
        flat = load_file(str(path))
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"Cannot read training checkpoint {path}: {exc}. Delete it to "
                               f"start the run afresh, or resume from an intact copy.") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(f"Checkpoint {path} has format_version "
                               f"{meta.get('format_version')!r}; this polymodal reads "
                               f"{FORMAT_VERSION}. Resume it with the version that wrote it.")

    def take(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}

    optim_state: dict[int, dict[str, Any]] = {}
    for key, value in take("optim/").items():
        index, name = key.split("/", 1)
        optim_state.setdefault(int(index), {})[name] = value
    for index, scalars in meta["optimizer"]["scalars"].items():
        optim_state.setdefault(int(index), {}).update(scalars)
    optimizer = {"state": optim_state, "param_groups": meta["optimizer"]["param_groups"]}
    rng = [(values, take(f"rng/{rank}/")) for rank, values in enumerate(meta["rng"])]
    return Checkpoint(
        model=take("model/"),
        optimizer=optimizer,
        trainer=meta["trainer"],
        ema=take("ema/") if meta["has_ema"] else None,
        best=take("best/") if meta["has_best"] else None,
        rng=rng,
    )
