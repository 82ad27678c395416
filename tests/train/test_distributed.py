"""Pieces of :mod:`polymodal.train.distributed` that need no process group."""

from __future__ import annotations

import pytest
import torch

from polymodal.errors import ConfigError
from polymodal.train.distributed import DistributedContext, RankRows


def test_rank_rows_draw_a_new_order_each_epoch_and_cover_their_rows():
    data = list(range(100, 110))  # items are the wrapped dataset's
    short = RankRows(data, [0, 2, 4, 6], length=6, seed=1)  # fewer rows than length: repeats
    assert len(short) == 6 and short.rank_local
    items = [short[i] for i in range(6)]
    assert set(items) == {100, 102, 104, 106}
    long = RankRows(data, range(10), length=4, seed=1)  # more rows: the rest in other epochs
    seen = set()
    for epoch in range(8):
        long.set_epoch(epoch)
        seen |= set(long.__getitems__(range(4)))
    assert seen == set(data)
    long.set_epoch(2)
    again = RankRows(data, range(10), length=4, seed=1)
    again.set_epoch(2)
    assert [long[i] for i in range(4)] == [again[i] for i in range(4)]  # resumable


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="this machine has a GPU per process")
def test_more_processes_than_gpus_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="--nproc_per_node"):
        DistributedContext.from_env("cuda")
