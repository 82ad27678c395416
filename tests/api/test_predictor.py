"""The Predictor: every problem type and modality, save/load, seeds, resume, bad input.

Tables are tiny (8-60 rows) and most fits are bounded by epochs, not time, so results
do not depend on the machine's speed; ``text_encoder="hashed"`` avoids loading MiniLM
except in the one test that checks it is used.
"""

from __future__ import annotations

import json
import shutil
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.api import Predictor
from polymodal.api.neural import NeuralCandidate
from polymodal.data.readers import read_table
from polymodal.data.text import minilm_available
from polymodal.errors import ConfigError, DataError, ModelFolderError, NotFittedError, SchemaError
from polymodal.evaluate.metrics import PRIMARY_METRIC
from polymodal.models.classic import ClassicModel
from polymodal.models.ensemble import blend, ensemble_selection

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = {"preset": "fast", "text_encoder": "hashed", "verbosity": 0}


def tabular_table(problem: str, n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Numbers and a category whose link to the label is strong enough to learn from 48 rows."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    red = (color == "red").astype(float)
    if problem == "binary":
        label = np.where(2 * x1 + 2 * red > 0.5, "yes", "no")
    elif problem == "multiclass":
        label = np.select([x1 < -0.4, x1 > 0.4], ["low", "high"], "mid")
    elif problem == "regression":
        label = 3.0 * x1 + 2.0 * red + 10.0
    else:  # multilabel: "|"-separated tags
        label = ["|".join(t for t, on in (("a", a > 0), ("b", b), ("c", c > 0)) if on) or "c"
                 for a, b, c in zip(x1, color == "red", x2, strict=True)]
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "label": label})


@pytest.fixture(scope="module")
def media_table(tmp_path_factory, write_tiny_table) -> pd.DataFrame:
    """The conftest 8-row table with every modality, read as a user would."""
    return read_table(write_tiny_table(tmp_path_factory.mktemp("media")))


@pytest.fixture(scope="module")
def fitted(media_table) -> Predictor:
    """One predictor on every modality, shared by the tests that only read it."""
    return Predictor("label", **FAST).fit(media_table)


# --------------------------------------------------------------------------- problem types


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression", "multilabel"])
def test_every_problem_type(problem):
    train, test = tabular_table(problem, seed=0), tabular_table(problem, n=40, seed=1)
    p = Predictor("label", **FAST).fit(train)
    assert p.problem_type_ == problem
    board = p.leaderboard()
    metric = PRIMARY_METRIC[problem][0]
    assert list(board.columns)[:6] == ["model", f"val_{metric}", "fit_time_s", "predict_time_s",
                                       "chosen", "note"]
    # a small table: cross-validated too, which the leaderboard says
    assert list(board.columns)[6:] == [f"cv_{metric}", "judged_on"]
    assert {"random_forest", "hist_gradient_boosting", "neural"} <= set(board["model"])
    for booster in ("lightgbm", "catboost"):
        assert (booster in set(board["model"])) == (problem != "multilabel")
    assert board["chosen"].sum() == 1

    predictions = p.predict(test)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (len(test),)
    metrics = p.evaluate(test)
    if problem == "regression":
        assert predictions.dtype == np.float64
        assert metrics["r2"] > 0.5, metrics  # values come back in the label's units
        assert not hasattr(p, "predict_proba")  # as scikit-learn's regressors
        with pytest.raises(AttributeError) as error:
            p.predict_proba(test)
        assert "does regression" in str(error.value.__cause__)
        return
    proba = p.predict_proba(test)
    assert isinstance(p.classes_, np.ndarray) and proba.shape == (len(test), len(p.classes_))
    if problem == "multilabel":
        assert p.classes_.tolist() == ["a", "b", "c"]
        assert all(isinstance(tags, list) and set(tags) <= {"a", "b", "c"} for tags in predictions)
        assert metrics["f1_macro"] > 0.5, metrics
        return
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(predictions) <= set(p.classes_) and isinstance(predictions[0], str)
    assert (predictions == p.classes_[proba.argmax(axis=1)]).all()
    assert metrics["accuracy"] > 0.7, metrics


