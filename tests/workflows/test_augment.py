"""Generative augmentation: balancing math, synthetic rows kept out of validation, the
marker column through save/load, the judge filter's counts, and `polymodal augment`.

One tiny class-conditional generator (digits 8x8, a few epochs) is trained per module
and reused; its samples are poor, which is what the filter tests need (it drops many).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal import datasets
from polymodal.api.generator import Generator
from polymodal.api.predictor import Predictor
from polymodal.data.readers import read_table
from polymodal.data.synthetic import SYNTHETIC_COLUMN, marker_mask
from polymodal.errors import ConfigError, DataError
from polymodal.workflows.augment import AugmentConfig, augment_table, synthetic_counts
from polymodal.workflows.judge import Judge

pytestmark = pytest.mark.usefixtures("one_thread")

# Fits are bounded by epochs (recipe overrides), never by seconds.
GENERATOR_FIT = {"training.max_epochs": 5}  # 15 steps on 150 digits: poor samples
# Three epochs of the network beside two forests (what ~3 s trained, without the boosting
# model the clock used to cut short; every model trains fully without a time limit).
PREDICTOR_FIT = {"training.max_epochs": 3, "candidates.classic": ["random_forest", "extra_trees"]}


@pytest.fixture(scope="module")
def digits():
    train, test = datasets.load("digits", split=True, seed=0)
    return train.iloc[:150].reset_index(drop=True), test.iloc[:100].reset_index(drop=True)


@pytest.fixture(scope="module")
def generator(digits):
    train, _ = digits
    return Generator(condition=["label"], recipe=GENERATOR_FIT, text_encoder="hashed",
                     verbosity=0).fit(train)


# ------------------------------------------------------------------------ balancing


def test_per_class_on_a_balanced_table_gives_exactly_n_each():
    assert synthetic_counts({"a": 4, "b": 4, "c": 4}, per_class=5) == {"a": 5, "b": 5, "c": 5}


def test_rare_classes_are_filled_first():
    # Budget 10: b (2) rises to a's 10 first (8 images), then both share the last 2.
    assert synthetic_counts({"a": 10, "b": 2}, per_class=5) == {"a": 1, "b": 9}
    # Budget 4: b climbs to c's 5 (3 images); the last one goes to b, listed before c.
    assert synthetic_counts({"a": 10, "b": 2, "c": 5}, ratio=4 / 17) == {"a": 0, "b": 4, "c": 0}
    # Budget 6: b climbs to c's 5 (3), then b and c share 3; b gets the odd one.
    assert synthetic_counts({"a": 10, "b": 2, "c": 5}, ratio=6 / 17) == {"a": 0, "b": 5, "c": 1}


def test_the_budget_is_spent_exactly_and_never_unlevels():
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = {f"c{i}": int(v) for i, v in enumerate(rng.integers(0, 50, rng.integers(1, 8)))}
        ratio = float(rng.uniform(0, 3))
        extra = synthetic_counts(counts, ratio=ratio)
        assert sum(extra.values()) == round(ratio * sum(counts.values()))
        totals = {c: counts[c] + extra[c] for c in counts}
        grown = [c for c in counts if extra[c] > 0]
        if grown:  # every class that grew ends within 1 of the lowest total
            assert max(totals[c] for c in grown) - min(totals.values()) <= 1


def test_default_is_one_synthetic_row_per_real_row_and_zero_adds_none():
    assert sum(synthetic_counts({"a": 7, "b": 3}).values()) == 10
    assert synthetic_counts({"a": 7, "b": 3}, per_class=0) == {"a": 0, "b": 0}


def test_bad_options_name_the_option():
    with pytest.raises(ConfigError, match="per_class.*ratio"):
        AugmentConfig.from_option({"per_class": 3, "ratio": 1.0})
    with pytest.raises(ConfigError, match="unknown option.*'ratoi'"):
        AugmentConfig.from_option({"ratoi": 1.0})
    with pytest.raises(ConfigError, match="augment='yes'"):
        AugmentConfig.from_option("yes")
    with pytest.raises(ConfigError, match="augment='yes' must be a synthesizer"):
        Predictor("label", verbosity=0).fit(pd.DataFrame({"x": [1.0], "label": ["a"]}),
                                            augment="yes")
    with pytest.raises(DataError, match="'is_synthetic'.*row 1"):
        marker_mask(pd.DataFrame({SYNTHETIC_COLUMN: ["true", "maybe"]}), SYNTHETIC_COLUMN)


# ------------------------------------------------------------------------ augment_table


def test_augment_table_appends_marked_rows_of_each_class(digits, generator):
    train, _ = digits
    augmented, summary = augment_table(train, label="label", generator=generator, per_class=3,
                                       seed=1, verbosity=0)
    assert len(augmented) == len(train) + 30
    marker = augmented[SYNTHETIC_COLUMN]
    assert marker.dtype == bool and not marker.iloc[:len(train)].any() and marker.iloc[len(train):].all()
    synthetic = augmented[marker]
    # Balanced by the rarest-first rule (digits' counts differ by class), 30 in all.
    real_counts = train["label"].value_counts().to_dict()
    expected = synthetic_counts({c: real_counts[c] for c in sorted(real_counts)}, per_class=3)
    assert synthetic["label"].value_counts().to_dict() == {c: n for c, n in expected.items() if n}
    assert synthetic["label"].dtype == train["label"].dtype
    assert all(cell.shape == (8, 8) and cell.dtype == np.uint8 for cell in synthetic["image"])
    assert summary["num_synthetic"] == 30 and summary["num_real"] == len(train)
    assert {int(c): e["synthetic"] for c, e in summary["per_class"].items()} == expected
    assert summary["generator"]["source"] == "given"
    # The same seed gives the same images.
    again, _ = augment_table(train, label="label", generator=generator, per_class=3, seed=1,
                             verbosity=0)
    assert all(np.array_equal(a, b) for a, b in zip(synthetic["image"], again[marker]["image"],
                                                    strict=True))


def test_judge_filter_drops_what_the_judge_rejects_and_counts_it(digits, generator):
    train, _ = digits
    images = np.stack(train["image"].to_list())[..., None]  # (N, 8, 8, 1)
    judge = Judge.train(images, train["label"].tolist(), time_limit_s=None, max_epochs=30,
                        seed=0)
    augmented, summary = augment_table(train, label="label", generator=generator, per_class=4,
                                       filter=True, judge=judge, verbosity=0)
    synthetic = augmented[augmented[SYNTHETIC_COLUMN]]
    # Every kept sample is one the judge calls its class...
    kept = np.stack(synthetic["image"].to_list())[..., None]
    assert (judge.predict(kept) == judge.class_indices(synthetic["label"].tolist())).all()
    # ...and the counts add up: generated = kept + dropped, per class and in all.
    per_class = summary["per_class"]
    for counts in per_class.values():
        assert counts["generated"] == counts["synthetic"] + counts["dropped"]
        assert counts["synthetic"] <= counts["requested"]
    assert summary["filter"]["dropped"] == sum(c["dropped"] for c in per_class.values()) > 0
    assert 1 <= summary["filter"]["rounds"] <= 3
    assert summary["num_synthetic"] == len(synthetic)


def test_a_generator_not_conditioned_on_the_label_is_refused(digits):
    train, _ = digits
    unconditional = Generator(recipe={"training.max_epochs": 1}, text_encoder="hashed",
                              verbosity=0).fit(train)
    with pytest.raises(ConfigError, match="not on the label column 'label'"):
        augment_table(train, label="label", generator=unconditional, per_class=1, verbosity=0)


# ------------------------------------------------------------------------ Predictor.fit


def test_marked_rows_train_but_never_validate(digits, generator):
    train, _ = digits
    augmented, summary = augment_table(train, label="label", generator=generator, per_class=4,
                                       verbosity=0)
    # Shuffle so synthetic rows sit among the real ones, as a user's table might have them.
    augmented = augmented.sample(frac=1.0, random_state=0).reset_index(drop=True)
    synthetic = np.flatnonzero(augmented[SYNTHETIC_COLUMN].to_numpy())
    predictor = Predictor("label", recipe=PREDICTOR_FIT, verbosity=0).fit(augmented)
    used_val, used_train = predictor.validation_rows_, predictor.train_rows_
    assert len(used_val) == round(0.2 * len(train))
    assert not np.isin(used_val, synthetic).any()
    assert not np.isin(used_train, used_val).any() and len(used_train) + len(used_val) == len(train)
    assert predictor.augmentation_["num_marked_used"] == len(synthetic) == 40
    # Every training row the models saw: the real training split plus all marked rows.
    event = next(e for e in predictor.train_log_ if e.get("event") == "augmented")
    assert event["num_train_rows"] == len(used_train) + len(synthetic)


def test_fit_with_augment_generates_for_the_training_split_only(digits, generator, tmp_path):
    train, test = digits
    predictor = Predictor("label", recipe=PREDICTOR_FIT, verbosity=0).fit(
        train, augment=AugmentConfig(generator=generator, per_class=2, verbosity=0))
    info = predictor.augmentation_
    n_val = len(predictor.validation_rows_)
    # Counted from the training split alone: validation rows were set aside first.
    assert info["num_real"] == len(train) - n_val == len(predictor.train_rows_)
    assert info["num_synthetic"] == 20 and info["rule"] == {"per_class": 2}
    event = next(e for e in predictor.train_log_ if e.get("event") == "augmented")
    assert event["num_train_rows"] == info["num_real"] + 20
    assert predictor.schema_.columns[SYNTHETIC_COLUMN].modality == "ignored"
    assert predictor.evaluate(test)["accuracy"] > 0.5

    # The marker column and the augmentation record survive save/load.
    loaded = Predictor.load(predictor.save(tmp_path / "model"))
    assert loaded.schema_.columns[SYNTHETIC_COLUMN].modality == "ignored"
    assert SYNTHETIC_COLUMN not in loaded.schema_.features()
    assert loaded.augmentation_ == json.loads(json.dumps(predictor.config_dict()["augmentation"]))
    assert loaded.augmentation_["per_class"]["3"]["synthetic"] >= 1
    table = test.assign(**{SYNTHETIC_COLUMN: False})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the marker is a known column: no "ignored" warning
        np.testing.assert_array_equal(loaded.predict(table), predictor.predict(table))


def test_auto_trains_the_generator_on_the_training_split_alone(digits):
    train, _ = digits
    # An unfitted generator is fitted here on the real training rows, like the default one.
    unfitted = Generator(condition=["label"], recipe={"training.max_epochs": 2}, verbosity=0)
    predictor = Predictor("label", recipe=PREDICTOR_FIT, verbosity=0).fit(
        train, augment=AugmentConfig(generator=unfitted, per_class=1, verbosity=0))
    info = predictor.augmentation_
    # The generator learnt from the training split's images only: no validation row leaks.
    assert info["generator"]["training"]["num_images"] == len(predictor.train_rows_)
    assert info["generator"]["source"] == "trained on the real training rows"
    assert info["num_synthetic"] == 10


def test_augment_needs_a_class_label(digits, generator):
    train, _ = digits
    regression = train.assign(value=np.arange(len(train), dtype=float) * 0.37)
    with pytest.raises(ConfigError, match="classification"):
        Predictor("value", recipe=PREDICTOR_FIT, verbosity=0).fit(
            regression, augment=AugmentConfig(generator=generator, per_class=1, verbosity=0))


# ------------------------------------------------------------------------ CLI


def _snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_cli_augment_writes_a_table_that_reads_back(tmp_path, run_cli, generator):
    run_cli(*["datasets", "export", "digits", str(tmp_path / "data"), "--n", "150"])
    saved = generator.save(tmp_path / "gen")
    before = _snapshot(tmp_path / "data")
    out = tmp_path / "aug"
    code, stdout, stderr = run_cli(*["augment", str(tmp_path / "data" / "train.csv"), "--label",
                                 "label", "--generator", str(saved), "--per-class", "2",
                                 "--compare", "--set", "training.max_epochs=3",
                                 "--set", "candidates.classic=random_forest",
                                 "--out", str(out)])
    assert code == 0, stdout + stderr
    assert _snapshot(tmp_path / "data") == before  # the user's files are untouched

    summary = json.loads((out / "augment_summary.json").read_text())
    table = read_table(out / "augmented.csv")
    holdout = read_table(out / "holdout.csv")
    marker = table[SYNTHETIC_COLUMN]
    assert marker.dtype == bool and int(marker.sum()) == summary["num_synthetic"] == 20
    # Every image path resolves from the output folder; real ones point at the user's files.
    for cell, synthetic in zip(table["image"], marker, strict=True):
        path = (out / cell).resolve()
        assert path.is_file()
        assert (path.parent == (out / "images" / "synthetic").resolve()) == synthetic
    assert len(list((out / "images" / "synthetic").glob("*.png"))) == 20
    # Held-out rows are real, not in the augmented table, and were never generated from.
    assert set(holdout["image"]).isdisjoint(table["image"])
    assert len(holdout) + int((~marker).sum()) == len(read_table(tmp_path / "data" / "train.csv"))
    compare = summary["compare"]
    real, aug = (compare[k]["metrics"]["accuracy"] for k in ("real_only", "augmented"))
    assert compare["lift"] == pytest.approx(aug - real)
    assert compare["num_test_rows"] == len(holdout)

    # The written table trains a predictor that honours the marker.
    predictor = Predictor("label", recipe=PREDICTOR_FIT, verbosity=0).fit(out / "augmented.csv")
    assert not marker.to_numpy()[predictor.validation_rows_].any()

    # An existing non-empty --out is refused with one line, not overwritten.
    code, _, stderr = run_cli(*["augment", str(tmp_path / "data" / "train.csv"), "--label",
                                    "label", "--generator", str(saved), "--out", str(out)])
    assert code == 2 and "not an empty folder" in stderr
