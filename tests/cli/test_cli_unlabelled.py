"""Rows without a label, through the installed ``polymodal`` script: a label column with
no value is one line and exit 2; a class with one labelled row is an error naming it; a
table almost entirely unlabelled warns with the count; ``--unlabelled`` is checked and
saved. Fits are bounded by epochs."""

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

BOUNDED = ["--set", "training.max_epochs=2", "--set", "unlabelled.rounds=1",
           "--set", "candidates.cv_folds=0", "--text-encoder", "hashed"]


def polymodal(*argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(EXE), *map(str, argv)], capture_output=True, text=True,
                          timeout=600, env=env)


def write(tmp_path: Path, labels: list) -> Path:
    rng = np.random.default_rng(0)
    n = len(labels)
    path = tmp_path / "table.csv"
    pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                  "label": labels}).to_csv(path, index=False)
    return path


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The error: one line, the last (the fit's progress lines may come before it)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert sum("error" in line.lower() for line in lines) == 1, proc.stderr
    return lines[-1]


def test_an_empty_label_column_is_one_line(tmp_path):
    table = write(tmp_path, [None] * 30)
    line = one_error_line(polymodal("fit", table, "--label", "label", "--out", tmp_path / "m"))
    assert "no labelled rows" in line and "'label'" in line


def test_a_class_with_one_labelled_row_is_named(tmp_path):
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] + [None] * 20
    line = one_error_line(polymodal("fit", write(tmp_path, labels), "--label", "label",
                                    "--out", tmp_path / "m"))
    assert "'c'" in line and "'a'" not in line and "'b'" not in line


def test_bad_unlabelled_value_is_one_line(tmp_path):
    table = write(tmp_path, ["a", "b"] * 10)
    line = one_error_line(polymodal("fit", table, "--label", "label", "--out", tmp_path / "m",
                                    "--unlabelled", "bogus"))
    assert "bogus" in line and "unlabelled" in line


def test_mostly_unlabelled_table_warns_with_the_count_and_self_trains(tmp_path):
    labels = ["a", "b"] * 4 + [None] * 992  # 99.2 % without a label
    model = tmp_path / "m"
    proc = polymodal("fit", write(tmp_path, labels), "--label", "label", "--out", model,
                     *BOUNDED)
    assert proc.returncode == 0, proc.stderr
    assert "992" in proc.stdout + proc.stderr
    config = json.loads((model / "config.json").read_text())
    assert config["unlabelled"]["num_rows"] == 992
    assert config["recipe"]["unlabelled"]["method"] == "self_training"


def test_unlabelled_ignore_is_saved(tmp_path):
    labels = ["a", "b"] * 10 + [None] * 20
    model = tmp_path / "m"
    proc = polymodal("fit", write(tmp_path, labels), "--label", "label", "--out", model,
                     "--unlabelled", "ignore", *BOUNDED)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((model / "config.json").read_text())
    assert config["params"]["unlabelled"] == "ignore"
    assert config["recipe"]["unlabelled"]["method"] == "none"
    assert config["unlabelled"] == {"num_rows": 20, "method": "none", "used": False}