# --------------------------------------------------------------------------- modalities


@pytest.mark.parametrize(
    "columns, modality",
    [(["image"], "image"), (["caption"], "text"), (["audio"], "audio"),
     (["price", "color", "tags", "date"], None)],
    ids=["image", "text", "audio", "tabular"],
)
def test_each_modality_alone(media_table, columns, modality):
    table = media_table[[*columns, "label"]]
    table.attrs = dict(media_table.attrs)
    p = Predictor("label", **FAST).fit(table)
    features = p.schema_.features()
    assert features == columns
    if modality is not None:
        assert p.schema_.modality(columns[0]) == modality
    predictions = p.predict(table)
    assert set(predictions) <= {"yes", "no"} and len(predictions) == 8
    assert p.leaderboard()["model"].iloc[0] == "random_forest"


def test_all_modalities_together(fitted, media_table):
    assert set(fitted.schema_.features()) == {"image", "caption", "audio", "price", "color",
                                              "tags", "date"}
    assert fitted.schema_.modality("id") == "ignored"  # an ID is not a feature
    assert "neural" in fitted.candidates_
    network = fitted.candidates_["neural"].model_
    assert set(network.modalities()) == {"tabular", "caption", "image", "audio"}
    proba = fitted.predict_proba(media_table)
    assert proba.shape == (8, 2) and fitted.classes_.tolist() == ["no", "yes"]
    assert fitted.cleaning_report_.num_rows == 8


def test_drop_is_the_same_as_a_missing_column(fitted, media_table):
    dropped = fitted.predict_proba(media_table, drop={"image", "audio"})
    without = media_table.drop(columns=["image", "audio"])
    with pytest.warns(UserWarning, match="missing from the table"):
        missing = fitted.predict_proba(without)
    np.testing.assert_array_equal(dropped, missing)
    with pytest.raises(ConfigError, match="nosuch"):
        fitted.predict_proba(media_table, drop={"nosuch"})


# --------------------------------------------------------------------------- save / load


def test_save_load_gives_identical_predictions(fitted, media_table, tmp_path):
    folder = fitted.save(tmp_path / "model")
    for name in ("config.json", "schema.json", "cleaning.json", "transform/transform.json",
                 "ensemble.json", "leaderboard.csv", "versions.json", "train_log.jsonl",
                 "format_version"):
        assert (folder / name).exists(), name
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    config = json.loads((folder / "config.json").read_text())
    assert config["problem_type"] == "binary" and config["recipe"]["network"]["width"] == 128  # an image table

    loaded = Predictor.load(folder)
    np.testing.assert_array_equal(loaded.predict_proba(media_table),
                                  fitted.predict_proba(media_table))
    assert loaded.predict(media_table).tolist() == fitted.predict(media_table).tolist()
    pd.testing.assert_frame_equal(loaded.leaderboard(), fitted.leaderboard(), check_exact=False)
    assert loaded.evaluate(media_table) == fitted.evaluate(media_table)
    assert loaded.classes_.tolist() == fitted.classes_.tolist() and loaded.schema_.to_dict() == fitted.schema_.to_dict()
    assert loaded.cleaning_report_.issues == fitted.cleaning_report_.issues
    steps = [r["step"] for r in fitted.training_history_]
    assert steps and [r["step"] for r in loaded.training_history_] == steps

    # Saving again over a polymodal folder swaps in the new one.
    fitted.save(folder)
    assert Predictor.load(folder).chosen_ == fitted.chosen_


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize(("kind", "file"), [("lightgbm", "model.txt"), ("catboost", "model.cbm")])
def test_booster_candidate_fits_saves_loads_and_repeats_with_a_seed(problem, kind, file, tmp_path):
    """A tabular fit has the LightGBM and CatBoost candidates; saved in their own formats,
    they load to the same outputs, and the same seed fits the same model."""
    train, test = tabular_table(problem, n=80, seed=0), tabular_table(problem, n=40, seed=1)
    recipe = {"candidates.neural": False, "candidates.classic": [kind]}
    first, second = (Predictor("label", seed=5, recipe=recipe, **FAST).fit(train)
                     for _ in range(2))
    assert first.chosen_ == kind
    folder = first.save(tmp_path / "model")
    assert (folder / "models" / kind / file).is_file()
    loaded = Predictor.load(folder)
    outputs = "predict" if problem == "regression" else "predict_proba"
    for other in (loaded, second):
        np.testing.assert_array_equal(getattr(other, outputs)(test), getattr(first, outputs)(test))


