"""A model folder from someone else never runs code: the skops exploit of issue 15, end to end.

The crafted ``model.skops`` holds a Pipeline whose first step writes a pickle with
``numpy.savetxt`` and whose second unpickles it with ``numpy.load(allow_pickle=True)``;
the pickle's payload only creates a marker file. Every way a user loads a folder —
``Predictor.load``, ``polymodal predict``, ``polymodal evaluate``, ``polymodal serve`` —
must refuse it in one line (exit 2), and the marker must never appear.
"""

from __future__ import annotations

import functools
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from polymodal.api import Predictor
from polymodal.api.model_folder import inspect_folder
from polymodal.errors import ModelFolderError

pytestmark = pytest.mark.usefixtures("one_thread")


POLYMODAL = str(Path(sys.executable).with_name("polymodal"))


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "label": np.where(x1 + x2 > 0, "yes", "no")})


def _protocol0_pickle_creating(marker: Path) -> str:
    """Pickle protocol 0 text that, when unpickled, calls ``open(marker, "w")``."""
    return f"cbuiltins\nopen\n(V{marker}\nVw\ntR."


def plant_exploit(folder: Path, marker: Path) -> Path:
    """Rewrite one classic model of a saved predictor folder into the issue's exploit."""
    skops_files = sorted(folder.glob("models/*/model.skops"))
    assert skops_files, "the predictor saved no classic model"
    target = skops_files[0]
    real = sio.load(target, trusted=sio.get_untrusted_types(file=target))
    dropped = target.parent / "payload.txt"
    write = FunctionTransformer(functools.partial(
        np.savetxt, str(dropped), header=_protocol0_pickle_creating(marker), comments=""))
    read = FunctionTransformer(functools.partial(np.load, str(dropped), allow_pickle=True))
    sio.dump(Pipeline([("write", write), ("read", read), ("model", real)]), target)
    return target


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, Path]:
    """A real predictor folder (fitted on 60 rows) whose chosen model is a classic one,
    saved with skops, and a test table."""
    root = tmp_path_factory.mktemp("security")
    table = _table()
    predictor = Predictor("label", preset="fast", text_encoder="hashed", verbosity=0, seed=0,
                          time_limit=None, recipe={"candidates.neural": False}).fit(table)
    predictor.save(root / "clean")
    table.to_csv(root / "table.csv", index=False)
    return root / "clean", root / "table.csv"


@pytest.fixture
def crafted(saved, tmp_path) -> tuple[Path, Path, Path]:
    clean, table = saved
    folder = tmp_path / "crafted"
    shutil.copytree(clean, folder)
    marker = tmp_path / "marker"
    plant_exploit(folder, marker)
    return folder, table, marker


def test_the_exploit_would_run_code_if_loaded_naively(crafted):
    """The crafted file is a real exploit: skops, told to trust its types, runs it."""
    folder, table, marker = crafted
    target = next(folder.glob("models/*/model.skops"))
    pipeline = sio.load(target, trusted=sio.get_untrusted_types(file=target))
    with pytest.raises(Exception):  # noqa: B017 - the unpickled file handle is no feature matrix
        pipeline.predict_proba(np.zeros((1, 3)))
    assert marker.exists()


def test_predictor_load_refuses_the_crafted_folder(crafted):
    folder, _, marker = crafted
    with pytest.raises(ModelFolderError, match=r"numpy\.(load|savetxt)"):
        Predictor.load(folder)
    assert not marker.exists() and not any(folder.glob("models/*/payload.txt"))


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_the_installed_command_refuses_the_crafted_folder(crafted, command, tmp_path):
    folder, table, marker = crafted
    args = [POLYMODAL, command, str(folder), str(table)]
    args += ["--out", str(tmp_path / ("preds.csv" if command == "predict" else "report"))]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "model.skops" in proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "preds.csv").exists()


