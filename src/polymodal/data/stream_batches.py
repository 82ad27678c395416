"""The network's training batches from a table larger than memory, shuffled and sharded.

:class:`StreamedBatches` is a torch ``IterableDataset`` that yields whole
:class:`~polymodal.data.batch.Batch` objects (the training loop reads it with
``batch_size=None``). Epoch ``e``'s order is a pure function of ``(seed, e)``:

1. the units of the :class:`~polymodal.data.streaming.TableStream` (row groups) are
   permuted, and dealt round-robin to the ranks (``set_shard``, which the training loop
   calls with its rank, world size and per-rank batch size), then to the DataLoader
   workers of each rank: every rank reads only its own units, so ranks see disjoint rows;
2. units are read in that order into a buffer of about ``buffer_rows`` rows, minus the
   rows set aside (validation), which is shuffled, encoded with the fitted transform and
   cut into batches; rows left over join the next buffer;
3. rows without a usable label (missing, or a class the transform never saw) are dropped
   where they are encoded.

With more than one rank every rank yields the same number of rows per epoch, an equal
share of the usable rows (a rank whose units hold fewer reads some of them again, one with
more leaves the rest for another epoch), so every rank takes the same number of steps;
a single process yields every usable row exactly once per epoch, with or without
DataLoader workers. Memory holds one buffer plus one
unit, whatever the table's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from polymodal.data.batch import Batch
from polymodal.data.dataset import TableDataset
from polymodal.data.streaming import TableStream, open_stream
from polymodal.data.transforms import TableTransform
from polymodal.errors import DataError

BUFFER_ROWS = 32_768  # rows shuffled together; the unit order is shuffled too


class StreamedBatches(IterableDataset):
    """Shuffled, rank- and worker-sharded training batches of a :class:`TableStream`.

    Args:
        stream: the table.
        transform: the fitted transform that encodes each buffer.
        batch_size: rows per batch of one process (``set_shard`` replaces it).
        exclude: sorted global positions of rows never yielded (the validation rows).
        usable_rows: (U,) rows per unit expected to be yielded (label present, not
            excluded): what ``len`` and the ranks' common quota are counted from.
        seed: seeds the orders (with the epoch).
        buffer_rows: rows shuffled together.
    """

    batches_itself = True  # the loader passes each item through (batch_size=None)

    def __init__(self, stream: TableStream, transform: TableTransform, *, batch_size: int,
                 exclude: np.ndarray, usable_rows: np.ndarray, seed: int = 0,
                 buffer_rows: int = BUFFER_ROWS):
        self.stream, self.transform = stream, transform
        self.batch_size, self.seed, self.buffer_rows = int(batch_size), int(seed), int(buffer_rows)
        self.exclude = np.sort(np.asarray(exclude, dtype=np.int64))
        self.usable_rows = np.asarray(usable_rows, dtype=np.int64)
        self.rank, self.world_size, self.epoch = 0, 1, 0
        self.rows_yielded = 0  # in this process, over every epoch (not with workers)
        self._rows_encoded = 0  # usable rows met in the current pass over the units

    def spec(self) -> dict:
        """What another process needs to read the same rows (JSON-ready; under torchrun
        rank 0 sends it to the others, :meth:`from_spec`)."""
        files = self.stream.files
        return {"source": str(files[0] if len(files) == 1 else self.stream.folder),
                "num_units": self.stream.num_units, "exclude": self.exclude.tolist(),
                "usable_rows": self.usable_rows.tolist(), "batch_size": self.batch_size,
                "seed": self.seed, "buffer_rows": self.buffer_rows}

    @classmethod
    def from_spec(cls, spec: dict, transform: TableTransform) -> StreamedBatches:
        """The batches :meth:`spec` describes, over the same files, encoded by ``transform``."""
        stream = open_stream(spec["source"], threshold=(0, "streamed by another process"))
        if stream is None or stream.num_units != spec["num_units"]:
            found = 0 if stream is None else stream.num_units
            raise DataError(f"{spec['source']}: {found} row group(s) here but "
                            f"{spec['num_units']} where the fit began; give every process "
                            "the same files, unchanged while training")
        return cls(stream, transform, batch_size=spec["batch_size"],
                   exclude=np.asarray(spec["exclude"], dtype=np.int64),
                   usable_rows=np.asarray(spec["usable_rows"], dtype=np.int64),
                   seed=spec["seed"], buffer_rows=spec["buffer_rows"])

    @property
    def num_rows(self) -> int:
        """Rows an epoch trains on (every rank together)."""
        return int(self.usable_rows.sum())

    def set_shard(self, *, rank: int, world_size: int, batch_size: int) -> None:
        """Read this rank's share, ``batch_size`` rows per batch (the training loop's call)."""
        if world_size > self.stream.num_units:
            raise DataError(f"{self.stream.folder}: {self.stream.num_units} row group(s) cannot "
                            f"be shared by {world_size} processes; write the table with more, "
                            "smaller row groups (e.g. pyarrow.parquet.write_table(..., "
                            "row_group_size=100_000))")
        self.rank, self.world_size, self.batch_size = int(rank), int(world_size), int(batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the one value every rank shares under DDP)."""
        return math.ceil(self._quota() / self.batch_size)

    # --- the order ----------------------------------------------------------------------

    def _rank_units(self) -> np.ndarray:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.stream.num_units)
        return order[self.rank::self.world_size]

    def _quota(self) -> int:
        """Rows this rank yields per epoch: with one rank every usable row; with more, an
        equal share of them each (a rank whose units hold fewer reads some again)."""
        return self.num_rows // self.world_size

    # --- iteration ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        # One rank: every usable row of its units. Several: exactly the equal share each.
        units, shared = self._rank_units(), self.world_size > 1
        quota = self._quota() if shared else None
        info = get_worker_info()
        if info is not None and info.num_workers > 1:  # each worker its units (and rows)
            units = units[info.id::info.num_workers]
            if quota is not None:
                quota = quota // info.num_workers + (info.id < quota % info.num_workers)
        if quota == 0 or len(units) == 0:
            return
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1 + (info.id if info else 0)])
        yielded = 0
        for batch in self._batches(units, rng, wrap=shared):
            take = len(batch.index) if quota is None else min(len(batch.index), quota - yielded)
            if take < len(batch.index):
                batch = _head(batch, take)
            yield batch
            yielded += take
            self.rows_yielded += take
            if quota is not None and yielded >= quota:
                return

    def _batches(self, units: np.ndarray, rng: np.random.Generator, *,
                 wrap: bool) -> Iterator[Batch]:
        """Batches from ``units`` in order through the shuffle buffer (again from the first
        unit with ``wrap``, until the caller has its quota)."""
        pending: list = []  # (table, global positions) pairs
        count = 0
        while True:
            self._rows_encoded = 0
            for unit in units.tolist():
                table, positions = self._unit_rows(unit)
                if table.num_rows:
                    pending.append((table, positions))
                    count += table.num_rows
                if count >= self.buffer_rows:
                    leftover = yield from self._flush(pending, rng, final=False)
                    pending = [leftover] if leftover is not None else []
                    count = leftover[0].num_rows if leftover is not None else 0
            if not wrap or not (self._rows_encoded or count):  # nothing usable: stop
                break
        if pending:
            yield from self._flush(pending, rng, final=True)

    def _unit_rows(self, unit: int):
        """Unit ``unit``'s rows less the excluded ones, and their global positions."""
        table = self.stream.read_unit(unit)
        start, stop = self.stream.offsets[unit], self.stream.offsets[unit + 1]
        positions = np.arange(start, stop, dtype=np.int64)
        lo, hi = np.searchsorted(self.exclude, [start, stop])
        if hi > lo:
            keep = np.ones(table.num_rows, dtype=bool)
            keep[self.exclude[lo:hi] - start] = False
            table, positions = table.filter(keep), positions[keep]
        return table, positions

    def _flush(self, pending: list, rng: np.random.Generator, *, final: bool):
        """Shuffle the ``pending`` rows, encode them and yield their full batches (all of
        them when ``final``), each with the rows' global positions as its ``index``;
        returns the rows left over, unencoded, or None."""
        import pyarrow as pa

        order = rng.permutation(sum(t.num_rows for t, _ in pending))
        table = pa.concat_tables([t for t, _ in pending]).take(order)
        positions = np.concatenate([p for _, p in pending])[order]
        dataset = TableDataset(self.stream.frame(table), self.transform, train=True,
                               seed=self.seed)
        dataset.set_epoch(self.epoch)
        enc = dataset.encoded
        usable = np.ones(enc.n_rows, dtype=bool) if enc.label_present is None \
            else np.asarray(enc.label_present, dtype=bool)
        label = None if enc.label is None else np.asarray(enc.label)
        if label is not None and label.ndim == 1 and np.issubdtype(label.dtype, np.integer):
            usable &= label >= 0  # a class the transform never saw
        rows = np.flatnonzero(usable)
        self._rows_encoded += len(rows)
        full = len(rows) if final else len(rows) - len(rows) % self.batch_size
        for start in range(0, full, self.batch_size):
            batch = dataset.__getitems__(rows[start:start + self.batch_size])
            batch.index = torch.from_numpy(positions[rows[start:start + self.batch_size]])
            yield batch
        if full < len(rows):
            return table.take(rows[full:]), positions[rows[full:]]
        return None


def _head(batch: Batch, n: int) -> Batch:
    """The first ``n`` rows of ``batch``."""
    return batch._map(lambda t: t[:n])