def test_neural_candidate_round_trip(fitted, media_table, tmp_path):
    from polymodal.data.dataset import TableDataset, collate

    network = fitted.candidates_["neural"]
    network.save(tmp_path / "neural")
    loaded = NeuralCandidate.load(tmp_path / "neural")
    for key, value in network.model_.state_dict().items():
        assert torch.equal(value, loaded.model_.state_dict()[key]), key
    rows = TableDataset(media_table, fitted.transform_, with_label=False)
    batch = collate([rows[i] for i in range(len(rows))])
    np.testing.assert_array_equal(network.predict_outputs(batch), loaded.predict_outputs(batch))


def test_bad_model_folders(fitted, tmp_path):
    folder = fitted.save(tmp_path / "model")
    with pytest.raises(ModelFolderError, match="not a folder"):
        Predictor.load(tmp_path / "nowhere")

    incomplete = tmp_path / "incomplete"
    shutil.copytree(folder, incomplete)
    (incomplete / "transform" / "transform.json").unlink()
    with pytest.raises(ModelFolderError, match="incomplete.*transform"):
        Predictor.load(incomplete)

    future = tmp_path / "future"
    shutil.copytree(folder, future)
    (future / "format_version").write_text("999\n")
    with pytest.raises(ModelFolderError, match="format_version '999'"):
        Predictor.load(future)

    # A user's folder is never overwritten.
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("precious")
    with pytest.raises(ModelFolderError, match="not a polymodal model folder"):
        fitted.save(user)
    assert (user / "thesis.txt").read_text() == "precious"
    assert sorted(p.name for p in user.iterdir()) == ["thesis.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".user.")]  # no temp left


def test_classic_model_refuses_untrusted_types(tmp_path):
    import fractions

    import skops.io as sio

    model = ClassicModel("random_forest", "binary", 2)
    folder = tmp_path / "rf"
    folder.mkdir()
    sio.dump(fractions.Fraction(1, 3), folder / "model.skops")
    (folder / "model.json").write_text(json.dumps(model.config()))
    with pytest.raises(ModelFolderError, match="fractions.Fraction"):
        ClassicModel.load(folder)


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_predictions():
    train = tabular_table("multiclass")
    a = Predictor("label", seed=3, **FAST).fit(train)
    b = Predictor("label", seed=3, **FAST).fit(train)
    np.testing.assert_array_equal(a.predict_proba(train), b.predict_proba(train))
    metric = "val_accuracy"
    assert a.leaderboard()[metric].tolist() == b.leaderboard()[metric].tolist()
    for key, value in a.candidates_["neural"].model_.state_dict().items():
        assert torch.equal(value, b.candidates_["neural"].model_.state_dict()[key]), key


class Crash(Exception):
    """Stands for the process dying mid-training."""


class CrashAtStep:
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state, model) -> None:
        if state.step == self.step:
            raise Crash(f"crashed at step {state.step}")