def test_the_service_refuses_to_start_on_the_crafted_folder(crafted):
    folder, _, marker = crafted
    with socket.socket() as probe:  # a free port; the server must exit before binding it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.run([POLYMODAL, "serve", str(folder), "--port", str(port)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "model.skops" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_model_file_gives_one_line(saved, damage, tmp_path):
    clean, table = saved
    folder = tmp_path / "damaged"
    shutil.copytree(clean, folder)
    target = next(folder.glob("models/*/model.skops"))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(ModelFolderError, match="model.skops"):
        Predictor.load(folder)
    proc = subprocess.run([POLYMODAL, "predict", str(folder), str(table), "--out",
                           str(tmp_path / "p.csv")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "model.skops" in proc.stderr


def test_inspect_model_lists_a_clean_folder_and_says_it_loads(saved):
    clean, _ = saved
    proc = subprocess.run([POLYMODAL, "inspect-model", str(clean), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["loadable"] and report["kind"] == "predictor" and report["format_version"] == "3"
    kinds = {f["path"]: f["kind"] for f in report["files"]}
    assert kinds["config.json"] == "json"
    assert any(k == "skops" for k in kinds.values())
    assert report["versions"]["scikit-learn"]


def test_inspect_model_names_what_a_crafted_folder_would_be_refused_for(crafted):
    folder, _, marker = crafted
    proc = subprocess.run([POLYMODAL, "inspect-model", str(folder), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert not report["loadable"]
    assert any("numpy.load" in p and "model.skops" in p for p in report["problems"])
    assert not marker.exists()


def test_an_unreadable_format_marker_is_one_line(saved, tmp_path):
    clean, table = saved
    folder = tmp_path / "garbled"
    shutil.copytree(clean, folder)
    (folder / "format_version").write_bytes(b"\xff\xfe2")
    for args in (["inspect-model", str(folder)],
                 ["predict", str(folder), str(table), "--out", str(tmp_path / "p.csv")]):
        proc = subprocess.run([POLYMODAL, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", ["schema.json", "train_log.jsonl"])
def test_an_oversized_json_file_is_refused_before_it_is_parsed(saved, name, tmp_path, monkeypatch):
    """A crafted folder cannot make loading (or inspecting) parse a huge JSON file."""
    import polymodal.files

    clean, _ = saved
    folder = tmp_path / "big"
    shutil.copytree(clean, folder)
    largest = max(p.stat().st_size for p in folder.rglob("*.json*"))
    monkeypatch.setattr(polymodal.files, "MAX_JSON_BYTES", largest)
    with (folder / name).open("a") as f:  # still valid JSON, one byte over the cap
        f.write(" " * (largest + 1 - (folder / name).stat().st_size))
    with pytest.raises(ModelFolderError, match=name):
        Predictor.load(folder)
    report = inspect_folder(folder)
    assert any(name in p and "bytes" in p for p in report.problems)


def test_a_classic_model_of_another_feature_width_is_one_line(tiny_table, tmp_path, monkeypatch):
    """A folder whose scikit-learn candidate was fitted on another feature layout (audio
    features grew since it was saved) is refused on load, naming the model and the fix."""
    from polymodal import Predictor
    from polymodal.api import predictor_folder
    from polymodal.errors import ModelFolderError
    from polymodal.models.classic import FlatLayout

    Predictor("label", verbosity=0, recipe={"candidates.classic": ["random_forest"],
                                            "candidates.neural": False}).fit(tiny_table).save(
        tmp_path / "model")
    assert Predictor.load(tmp_path / "model") is not None
    real = predictor_folder.flat_layout

    def wider(spec, numbers=None):
        layout = real(spec, numbers)
        return FlatLayout(names=[*layout.names, "extra"], categorical=[*layout.categorical, False])

    monkeypatch.setattr(predictor_folder, "flat_layout", wider)
    with pytest.raises(ModelFolderError, match="random_forest"):
        Predictor.load(tmp_path / "model")


def test_inspect_lists_a_catboost_model_and_flags_a_forged_one(tmp_path):
    """CatBoost's binary file is listed as data; one without CatBoost's signature is a
    problem inspect names and load refuses, before CatBoost parses it."""
    folder = tmp_path / "model"
    Predictor("label", verbosity=0, recipe={"candidates.classic": ["catboost"],
                                            "candidates.neural": False}).fit(_table()).save(folder)
    report = inspect_folder(folder)
    (entry,) = [f for f in report.files if f.path.endswith("model.cbm")]
    assert entry.kind == "catboost" and entry.problem is None and report.loadable
    (folder / entry.path).write_bytes(b"not a model at all")
    report = inspect_folder(folder)
    assert not report.loadable and any(entry.path in p for p in report.problems)
    with pytest.raises(ModelFolderError, match="model.cbm"):
        Predictor.load(folder)
