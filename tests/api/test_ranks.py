"""Which rows each ``torchrun`` rank trains on (:mod:`polymodal.api.ranks`), checked
without a process group: the plans rank 0 makes are plain data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.api.ranks import Ranks
from polymodal.data.readers import read_table
from polymodal.data.split import take_rows
from polymodal.train.distributed import DistributedContext


def _table(folder, sizes: list[int]):
    folder.mkdir()
    start = 0
    for k, size in enumerate(sizes):
        pd.DataFrame({"row": np.arange(start, start + size),
                      "x": np.arange(start, start + size) * 0.5}).to_parquet(
            folder / f"part-{k}.parquet", index=False)
        start += size
    return read_table(folder)


def _leader(table, positions, world: int = 2, *, rows=None) -> Ranks:
    ranks = Ranks(DistributedContext(world_size=world, rank=0))
    rows = take_rows(table, positions) if rows is None else rows
    ranks.training_rows(rows, positions, table_rows=len(table), seed=3)
    return ranks


def test_each_rank_reads_the_training_rows_of_its_own_shard_files(tmp_path):
    table = _table(tmp_path / "shards", [40, 30, 40, 50])
    positions = np.random.default_rng(0).permutation(len(table))[:120]  # a training split
    ranks = _leader(table, positions)
    plan, _ = ranks._shard_plan(len(positions))
    assert plan is not None
    assert plan["files"] == [["part-0.parquet", "part-2.parquet"],
                             ["part-1.parquet", "part-3.parquet"]]
    assert plan["length"] == 60  # an epoch is as many rows as in one process
    # Rank 0 trains on its share of the training rows it already holds ...
    own = table["row"].to_numpy()[positions[plan["own"]]]
    assert set(own) == {r for r in table["row"].to_numpy()[positions] if r < 40 or 70 <= r < 110}
    # ... and rank 1 reads exactly the rest from its own files.
    follower = Ranks(DistributedContext(world_size=2, rank=1))
    rows = {"mode": "shards", **{k: v for k, v in plan.items() if k != "own"}}
    theirs = follower.own_rows(rows)["row"].to_numpy()
    assert sorted([*own, *theirs]) == sorted(table["row"].to_numpy()[positions])
    assert len(set(own) & set(theirs)) == 0
    np.testing.assert_array_equal(follower.own_rows(rows)["x"].to_numpy(), theirs * 0.5)


@pytest.mark.parametrize("sizes", [
    [100],  # one file for two ranks
    [100, 10],  # shares too unequal
])
def test_the_sampler_is_used_when_shards_cannot_be(tmp_path, sizes):
    table = _table(tmp_path / "shards", sizes)
    positions = np.arange(len(table))
    plan, reason = _leader(table, positions)._shard_plan(len(positions))
    assert plan is None and reason


def test_synthetic_rows_use_the_sampler(tmp_path):
    table = _table(tmp_path / "shards", [50, 50])
    ranks = _leader(table, None, rows=table)  # rows added to the table's: no positions
    assert ranks._shard_plan(100)[0] is None