def test_resume_after_an_interrupted_fit_gives_the_same_model(tmp_path):
    train = tabular_table("binary")
    reference = Predictor("label", **FAST).fit(train)

    resume_dir = tmp_path / "resume"
    with pytest.raises(Crash):
        Predictor("label", **FAST).fit(train, resume_dir=resume_dir, checkpoint_every_s=0,
                                       callbacks=[CrashAtStep(6)])
    assert (resume_dir / "neural" / "checkpoint.safetensors").is_file()
    resumed = Predictor("label", **FAST).fit(train, resume_dir=resume_dir, checkpoint_every_s=0)
    neural = next(r for r in resumed.train_log_
                  if r["event"] == "candidate" and r["model"] == "neural")
    assert neural["resumed_from_step"] == 5  # the last checkpoint before the crash
    assert neural["steps"] > 6  # and it trained on past the crash

    for key, value in reference.candidates_["neural"].model_.state_dict().items():
        assert torch.equal(value, resumed.candidates_["neural"].model_.state_dict()[key]), key
    np.testing.assert_array_equal(reference.predict_proba(train), resumed.predict_proba(train))


# --------------------------------------------------------------------------- not fitted


def test_not_fitted_errors(tmp_path):
    p = Predictor("label")
    table = tabular_table("binary", n=5)
    for call in (lambda: p.predict(table), lambda: p.predict_proba(table),
                 lambda: p.evaluate(table), p.leaderboard, lambda: p.save(tmp_path / "m"),
                 lambda: p.classes_):
        with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(\.\.\.\) or Predictor.load"):
            call()
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_are_reported_together():
    with pytest.raises(ConfigError) as info:
        Predictor("label", preset="huge", seed=-1, time_limit=0).fit(tabular_table("binary"))
    message = str(info.value)
    assert "preset='huge'" in message and "seed=-1" in message and "time_limit=0" in message


def test_label_with_one_class():
    table = tabular_table("binary")
    table["label"] = "yes"
    with pytest.raises(SchemaError, match="single class"):
        Predictor("label", **FAST).fit(table)


def test_regression_label_with_text():
    table = tabular_table("regression")
    table["label"] = table["label"].astype(object)
    table.loc[3, "label"] = "about ten"
    with pytest.raises(SchemaError, match="not numbers.*about ten"):
        Predictor("label", problem_type="regression", **FAST).fit(table)


def test_tuning_data_without_label():
    table = tabular_table("binary")
    with pytest.raises(SchemaError, match="tuning_data lacks the label column 'label'"):
        Predictor("label", **FAST).fit(table, tuning_data=table.drop(columns=["label"]))


def test_tuning_data_is_used_for_validation():
    train, tuning = tabular_table("binary", seed=0), tabular_table("binary", n=30, seed=2)
    p = Predictor("label", **FAST).fit(train, tuning_data=tuning)
    assert p.train_log_[-1]["num_train_rows"] == 60 and p.train_log_[-1]["num_val_rows"] == 30


def test_time_limit_too_small_keeps_the_fastest_baseline():
    table = tabular_table("binary")
    with pytest.warns(UserWarning, match="too small to train anything"):
        p = Predictor("label", time_limit=0.01, **FAST).fit(table)
    assert p.leaderboard()["model"].tolist() == ["random_forest"]
    assert p.chosen_ == "random_forest"
    assert set(p.predict(table)) <= {"yes", "no"}


def test_predict_table_checks(fitted, media_table):
    with pytest.raises(DataError, match=r"lacks column\(s\) \['price'\]"):
        fitted.predict(media_table.drop(columns=["price"]))

    extra = media_table.assign(notes="spare", shoe_size=42)
    with pytest.warns(UserWarning, match=r"\['notes', 'shoe_size'\].*ignored"):
        with_extra = fitted.predict_proba(extra)
    np.testing.assert_array_equal(with_extra, fitted.predict_proba(media_table))

    unseen = media_table.assign(color=["purple"] * 8)  # the unknown bucket, not an error
    assert len(fitted.predict(unseen)) == 8

    shuffled = media_table.iloc[::-1]  # predictions follow the input's row order
    assert fitted.predict(shuffled).tolist() == fitted.predict(media_table).tolist()[::-1]


def test_evaluate_needs_the_label(fitted, media_table):
    with pytest.raises(DataError, match="no label column 'label'"):
        fitted.evaluate(media_table.drop(columns=["label"]))


# --------------------------------------------------------------------------- pieces


