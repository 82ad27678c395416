"""Pieces of :mod:`polymodal.train.distributed`; the orderly leave with two real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

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


LEAVE = textwrap.dedent("""
    import json, time
    import torch
    import torch.distributed as dist
    from polymodal.train.distributed import DistributedContext

    ctx = DistributedContext.from_env("cpu")
    ctx.sum_(torch.ones(1))
    if ctx.rank == 1:
        time.sleep(0.5)  # the other rank is late: rank 0 must not leave before it
    destroy = dist.destroy_process_group

    def recorded(*args, **kwargs):
        start = time.time()
        destroy(*args, **kwargs)
        print(json.dumps({"rank": ctx.rank, "start": start, "end": time.time()}))

    dist.destroy_process_group = recorded
    ctx.close(in_step=True)
""")


def test_ranks_leave_the_group_in_order_rank_0_last(tmp_path):
    """gloo can abort a rank whose peer closes its sockets under it: at an orderly end
    every other rank has left the group before rank 0 starts to."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", LEAVE], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    left = {r["rank"]: r for r in (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)}
    assert left[0]["start"] >= left[1]["end"]
