"""A table larger than memory through the installed ``polymodal`` script: the threshold is
lowered with ``POLYMODAL_STREAM_BYTES`` (as a user would), so a small shard folder streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXE = Path(sys.executable).with_name("polymodal")

pytestmark = pytest.mark.skipif(not EXE.exists(), reason="the polymodal console script is "
                                "not installed next to this interpreter")
NUM_ROWS = 1200


def polymodal(*argv, stream: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    env.pop("POLYMODAL_STREAM_BYTES", None)
    if stream:
        env["POLYMODAL_STREAM_BYTES"] = "1"  # every table is over one byte
    return subprocess.run([str(EXE), *map(str, argv)], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Four Parquet shards: an id, a number, a category, a short text and a binary label
    that depends on them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("large") / "shards"
    folder.mkdir()
    rng = np.random.default_rng(1)
    x = rng.normal(size=NUM_ROWS)
    color = rng.choice(["red", "green", "blue"], NUM_ROWS)
    word = rng.choice(["cheap", "fine", "bold", "plain"], NUM_ROWS)
    label = np.where(x + (color == "red") + (word == "bold") > 0.7, "high", "low")
    title = [f"a {w} {c} thing" for w, c in zip(word, color, strict=True)]
    df = pd.DataFrame({"row_id": [f"r{i:05d}" for i in range(NUM_ROWS)], "x": x,
                       "color": color, "title": title, "label": label})
    for k, part in enumerate(np.array_split(np.arange(NUM_ROWS), 4)):
        pq.write_table(pa.Table.from_pandas(df.iloc[part], preserve_index=False),
                       folder / f"part-{k:04d}.parquet", row_group_size=100)
    return folder


@pytest.fixture(scope="module")
def fitted(shards, tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("model") / "m"
    proc = polymodal("fit", shards, "--label", "label", "--out", model, "--seed", "0",
                     "--set", "training.max_epochs=2", stream=True)
    assert proc.returncode == 0, proc.stderr
    return model


def test_fit_streams_and_says_what_each_part_saw(fitted):
    log = [json.loads(line) for line in (fitted / "train_log.jsonl").read_text().splitlines()]
    streamed = next(r for r in log if r["event"] == "streamed")
    assert streamed["num_rows"] == NUM_ROWS
    assert streamed["validation_rows"] + streamed["network_rows_per_epoch"] == NUM_ROWS
    assert streamed["network_epochs"] <= 2
    assert streamed["network_rows_seen"] <= 2 * streamed["network_rows_per_epoch"]
    assert 0 < streamed["peak_rss_bytes"]
    config = json.loads((fitted / "config.json").read_text())
    assert config["data"]["sample_of_rows"] == NUM_ROWS


def test_predict_streams_every_row_in_order_and_matches_reading_it_whole(fitted, shards,
                                                                         tmp_path):
    streamed, whole = tmp_path / "streamed.csv", tmp_path / "whole.csv"
    proc = polymodal("predict", fitted, shards, "--out", streamed, stream=True)
    assert proc.returncode == 0, proc.stderr
    assert polymodal("predict", fitted, shards, "--out", whole, stream=False).returncode == 0
    got = pd.read_csv(streamed)
    assert got["row_id"].tolist() == [f"r{i:05d}" for i in range(NUM_ROWS)]
    pd.testing.assert_frame_equal(got, pd.read_csv(whole))
    proc = polymodal("predict", fitted, shards, "--out", tmp_path / "p.parquet", stream=True)
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), got)


def test_the_streamed_model_loads_and_predicts(fitted, shards):
    from polymodal import Predictor

    predictor = Predictor.load(fitted)
    rows = pd.read_parquet(shards / "part-0000.parquet").head(50)
    accuracy = (predictor.predict(rows) == rows["label"].to_numpy()).mean()
    assert accuracy > 0.6  # the label is learnable from x, color and title


def test_a_bad_threshold_is_one_line_naming_it(shards, tmp_path):
    env = {**os.environ, "POLYMODAL_STREAM_BYTES": "lots"}
    proc = subprocess.run([str(EXE), "fit", str(shards), "--label", "label", "--out",
                           str(tmp_path / "m")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "POLYMODAL_STREAM_BYTES" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