def test_ensemble_selection_weights_the_better_model():
    y = np.array([0, 1, 1, 0, 1, 0])
    good = np.eye(2)[y] * 0.8 + 0.1  # (6, 2), right on every row
    bad = np.eye(2)[1 - y] * 0.8 + 0.1  # wrong on every row

    def accuracy(outputs: np.ndarray) -> float:
        return float(np.mean(outputs.argmax(axis=1) == y))

    weights = ensemble_selection({"bad": bad, "good": good}, accuracy, mode="max", num_rounds=10)
    assert weights == {"good": 1.0}
    half = blend({"a": good, "b": bad}, {"a": 0.5, "b": 0.5})
    np.testing.assert_allclose(half, 0.5)
    with pytest.raises(ConfigError, match="mode"):
        ensemble_selection({"a": good}, accuracy, mode="up")


def test_ensemble_selection_averages_the_models_validation_cannot_tell_apart():
    """Two models right on every validation row share the weight; a third, right on fewer
    rows alone, is not added for free even where the blend's accuracy would not change."""
    y = np.array([0, 1, 1, 0, 1, 0])
    sure = np.eye(2)[y] * 0.98 + 0.01
    unsure = np.eye(2)[y] * 0.2 + 0.4
    weaker = sure.copy()
    weaker[0] = weaker[0, ::-1]  # wrong on row 0

    def accuracy(outputs: np.ndarray) -> float:
        return float(np.mean(outputs.argmax(axis=1) == y))

    weights = ensemble_selection({"weaker": weaker, "unsure": unsure, "sure": sure}, accuracy,
                                 num_rounds=6)
    assert weights == {"unsure": 0.5, "sure": 0.5}
    # One row apart is within a tolerance of one row: the weaker one joins, where the blend
    # stays right on every row.
    weights = ensemble_selection({"weaker": weaker, "unsure": unsure, "sure": sure}, accuracy,
                                 num_rounds=6, tolerance=1 / 6)
    assert set(weights) == {"weaker", "unsure", "sure"}


@pytest.mark.skipif(not minilm_available(), reason="MiniLM weights are not installed")
def test_text_uses_minilm_by_default(media_table):
    table = media_table[["caption", "label"]]
    p = Predictor("label", preset="fast", verbosity=0).fit(table)
    assert p.transform_.text_embedder_.kind == "minilm"
    assert len(p.predict(table)) == 8


def test_network_takes_the_threads_back_when_the_classic_models_are_done():
    from types import SimpleNamespace

    from polymodal.api.candidate_schedule import ThreadsBack

    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    previous = torch.get_num_threads()
    log: list = []
    try:
        torch.set_num_threads(1)
        callback = ThreadsBack(worker, 2, log)
        callback.on_step_end(SimpleNamespace(step=3), None)
        assert torch.get_num_threads() == 1 and log == []  # the side thread still runs
        release.set()
        worker.join()
        callback.on_step_end(SimpleNamespace(step=4), None)
        assert torch.get_num_threads() == 2
        callback.on_step_end(SimpleNamespace(step=5), None)
        assert log == [{"event": "network_threads", "threads": 2, "step": 4}]
    finally:
        release.set()
        torch.set_num_threads(previous)


