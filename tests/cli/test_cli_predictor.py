"""`polymodal fit / predict / evaluate` end to end on an exported built-in dataset."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from polymodal.api import Predictor
from polymodal.cli import main
from polymodal.data.readers import read_table

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """200 exported digits with an ID column added, and a predictor fitted through the CLI."""
    folder = tmp_path_factory.mktemp("digits")
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "export", "digits", str(folder / "data"), "--n", "200"])
    assert exc.value.code == 0
    for name, start in (("train.csv", 1000), ("test.csv", 5000)):
        path = folder / "data" / name
        table = pd.read_csv(path)
        table.insert(0, "sample_id", range(start, start + len(table)))
        table.to_csv(path, index=False)
    return folder


@pytest.fixture(scope="module")
def model_dir(digits):
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(digits / "data" / "train.csv"), "--label", "label",
              "--preset", "fast", "--seed", "0", "--out", str(digits / "model")])
    assert exc.value.code == 0
    return digits / "model"


def test_fit_saves_a_model_and_prints_the_leaderboard(model_dir, digits, run_cli):
    predictor = Predictor.load(model_dir)
    assert predictor.problem_type_ == "multiclass" and predictor.classes_.tolist() == list(range(10))
    assert predictor.schema_.modality("image") == "image"
    assert predictor.schema_.modality("sample_id") == "ignored"
    board = predictor.leaderboard()
    assert board["chosen"].sum() == 1 and "random_forest" in set(board["model"])
    # Printing goes through the same command; run a tiny refit to see its output.
    code, out, err = run_cli("fit", str(digits / "data" / "train.csv"), "--label", "label",
                             "--time-limit", "0.01", "--out", str(digits / "tiny-model"))
    assert code == 0, err
    tiny = Predictor.load(digits / "tiny-model")
    assert tiny.chosen_ == "random_forest"  # the time limit was too small for more
    assert tiny.leaderboard()["model"].tolist() == ["random_forest"]
    assert "random_forest" in out  # the leaderboard was printed


def test_predict_writes_predictions_in_row_order(model_dir, digits, run_cli):
    out_csv = digits / "preds.csv"
    code, out, err = run_cli("predict", str(model_dir), str(digits / "data" / "test.csv"),
                             "--out", str(out_csv))
    assert code == 0, err
    preds = pd.read_csv(out_csv)
    test = pd.read_csv(digits / "data" / "test.csv")
    assert list(preds.columns) == ["sample_id", "prediction", *[f"proba_{k}" for k in range(10)]]
    assert preds["sample_id"].tolist() == test["sample_id"].tolist()
    expected = Predictor.load(model_dir).predict(read_table(digits / "data" / "test.csv"))
    assert preds["prediction"].tolist() == expected.tolist()
    assert (preds["prediction"] == preds.filter(like="proba_").to_numpy().argmax(axis=1)).all()
    assert (preds["prediction"] == test["label"]).mean() > 0.5  # it learned the digits


def test_evaluate_prints_metrics_and_writes_the_report(model_dir, digits, run_cli):
    report_dir = digits / "report"
    code, out, err = run_cli("evaluate", str(model_dir), str(digits / "data" / "test.csv"),
                             "--out", str(report_dir))
    assert code == 0, err
    assert "accuracy" in out and "f1_macro" in out
    if importlib.util.find_spec("polymodal.evaluate.report") is not None:
        assert (report_dir / "report.md").is_file() and (report_dir / "report.html").is_file()


def test_user_mistakes_are_one_line_errors(model_dir, digits, run_cli):
    code, _, err = run_cli("predict", str(digits / "data"), str(digits / "data" / "test.csv"),
                           "--out", str(digits / "x.csv"))
    assert code == 2 and "not a (complete) polymodal model folder" in err
    assert "Traceback" not in err

    code, _, err = run_cli("fit", str(digits / "data" / "train.csv"), "--label", "nosuch",
                           "--out", str(digits / "m2"))
    assert code == 2 and "nosuch" in err and "Traceback" not in err

    for value, expected in (('{"hflip": tru', "--image-augment '{\"hflip\": tru' is not valid JSON"),
                            ("[1]", "image_augment='[1]' must be None, one of"),
                            ('{"flip": true}', "image_augment has unknown key(s) ['flip']")):
        code, _, err = run_cli("fit", str(digits / "data" / "train.csv"), "--label",
                               "label", "--image-augment", value, "--out", str(digits / "m3"))
        assert code == 2 and expected in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (digits / "m3").exists()

    for item, expected in (("network.widht=3", "'network.widht'"), ("width", "--set 'width'"),
                           ("training.lr=fast", "training.lr='fast'")):
        code, _, err = run_cli("fit", str(digits / "data" / "train.csv"), "--label", "label",
                               "--set", item, "--out", str(digits / "m4"))
        assert code == 2 and expected in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (digits / "m4").exists()

    bad = digits / "no_image.csv"
    pd.read_csv(digits / "data" / "test.csv").drop(columns=["sample_id"]).rename(
        columns={"label": "digit"}).to_csv(bad, index=False)
    code, _, err = run_cli("evaluate", str(model_dir), str(bad))
    assert code == 2 and "label" in err and "Traceback" not in err


def test_predict_names_the_categories_the_model_never_learned(served_model_dirs, run_cli,
                                                              tmp_path):
    model, folder = served_model_dirs["predictor"], served_model_dirs["table"]
    table = pd.read_csv(folder / "table.csv")
    table.loc[[0, 3, 5], "color"] = ["teal", "teal", "mauve"]
    table.loc[6, "color"] = None  # a missing cell is not an unseen value
    for column in ("image", "audio"):  # the media stay where the shared fixture wrote them
        table[column] = [str(folder / p) for p in table[column]]
    path = tmp_path / "unseen-colors.csv"
    table.to_csv(path, index=False)
    predictor = Predictor.load(model)
    assert predictor.unseen_categories(folder / "table.csv") == {}
    assert predictor.unseen_categories(path) == {"color": {"teal": 2, "mauve": 1}}
    code, out, err = run_cli("predict", model, path, "--out", tmp_path / "preds.csv")
    assert code == 0, err
    assert "'color'" in err and "'teal'" in err and "'mauve'" in err
    assert len(pd.read_csv(tmp_path / "preds.csv")) == len(table)  # every row still predicted
