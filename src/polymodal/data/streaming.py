"""Tables larger than memory: a Parquet/Feather file or shard folder read in pieces.

:func:`open_stream` decides whether a table is streamed: when it is a columnar file or
shard folder (what :func:`~polymodal.data.readers.columnar_source` recognises) whose rows,
as a pandas DataFrame, would take more than :func:`memory_threshold` bytes. The estimate
is the deep memory use of the first rows, scaled to the row count the files' footers give;
the threshold is ``POLYMODAL_STREAM_BYTES`` when set (bytes, or with a K/M/G/T suffix),
else :data:`AVAILABLE_SHARE` of the memory available when the command starts: fitting a
table in memory holds several working copies of it at once (the frame, its encoded
arrays — a text column's embeddings alone take ten times its cells — the classic models'
flat features), so its peak is many times the frame (bench/RESULTS.md, 'large_table').

A :class:`TableStream` reads the table in *units*: one Parquet row group (or one Feather
file) each, numbered in file order, so a row's global position is fixed by the files alone.
It hands out seeded samples (:meth:`TableStream.sample`), the rows in order for
prediction (:meth:`TableStream.frames`) and single units for the shuffled training
iterator (:class:`~polymodal.data.stream_batches.StreamedBatches`). No more than one unit
and the rows asked for are in memory at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.arrow_files import shard_dataset
from polymodal.data.arrow_tables import table_to_frame
from polymodal.data.cells import present_mask
from polymodal.data.readers import columnar_source
from polymodal.errors import ConfigError, DataError

STREAM_BYTES_ENV = "POLYMODAL_STREAM_BYTES"
# Share of the available memory a table may take as a DataFrame and still be fitted in
# memory: the in-memory fit's peak was ~30 times the frame on a table with a short text
# column (bench/RESULTS.md, 'large_table'), so this keeps it within half of the memory.
AVAILABLE_SHARE = 1 / 64
ESTIMATE_ROWS = 4096  # rows converted to pandas to measure the bytes a row takes
PREDICT_CHUNK_ROWS = 65_536  # rows per chunk when predictions stream
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory_threshold() -> tuple[int, str]:
    """``(bytes, how it was set)``: tables larger than this as a DataFrame are streamed."""
    raw = os.environ.get(STREAM_BYTES_ENV)
    if raw is not None and raw.strip():
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", raw.lower())
        if match is None:
            raise ConfigError(f"{STREAM_BYTES_ENV}={raw!r} is not a size; give bytes, e.g. "
                              f"{STREAM_BYTES_ENV}=2G (or unset it for {AVAILABLE_SHARE:.4g} of "
                              "the available memory)")
        return int(float(match[1]) * _UNITS[match[2]]), f"{STREAM_BYTES_ENV}={raw.strip()}"
    import psutil

    available = psutil.virtual_memory().available
    return (int(available * AVAILABLE_SHARE),
            f"1/{round(1 / AVAILABLE_SHARE)} of the {available / 2**30:.1f} GiB available; "
            f"set {STREAM_BYTES_ENV} to change it")


@dataclass
class TableStream:
    """A columnar table read one unit (row group, or Feather file) at a time.

    ``units[u]`` is a ``pyarrow.dataset`` fragment holding rows ``offsets[u]`` to
    ``offsets[u + 1]`` of the table; ``columns`` are the table's (partition columns
    included); ``bytes_per_row`` is the measured DataFrame size of a row.
    """

    folder: Path
    files: list[Path]
    fmt: str
    schema: object  # the pyarrow schema every unit is read with
    units: list
    offsets: np.ndarray  # (U + 1,) int64
    bytes_per_row: float
    threshold_bytes: int
    threshold_reason: str

    @property
    def num_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_units(self) -> int:
        return len(self.units)

    @property
    def estimated_bytes(self) -> int:
        return int(self.bytes_per_row * self.num_rows)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def describe(self) -> str:
        """One line: what is streamed and why."""
        return (f"{self.num_rows:,} rows in {len(self.files)} file(s), {self.num_units} "
                f"unit(s); ~{self.estimated_bytes / 2**30:.2f} GiB as a DataFrame, over the "
                f"{self.threshold_bytes / 2**30:.2f} GiB threshold ({self.threshold_reason})")

    def unit_rows(self) -> np.ndarray:
        """(U,) rows per unit."""
        return np.diff(self.offsets)

    def read_unit(self, unit: int, columns: list[str] | None = None):
        """Unit ``unit`` as a ``pyarrow.Table`` (``columns`` only, when given)."""
        import pyarrow as pa

        try:
            return self.units[unit].to_table(schema=self.schema, columns=columns)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{self.units[unit].path}: cannot read it "
                            f"({str(exc).splitlines()[0]}); write the shard again") from None

    def frame(self, table) -> pd.DataFrame:
        """A piece of the table as a DataFrame, with the attrs :func:`read_table` sets
        (relative media paths resolve against the table's folder)."""
        notes: list[str] = []
        df = table_to_frame(table, notes)
        df.attrs.update(base_dir=str(self.folder), source=str(self.folder), read_notes=notes)
        return df

    def sample(self, positions: np.ndarray) -> pd.DataFrame:
        """Rows at the sorted global ``positions``, in that order, reading only the units
        that hold them."""
        import pyarrow as pa

        positions = np.asarray(positions, dtype=np.int64)
        which = np.searchsorted(self.offsets, positions, side="right") - 1  # unit of each
        parts = []
        for unit in np.unique(which):
            local = positions[which == unit] - self.offsets[unit]
            parts.append(self.read_unit(int(unit)).take(pa.array(local)))
        return self.frame(pa.concat_tables(parts) if parts else self.schema.empty_table())

    def column(self, unit: int, name: str) -> pd.Series:
        """One column of one unit, as the DataFrame would hold it."""
        return self.frame(self.read_unit(unit, [name]))[name]

    def present_counts(self, name: str) -> np.ndarray:
        """(U,) rows per unit where column ``name`` holds a value (one pass over it)."""
        return np.array([int(present_mask(self.column(u, name)).sum())
                         for u in range(self.num_units)], dtype=np.int64)

    def frames(self, rows: int = PREDICT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The table in order, about ``rows`` rows at a time (whole units)."""
        import pyarrow as pa

        pending, count = [], 0
        for unit in range(self.num_units):
            pending.append(self.read_unit(unit))
            count += pending[-1].num_rows
            if count >= rows:
                yield self.frame(pa.concat_tables(pending))
                pending, count = [], 0
        if pending:
            yield self.frame(pa.concat_tables(pending))


def open_stream(source, *, threshold: tuple[int, str] | None = None,
                min_rows: int | None = None) -> TableStream | None:
    """A :class:`TableStream` over ``source`` when it is a columnar file or shard folder
    too large for memory (over ``threshold``, default :func:`memory_threshold`) or, with
    ``min_rows``, of more rows than that; else None, and the table is read whole."""
    found = columnar_source(source)
    if found is None:
        return None
    folder, files, fmt = found
    limit, reason = threshold or memory_threshold()
    dataset, fragments, _ = shard_dataset(folder, files, fmt)
    units = []
    for fragment in fragments:
        groups = fragment.split_by_row_group() if fmt == "parquet" else [fragment]
        units.extend(groups)
    counts = [(u.row_groups[0].num_rows if fmt == "parquet" else u.count_rows()) for u in units]
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    stream = TableStream(folder, files, fmt, dataset.schema, units, offsets, 0.0, limit, reason)
    if stream.num_rows == 0:
        return None  # read_table says the table is empty
    head = dataset.head(min(ESTIMATE_ROWS, stream.num_rows))
    stream.bytes_per_row = (stream.frame(head).memory_usage(index=False, deep=True).sum()
                            / max(1, head.num_rows))
    if min_rows is not None and stream.num_rows > min_rows:
        return stream
    return stream if stream.estimated_bytes > limit else None
