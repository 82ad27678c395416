"""A table larger than memory, read in units: the stream, its samples and the shuffled,
rank-sharded training batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.data.readers import read_table
from polymodal.data.schema import infer_schema
from polymodal.data.stream_batches import StreamedBatches
from polymodal.data.streaming import STREAM_BYTES_ENV, memory_threshold, open_stream
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, DataError

NUM_FILES, ROWS_PER_FILE, ROW_GROUP = 3, 230, 40
FORCE = (1, "test")  # a threshold every table is over


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory) -> Path:
    """Parquet shards of uneven row groups; every 17th label missing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    for i in range(NUM_FILES):
        n = ROWS_PER_FILE
        row = np.arange(i * n, (i + 1) * n)
        label = np.where(rng.normal(size=n) > 0, "yes", "no").astype(object)
        label[row % 17 == 0] = None
        df = pd.DataFrame({"x": rng.normal(size=n), "color": rng.choice(["red", "blue"], n),
                           "label": label})
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False),
                       folder / f"part-{i:04d}.parquet", row_group_size=ROW_GROUP)
    return folder


@pytest.fixture(scope="module")
def transform(shard_folder):
    df = read_table(shard_folder)
    schema = infer_schema(df, label="label")
    return TableTransform(schema, text_encoder="hashed").fit(df.dropna(subset=["label"]))


def labelled(folder: Path) -> np.ndarray:
    return np.flatnonzero(read_table(folder)["label"].notna().to_numpy())


def batches(folder, transform, *, exclude=(), seed=0, epoch=0, rank=0, world_size=1,
            batch_size=16, buffer_rows=100) -> tuple[StreamedBatches, list]:
    stream = open_stream(folder, threshold=FORCE)
    usable = stream.present_counts("label")
    units = np.searchsorted(stream.offsets, np.asarray(exclude, dtype=np.int64), side="right") - 1
    usable = usable - np.bincount(units, minlength=stream.num_units)
    data = StreamedBatches(stream, transform, batch_size=batch_size,
                           exclude=np.asarray(exclude, dtype=np.int64), usable_rows=usable,
                           seed=seed, buffer_rows=buffer_rows)
    data.set_shard(rank=rank, world_size=world_size, batch_size=batch_size)
    data.set_epoch(epoch)
    return data, list(data)


def test_the_stream_reads_units_in_table_order(shard_folder):
    stream = open_stream(shard_folder, threshold=FORCE)
    whole = read_table(shard_folder)
    assert stream.num_rows == len(whole) == NUM_FILES * ROWS_PER_FILE
    assert stream.num_units == NUM_FILES * -(-ROWS_PER_FILE // ROW_GROUP)
    chunks = list(stream.frames(rows=100))
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole,
                                  check_dtype=False)
    positions = np.array([0, 39, 40, 229, 230, 500, len(whole) - 1])
    sample = stream.sample(positions)
    pd.testing.assert_frame_equal(sample, whole.iloc[positions].reset_index(drop=True),
                                  check_dtype=False)


def test_a_table_under_the_threshold_is_read_whole(shard_folder):
    assert open_stream(shard_folder, threshold=(1 << 40, "1 TiB")) is None
    assert open_stream(shard_folder / "part-0000.parquet", threshold=FORCE).num_rows == ROWS_PER_FILE


def test_the_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(STREAM_BYTES_ENV, "1.5G")
    assert memory_threshold()[0] == int(1.5 * 2**30)
    monkeypatch.setenv(STREAM_BYTES_ENV, "lots")
    with pytest.raises(ConfigError, match=STREAM_BYTES_ENV):
        memory_threshold()


def test_every_labelled_row_once_per_epoch_except_the_excluded(shard_folder, transform):
    exclude = [3, 41, 300, 689]
    data, got = batches(shard_folder, transform, exclude=exclude)
    seen = np.concatenate([b.index.numpy() for b in got])
    expected = np.setdiff1d(labelled(shard_folder), exclude)
    assert np.array_equal(np.sort(seen), expected)  # once each, nothing else
    assert len(got) == len(data)
    assert all(len(b.index) == 16 for b in got[:-1])
    assert not np.array_equal(seen, np.sort(seen))  # shuffled


def test_the_order_is_a_function_of_seed_and_epoch(shard_folder, transform):
    def order(**kw):
        return np.concatenate([b.index.numpy() for b in batches(shard_folder, transform, **kw)[1]])

    first = order(seed=3, epoch=1)
    assert np.array_equal(first, order(seed=3, epoch=1))
    assert not np.array_equal(first, order(seed=3, epoch=2))
    assert not np.array_equal(first, order(seed=4, epoch=1))
    # The labels travel with their rows.
    got = batches(shard_folder, transform, seed=3, epoch=1)[1]
    truth = read_table(shard_folder)["label"].to_numpy()
    classes = list(transform.classes_)
    for batch in got:
        assert [classes[i] for i in batch.label.tolist()] == truth[batch.index.numpy()].tolist()


def test_ranks_read_disjoint_rows_in_equal_steps(shard_folder, transform):
    per_rank = [batches(shard_folder, transform, rank=r, world_size=2, batch_size=8)
                for r in range(2)]
    rows = [np.concatenate([b.index.numpy() for b in got]) for _, got in per_rank]
    assert len(per_rank[0][1]) == len(per_rank[1][1]) == len(per_rank[0][0])
    assert len(rows[0]) == len(rows[1]) == len(labelled(shard_folder)) // 2
    assert not set(rows[0]) & set(rows[1])  # a short rank re-reads its own units only


def test_ranks_take_equal_steps_when_their_units_are_uneven(shard_folder, transform):
    """Three ranks over 18 uneven row groups, a buffer larger than a rank's share: every
    rank still yields its equal share (re-reading its own units where short)."""
    got = [batches(shard_folder, transform, rank=r, world_size=3, batch_size=7,
                   buffer_rows=10_000)[1] for r in range(3)]
    share = len(labelled(shard_folder)) // 3
    for rank_batches in got:
        assert sum(len(b.index) for b in rank_batches) == share
    assert len({len(b) for b in got}) == 1


def test_more_ranks_than_row_groups_is_refused(shard_folder, transform):
    with pytest.raises(DataError, match="row group"):
        batches(shard_folder, transform, rank=0, world_size=1000)


def test_dataloader_workers_share_the_units_and_see_each_row_once(shard_folder, transform):
    from torch.utils.data import DataLoader

    data, _ = batches(shard_folder, transform, epoch=1)
    loader = DataLoader(data, batch_size=None, num_workers=2)
    seen = np.concatenate([b.index.numpy() for b in loader])
    assert np.array_equal(np.sort(seen), labelled(shard_folder))
