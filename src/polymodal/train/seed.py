"""Seeding and capturing every global RNG (python, numpy, torch CPU and CUDA).

RNG states are captured as tensors plus JSON-ready values, so a checkpoint can hold them
without pickling (see :mod:`polymodal.train.checkpoint`).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seed_dataloader_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader workers: derive numpy's seed from torch's.

    torch seeds each worker's torch and python RNGs from the loader's base seed, but not
    numpy's, so without this every worker would share numpy's state from the fork.
    """
    np.random.seed(torch.initial_seed() % 2**32)


def capture_rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This process's RNG states as (JSON-ready values, tensors)."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    values = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached_gaussian)],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = state
    return values, tensors


def restore_rng_state(values: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, mt_state, gauss = values["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached_gaussian = values["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss,
                         cached_gaussian))
    torch.set_rng_state(tensors["torch"])
    cuda_states = [tensors[f"cuda{i}"] for i in range(len(tensors)) if f"cuda{i}" in tensors]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block without changing any global RNG as seen from outside it.

    Evaluation and callbacks (sample grids) draw random numbers; isolating them keeps the
    training trajectory the same whether or not, and how often, they run.
    """
    values, tensors = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(values, tensors)