def test_verbose_fit_prints_each_candidate(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = Predictor("label", preset="fast", text_encoder="hashed", verbosity=1).fit(
            tabular_table("binary", n=30))
    err = capsys.readouterr().err
    candidates = [e["model"] for e in p.train_log_ if e.get("event") == "candidate"]
    assert {"random_forest", "hist_gradient_boosting", "neural"} <= set(candidates)
    for name in [*candidates, p.chosen_]:  # one line per candidate, and the chosen one
        assert name in err


def test_media_tables_fit_the_classic_models_beside_the_network(media_table):
    """With two or more threads, a media table's classic models train in a side thread
    while the network trains: every candidate is still there, in the usual order, and
    the refits of the classic models kept (a small table) are the ones logged."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        predictor = Predictor("label", time_limit=60, **FAST).fit(media_table)
        assert torch.get_num_threads() == 2  # given back after the fit
    finally:
        torch.set_num_threads(previous)
    board = predictor.leaderboard()
    names = board["model"].tolist()
    assert names[:3] == ["random_forest", "extra_trees", "hist_gradient_boosting"]
    assert "neural" in names
    assert set(predictor.refit_models_) <= {"random_forest", "extra_trees",
                                            "hist_gradient_boosting"}
    refits = [e for e in predictor.train_log_ if e.get("event") == "refit"]
    assert [e["model"] for e in refits] == predictor.refit_models_
    assert any(e.get("event") == "media_decoded" for e in predictor.train_log_)
    beside = [e for e in predictor.train_log_ if e.get("event") == "classic_beside_network"]
    assert beside == [{"event": "classic_beside_network", "classic_threads": 1,
                       "network_threads": 1}]
    predictions = predictor.predict(media_table)
    assert len(predictions) == len(media_table)


def test_a_refit_beside_the_network_that_runs_out_of_time_is_dropped(media_table, monkeypatch):
    """The side thread's refits run under the network's deadline: one it stops is not
    kept, and the model trained on the training rows predicts."""
    from polymodal.models.classic import ClassicModel

    real = ClassicModel.refit_like

    def deadline_passed(self, X, y, *, time_limit_s=None):  # the real refit, out of time
        return real(self, X, y, time_limit_s=None if time_limit_s is None else 0.0)

    monkeypatch.setattr(ClassicModel, "refit_like", deadline_passed)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        predictor = Predictor("label", time_limit=60, **FAST).fit(media_table)
    finally:
        torch.set_num_threads(previous)
    assert any(e.get("event") == "classic_beside_network" for e in predictor.train_log_)
    # The forests grow 10 trees at a time past the deadline's first chunk: stopped.
    # (A boosting model done in its first chunk is whole, and kept.)
    assert {"random_forest", "extra_trees"} <= set(predictor.candidates_)
    assert not {"random_forest", "extra_trees"} & set(predictor.refit_models_)
    assert predictor.candidates_["random_forest"].size_ == 100  # the first fit's forest
    refits = [e["model"] for e in predictor.train_log_ if e.get("event") == "refit"]
    assert refits == predictor.refit_models_
    assert len(predictor.predict(media_table)) == len(media_table)


# --------------------------------------------------------------------------- image augmentation


def test_mirroring_trains_on_mirror_images_and_keeps_tta_only_when_it_validates_better(
        media_table, tmp_path):
    plain = Predictor("label", **FAST).fit(media_table)
    assert plain.transform_.augment_ is None
    assert not any(e.get("event") == "tta_hflip" for e in plain.train_log_)
    assert plain.candidates_["neural"].tta_hflip is False

    mirrored = Predictor("label", image_augment="hflip", **FAST).fit(media_table)
    assert mirrored.transform_.augment_ == {"hflip": True, "shift_px": 0, "rotate_deg": 0.0}
    events = [e for e in mirrored.train_log_ if e.get("event") == "tta_hflip"]
    assert len(events) == 1
    event, network = events[0], mirrored.candidates_["neural"]
    assert event["kept"] == (event["val_accuracy_tta"] > event["val_accuracy_plain"])
    assert network.tta_hflip == event["kept"]
    board = mirrored.leaderboard().set_index("model")
    chosen_value = event["val_accuracy_tta"] if event["kept"] else event["val_accuracy_plain"]
    assert board.loc["neural", "val_accuracy"] == pytest.approx(chosen_value)

    # The setting and the TTA choice survive save/load, with identical predictions.
    loaded = Predictor.load(mirrored.save(tmp_path / "model"))
    assert loaded.get_params()["image_augment"] == "hflip"
    if "neural" in loaded.models_:
        assert loaded.models_["neural"].tta_hflip == network.tta_hflip
    np.testing.assert_array_equal(loaded.predict_proba(media_table),
                                  mirrored.predict_proba(media_table))


def test_mirror_tta_averages_the_outputs_of_each_image_and_its_mirror(fitted, media_table,
                                                                      tmp_path):
    from polymodal.api.neural import mirrored, network_outputs
    from polymodal.data.dataset import TableDataset, collate

    network = fitted.candidates_["neural"]
    rows = TableDataset(media_table, fitted.transform_, with_label=False)
    batch = collate([rows[i] for i in range(len(rows))])
    flipped = mirrored(batch)
    for column, images in batch.image.items():
        assert torch.equal(flipped.image[column], images.flip(-1))
    assert torch.equal(flipped.numeric, batch.numeric)  # nothing else changes
    plain = network_outputs(network.model_, batch)
    expected = 0.5 * (plain + network_outputs(network.model_, flipped))
    assert not np.allclose(plain, expected)  # the mirror changes the outputs here
    network.save(tmp_path / "neural")
    tta = NeuralCandidate.load(tmp_path / "neural")
    tta.tta_hflip = True
    np.testing.assert_array_equal(tta.predict_outputs(batch), expected)
    tta.save(tmp_path / "neural_tta")
    assert NeuralCandidate.load(tmp_path / "neural_tta").tta_hflip is True


def test_image_augment_is_checked():
    with pytest.raises(ConfigError, match="image_augment='mirror'.*'hflip'"):
        Predictor("label", image_augment="mirror").fit(tabular_table("binary"))
    with pytest.raises(ConfigError, match=r"image_augment has unknown key\(s\) \[.vflip.\]"):
        Predictor("label", image_augment={"vflip": True}, **FAST).fit(tabular_table("binary"))


def test_audio_augment_is_checked():
    with pytest.raises(ConfigError, match="audio_augment='loud'.*'speech'"):
        Predictor("label", audio_augment="loud").fit(tabular_table("binary"))
    with pytest.raises(ConfigError, match=r"audio_augment has unknown key\(s\) \[.echo.\]"):
        Predictor("label", audio_augment={"echo": 1}, **FAST).fit(tabular_table("binary"))
    with pytest.raises(ConfigError, match=r"audio_augment\['speed'\]=1.5"):
        Predictor("label", audio_augment={"speed": 1.5}, **FAST).fit(tabular_table("binary"))


def test_a_large_image_only_table_needs_no_fusion_mlp(media_table, monkeypatch):
    """The network trains with the recipe resolved for the table (saved with the model)."""
    import polymodal.recipes.predictor as recipes

    images = media_table[["image", "label"]].copy()
    images.attrs = dict(media_table.attrs)
    # Make this 8-row table count as "large" to see the large-table batch settings too.
    monkeypatch.setattr(recipes, "LARGE_MEDIA_ROWS", 4)
    single = Predictor("label", **FAST).fit(images)
    assert single.recipe_.network.fusion == "single"
    assert single.neural_config_["network"]["fusion"] == "single"
    assert single.neural_config_["train"]["lr"] == single.recipe_.training.lr == 4.2e-3
    assert single.candidates_["neural"].model_.config()["fusion"] == "single"
    # Pixels alone: no classic model, no flat features; the network alone predicts.
    assert single.leaderboard()["model"].tolist() == ["neural"] and single.chosen_ == "neural"
    assert not any(e.get("event") == "flat_features" for e in single.train_log_)
    assert len(single.predict(images)) == len(images)
    asked = Predictor("label", fusion="concat", **FAST).fit(images)
    assert asked.neural_config_["network"]["fusion"] == "concat"  # the user's choice stands
    both = Predictor("label", **FAST).fit(media_table)  # several modalities: fused
    assert both.neural_config_["network"]["fusion"] == "concat"
    assert "random_forest" in both.leaderboard()["model"].tolist()
    monkeypatch.setattr(recipes, "LARGE_MEDIA_ROWS", 10**9)
    small = Predictor("label", **FAST).fit(images)  # small tables keep the MLP
    assert small.neural_config_["network"]["fusion"] == "concat"
    assert small.neural_config_["train"]["lr"] == small.recipe_.training.lr == 3e-3
    assert small.neural_config_["train"]["batch_size"] == min(128, len(small.train_rows_))


def test_recipe_overrides_reach_the_network_and_reload_equal(tmp_path):
    table = tabular_table("binary")
    p = Predictor("label", recipe={"network.width": 32, "candidates.classic": ["linear"],
                                   "training.max_epochs": 3}, **FAST).fit(table)
    assert p.neural_config_["network"]["width"] == 32
    assert p.neural_config_["train"]["max_epochs"] == 3
    assert set(p.models_) <= {"linear", "neural"}
    loaded = Predictor.load(p.save(tmp_path / "model"))
    assert loaded.recipe_ == p.recipe_
    assert json.loads((tmp_path / "model" / "config.json").read_text())["recipe"]["network"][
        "width"] == 32
    with pytest.raises(ConfigError, match="'network.depth'"):
        Predictor("label", recipe={"network.depth": 2}, **FAST).fit(table)


def test_a_synthesizer_gets_a_share_of_the_time_limit_not_a_second_one():
    """Augmentation counts against the predictor's time_limit: the synthesizer is told its
    share, at most half of what is left, and is called with the training split alone."""
    table = tabular_table("binary")
    seen = {}

    def synthesize(train, label, *, time_limit_s):
        seen.update(rows=len(train), label=label, time_limit_s=time_limit_s)
        return train.iloc[:0], {"num_synthetic": 0}

    p = Predictor("label", time_limit=30, **FAST).fit(table, augment=synthesize)
    assert seen["label"] == "label" and seen["rows"] == len(p.train_rows_)
    assert 0 < seen["time_limit_s"] <= 15
    Predictor("label", **FAST).fit(table, augment=synthesize)  # no limit: none passed on
    assert seen["time_limit_s"] is None


def test_a_folder_saved_before_recipes_loads_and_predicts_the_same(tmp_path):
    """Folders written before the recipe existed hold the preset's settings under "preset"
    and no "recipe": they load (recipe_ None) and predict identically."""
    table = tabular_table("binary")
    p = Predictor("label", **FAST).fit(table)
    folder = p.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    del config["recipe"]
    config["preset"] = {"fusion": "concat", "width": 64, "batch_size": 64, "lr": 3e-3}
    config["params"].pop("recipe")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "format_version").write_text("2\n")
    old = Predictor.load(folder)
    assert old.recipe_ is None
    np.testing.assert_allclose(old.predict_proba(table), p.predict_proba(table))
    # It can be saved again (as the current version) and evaluated.
    again = Predictor.load(old.save(tmp_path / "again"))
    assert again.recipe_ is None and (tmp_path / "again" / "format_version").read_text() == "3\n"
    assert old.evaluate(table)["accuracy"] == p.evaluate(table)["accuracy"]


def test_a_budget_started_before_fit_counts_what_came_before():
    """fit(budget=) uses the caller's clock: a budget already spent leaves the fallback
    forest alone, where the same time_limit started afresh trains every candidate."""
    import time

    from polymodal.api import TimeBudget

    table = tabular_table("binary")
    spent = TimeBudget(30, start=time.perf_counter() - 29.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        p = Predictor("label", time_limit=30, **FAST).fit(table, budget=spent)
    assert list(p.leaderboard()["model"]) == ["random_forest"]
    fresh = Predictor("label", time_limit=30, **FAST).fit(table)
    assert len(fresh.leaderboard()) > 1


def test_a_budget_with_another_limit_and_a_bad_synthesizer_are_refused_before_any_work():
    from polymodal.api import TimeBudget
    from polymodal.workflows.augment import AugmentConfig

    table = tabular_table("binary")
    with pytest.raises(ConfigError, match="budget= counts to None s but time_limit=30"):
        Predictor("label", time_limit=30, **FAST).fit(table, budget=TimeBudget(None))
    with pytest.raises(ConfigError, match="ratio=-1.0"):
        Predictor("label", **FAST).fit(table, augment=AugmentConfig(ratio=-1.0))


def test_saved_folders_get_the_permissions_mkdir_would_give(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        folder = Predictor("label", **FAST).fit(tabular_table("binary")).save(tmp_path / "m")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
