"""Batches for the loop: a data order a resumed run can continue, and batches on the device.

The order of epoch ``e`` is ``randperm(n, seed + e)``, so resuming mid-epoch needs only the
epoch and the number of samples already consumed, not the state of an iterator.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` on ``device``: tensors, tuples/lists/dicts of them, or objects with ``.to``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(move_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


def batch_length(batch: Any) -> int:
    """Examples in a batch: its ``len``, or the leading dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, tuple | list) and batch:
        return batch_length(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_length(next(iter(batch.values())))
    return len(batch)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle, ``set_epoch``) that can skip a prefix.

    With one process it is a plain shuffle.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip_samples = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip_samples, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip_samples)
