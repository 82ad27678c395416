"""Running the same loop under ``torchrun``: process-group set-up and the few collectives.

``torchrun --nproc_per_node=N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with
``WORLD_SIZE > 1`` the trainer joins the group (gloo on CPU, NCCL on CUDA), wraps the model
in ``DistributedDataParallel`` and lets rank 0 alone evaluate, log and write files. Every
decision that changes control flow (stop, save) is taken on rank 0 and shared, so all ranks
run the same number of steps and reach the same collectives.
"""

from __future__ import annotations

import gc
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from polymodal.errors import ConfigError

# Each group this process joins gets the next number (every rank joins its groups in the
# same order), so the keys of one group's orderly leave never meet another's.
_GROUPS = itertools.count()
LEAVE_WAIT_S = 120.0  # how long rank 0 waits for the others to leave before it leaves anyway


@dataclass
class DistributedContext:
    """Who this process is. ``world_size == 1`` means an ordinary single process."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False
    """True when the trainer created the process group (so it destroys it at the end)."""
    group_number: int = -1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that evaluates, logs and writes files."""
        return self.rank == 0

    # --- set-up -------------------------------------------------------------------------

    @classmethod
    def from_env(cls, device_type: str) -> DistributedContext:
        """Read torchrun's variables; join the process group when there is more than one rank."""
        try:
            world_size = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError as exc:
            raise ConfigError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers (as torchrun sets "
                              f"them), got {exc}. Launch with torchrun or unset them.") from exc
        if world_size <= 1:
            return cls()
        owns = False
        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            if device_type == "cuda":
                if local_rank >= torch.cuda.device_count():
                    raise ConfigError(
                        f"torchrun started process {local_rank} on this machine, which has "
                        f"{torch.cuda.device_count()} GPU(s): one process per GPU (pass "
                        f"--nproc_per_node={torch.cuda.device_count()}), or train on the "
                        "CPU (--device cpu)")
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend=backend)
            owns = True
        return cls(world_size=world_size, rank=rank, local_rank=local_rank, owns_group=owns,
                   group_number=next(_GROUPS) if owns else -1)

    def close(self, *, in_step: bool = False) -> None:
        """Leave the process group if this context created it.

        ``in_step``: every rank is here together, past its last collective. They then leave
        in order: a barrier, the other ranks leave, and rank 0 leaves once they all have
        (told through the group's store, not its sockets). gloo's TCP transport can abort
        a rank whose peer closes its sockets while it is still reading from them, as it
        did at the end of fits under ``torchrun``. Without ``in_step`` (an error on some
        rank) each leaves at once: the others may never come.
        """
        if not (self.owns_group and dist.is_initialized()):
            return
        self.owns_group = False
        store = None
        if in_step:
            self.barrier()
            try:
                store = dist.distributed_c10d._get_default_store()
            except (AttributeError, RuntimeError, ValueError):
                store = None  # a torch without it: the barrier alone
        key = f"polymodal/left/{self.group_number}"
        if store is not None and self.is_main:
            deadline = time.monotonic() + LEAVE_WAIT_S
            while store.add(key, 0) < self.world_size - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        gc.collect()  # a DDP wrapper left in a reference cycle lets go of the group now
        dist.destroy_process_group()
        if store is not None and not self.is_main:
            store.add(key, 1)

    # --- collectives (no-ops in a single process) ---------------------------------------

    def sum_(self, values: torch.Tensor) -> torch.Tensor:
        """All-reduce ``values`` by sum in place (a small float64 CPU/GPU vector)."""
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def broadcast_flag(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's ``flag``, on every rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.broadcast(t, src=0)
        return bool(t.item() > 0)

    def broadcast_int(self, value: int | None, device: torch.device) -> int | None:
        """Rank 0's ``value`` (an int >= 0 or ``None``), on every rank."""
        if not self.enabled:
            return value
        t = torch.tensor([-1 if value is None else value], dtype=torch.int64, device=device)
        dist.broadcast(t, src=0)
        return None if int(t.item()) < 0 else int(t.item())

    def broadcast_module_(self, module: torch.nn.Module) -> None:
        """Overwrite every rank's weights and buffers with rank 0's, in place."""
        if self.enabled:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (small JSON-ready values), on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (JSON-ready values and tensors), in rank order, on every rank.

        Used only for RNG states at checkpoint time; objects travel between our own
        processes, never to or from disk.
        """
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


class RankRows(Dataset):
    """This process's own rows of ``dataset`` (``rows``, positions in it), seen as
    ``length`` items per epoch, so that every rank takes the same number of steps and an
    epoch holds as many rows as in one process (``length`` = ceil(all rows / ranks)).

    Each epoch draws the rank's rows in a seeded order of their own; a rank with more rows
    than ``length`` leaves the last of that order out this epoch (others next epoch), one
    with fewer repeats the first, as ``DistributedSampler`` pads. The loop shuffles the
    items without splitting them further (``rank_local``). Items, ``collate`` and
    ``set_epoch`` are the wrapped dataset's.
    """

    rank_local = True

    def __init__(self, dataset: Dataset, rows, length: int, *, seed: int = 0):
        if len(rows) == 0 or length < 1:
            raise ValueError("RankRows needs at least one row and a length of at least 1")
        self.dataset = dataset
        self.rows = np.asarray(rows, dtype=np.int64)
        self.length, self.seed = int(length), int(seed)
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.length

    def _row(self, index: int) -> int:
        return int(self.order[int(index) % len(self.order)])

    def __getitem__(self, index: int):
        return self.dataset[self._row(index)]

    def __getitems__(self, indices):
        rows = [self._row(i) for i in indices]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(rows)
        return [self.dataset[r] for r in rows]

    def set_epoch(self, epoch: int) -> None:
        """This epoch's order of the rank's rows (the same again after a resume)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        self.order = self.rows[rng.permutation(len(self.rows))]
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getattr__(self, name: str):
        # ``collate`` and the like: the wrapped dataset's (its items are its own indices).
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
