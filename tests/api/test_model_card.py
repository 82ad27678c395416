"""``MODEL_CARD.md``: written by every save, carried through load and save, never needed to load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal import Generator, Predictor, datasets
from polymodal.api.model_folder import inspect_folder
from polymodal.data.fingerprint import table_fingerprint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=90), "colour": rng.choice(["red", "blue"], 90)})
    df["label"] = np.where(df.x > 0.3, "yes", np.where(df.x < -1.8, "rare", "no"))
    return df


@pytest.fixture(scope="module")
def predictor(table) -> Predictor:
    return Predictor("label", verbosity=0, recipe={
        "training.max_epochs": 1, "candidates.classic": "random_forest"}).fit(table)


def test_predictor_card_says_what_the_model_saw(predictor, table, tmp_path):
    folder = predictor.save(tmp_path / "model")
    card = (folder / "MODEL_CARD.md").read_text()
    fingerprint = table_fingerprint(table)
    assert fingerprint["sha256"] in card and f"{len(table):,} rows x 3 columns" in card
    for section in ("## Schema", "## Cleaning findings", "## Candidates",
                    "## Validation metrics", "## Intended use and known limits",
                    "## Versions", "## Resolved recipe"):
        assert section in card
    rare = int((table.label == "rare").sum())
    assert f"`rare` ({rare})" in card  # a class with few rows is named as a limit
    assert all(name in card for name in predictor.leaderboard_["model"])
    assert "| colour | categorical |" in card and '"max_epochs": 1' in card

    # Load and save again: the same card (the fingerprint travels in config.json).
    again = Predictor.load(folder).save(tmp_path / "again")
    assert (again / "MODEL_CARD.md").read_text() == card


def test_folders_without_a_card_still_load_and_the_card_is_plain_text(predictor, table,
                                                                      tmp_path):
    folder = predictor.save(tmp_path / "model")
    report = inspect_folder(folder)
    entry = next(f for f in report.files if f.path == "MODEL_CARD.md")
    assert entry.kind == "text" and entry.problem is None and report.loadable
    (folder / "MODEL_CARD.md").unlink()  # as saved before cards existed
    loaded = Predictor.load(folder)
    np.testing.assert_array_equal(loaded.predict_proba(table), predictor.predict_proba(table))


def test_fingerprint_changes_with_any_cell(table):
    same = table_fingerprint(table.copy())
    assert same == table_fingerprint(table)
    changed = table.copy()
    changed.loc[5, "colour"] = "green"
    assert table_fingerprint(changed)["sha256"] != same["sha256"]
    arrays = pd.DataFrame({"a": [np.zeros(3), np.ones(3)]})
    other = pd.DataFrame({"a": [np.zeros(3), np.full(3, 2.0)]})
    assert table_fingerprint(arrays)["sha256"] != table_fingerprint(other)["sha256"]


def test_fingerprint_does_not_depend_on_how_many_rows_are_hashed_at_once(monkeypatch):
    """Object cells are hashed in chunks (to bound memory on image tables); the hash is
    the one the whole column at once gives, and a cell moved across a chunk edge counts."""
    import polymodal.data.fingerprint as fingerprint

    images = datasets.load("digits").head(50)
    whole = table_fingerprint(images)
    monkeypatch.setattr(fingerprint, "CHUNK_ROWS", 7)
    assert table_fingerprint(images) == whole
    swapped = images.copy()
    swapped.loc[[6, 7], "image"] = swapped.loc[[7, 6], "image"].to_numpy()
    assert table_fingerprint(swapped)["sha256"] != whole["sha256"]


def test_generator_card(tmp_path):
    train, _ = datasets.load("digits", split=True, seed=0)
    gen = Generator(condition=["label"], recipe={"training.max_epochs": 1},
                    verbosity=0).fit(train.head(200))
    folder = gen.save(tmp_path / "gen")
    card = (folder / "MODEL_CARD.md").read_text()
    assert table_fingerprint(train.head(200))["sha256"] in card
    assert "`label` (categorical)" in card and "## Resolved recipe" in card
    assert (Generator.load(folder).save(tmp_path / "again") / "MODEL_CARD.md").read_text() == card
