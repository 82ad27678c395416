"""Judges and generator evaluation, on real digits with stand-in generators.

The stand-ins are honest extremes whose right answers are known: ``ReplayGenerator``
returns real digits of the class asked for (drawn from its own training pool), so it must
score like real data (conditional accuracy ~ the judge's real accuracy, FD ~ the floor)
and be caught memorising; ``NoiseGenerator`` returns uniform noise, so it must score near
chance and near the noise ceiling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal import datasets
from polymodal.data.schema import infer_schema
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, DataError, ModelFolderError
from polymodal.evaluate.generation import MIN_IMAGES_FOR_DISTRIBUTION_METRICS
from polymodal.workflows.generator_eval import evaluate_generator, stratified_halves
from polymodal.workflows.judge import Judge, PixelJudge

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    """(real_table, pool_table): disjoint real digits; the pool is the stand-ins' training set."""
    train, test = datasets.load("digits", split=True)
    full = pd.concat([train, test], ignore_index=True).sample(frac=1.0, random_state=0)
    full = full.reset_index(drop=True)
    full.attrs = dict(train.attrs)
    real, pool = full.iloc[:1000].reset_index(drop=True), full.iloc[1000:].reset_index(drop=True)
    real.attrs = pool.attrs = dict(train.attrs)
    return real, pool


def _images(table: pd.DataFrame) -> np.ndarray:
    return np.stack(table["image"].to_list())[..., None]  # (N, 8, 8, 1) uint8


class ReplayGenerator:
    """A 'generator' that returns real pool images of the asked class (a perfect copier)."""

    def __init__(self, pool: pd.DataFrame, *, conditional: bool = True):
        self.image = "image"
        self.condition = "label" if conditional else None  # as a user may pass it
        classes = sorted(pool["label"].unique().tolist())
        self.conditions_ = (
            {"label": {"modality": "categorical", "classes": classes}} if conditional else {}
        )
        self.transform_ = TableTransform(infer_schema(pool)).fit(pool)
        self.training_history_ = [
            {"step": s, "loss": 1.0 / (s + 1), "event": "train", "elapsed_s": s * 0.1}
            for s in range(0, 100, 10)
        ]
        self._images = _images(pool)
        self._labels = pool["label"].to_numpy()

    def config_dict(self) -> dict:
        return {"kind": "replay", "image": self.image, "condition": self.condition}

    def sample(self, n, *, conditions=None, prompts=None, num_steps=None, guidance=None, seed=0):
        rng = np.random.default_rng(seed)
        if conditions is None:
            return self._images[rng.integers(len(self._images), size=n)]
        picks = [rng.choice(np.flatnonzero(self._labels == c)) for c in conditions["label"]]
        return self._images[picks]


class NoiseGenerator(ReplayGenerator):
    """Uniform noise whatever is asked."""

    def sample(self, n, *, conditions=None, prompts=None, num_steps=None, guidance=None, seed=0):
        return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)


@pytest.fixture(scope="module")
def judge(digits):
    real, _ = digits
    return Judge.train(_images(real[:600]), real["label"][:600], time_limit_s=None,
                       max_epochs=20)


@pytest.fixture(scope="module")
def replay_result(digits, tmp_path_factory):
    real, pool = digits
    out_dir = tmp_path_factory.mktemp("replay_report")
    result = evaluate_generator(
        ReplayGenerator(pool), real, n_samples=300, train_table=pool, out_dir=out_dir,
        judge_time_limit_s=None, judge_max_epochs=20,
    )
    return result, out_dir


def test_judge_beats_chance_on_held_out_digits(digits, judge):
    real, _ = digits
    held = real[600:]
    accuracy = judge.accuracy(_images(held), held["label"])
    assert accuracy > 0.8  # chance is 0.1
    assert judge.classes == list(range(10))
    assert judge.features(_images(held[:5])).shape == (5, 64)
    assert judge.training_info["steps"] > 0


def test_judge_save_load_gives_identical_features(digits, judge, tmp_path):
    real, _ = digits
    images = _images(real[600:700])
    loaded = Judge.load(judge.save(tmp_path / "judge"))
    assert loaded.classes == judge.classes
    np.testing.assert_array_equal(loaded.features(images), judge.features(images))
    np.testing.assert_array_equal(loaded.predict(images), judge.predict(images))


def test_judge_refuses_bad_input(judge, tmp_path):
    with pytest.raises(DataError, match=r"\(8, 8, 1\)"):
        judge.features(np.zeros((2, 16, 16, 1), dtype=np.uint8))
    with pytest.raises(DataError, match="uint8"):
        judge.features(np.zeros((2, 8, 8, 1), dtype=np.float32))
    with pytest.raises(DataError, match="'eleven'"):
        judge.accuracy(np.zeros((1, 8, 8, 1), dtype=np.uint8), ["eleven"])
    with pytest.raises(ModelFolderError, match="judge.json"):
        Judge.load(tmp_path)


def test_pixel_judge_pools_large_images():
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    features = PixelJudge().features(images)
    assert features.shape == (3, 14 * 14)
    assert 0.0 <= features.min() and features.max() <= 1.0


def test_stratified_halves_are_disjoint_and_balanced():
    labels = [0] * 11 + [1] * 7 + [2] * 2
    a, b = stratified_halves(labels, len(labels), seed=0)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(20))
    assert abs(len(a) - len(b)) <= 1
    for c in (0, 1, 2):
        in_a = sum(labels[i] == c for i in a)
        in_b = sum(labels[i] == c for i in b)
        assert abs(in_a - in_b) <= 1


def test_replay_generator_scores_like_real_data(replay_result):
    result, _ = replay_result
    assert result["judge"] == "trained"
    assert abs(result["conditional_accuracy"] - result["judge_accuracy_real"]) < 0.08
    assert result["conditional_accuracy"] > 0.8
    # FD of real digits from another pool sits at the real-vs-real floor, far below noise.
    assert result["fd"] < 2.0 * result["fd_floor"] + 1e-3
    assert result["fd_ceiling"] > 10 * result["fd_floor"]
    assert result["precision"] > 0.6 and result["recall"] > 0.6
    # A classifier trained on the replayed samples is about as good as one on real images.
    assert result["cas"] > 0.7
    assert abs(result["cas"] - result["cas_real"]) < 0.15
    assert result["sampling_images_per_s"] > 0


def test_replay_generator_is_caught_memorising(replay_result):
    result, _ = replay_result
    # Every sample is a training image: distance 0 to its nearest training neighbour.
    assert result["near_copies"] == result["n_samples"]
    assert result["nn_ratio_pixels"] < 0.05
    assert result["nn_dist_heldout_median_pixels"] > 0.1


def test_report_folder_is_complete(replay_result):
    result, out_dir = replay_result
    html = (out_dir / "report.html").read_text()
    md = (out_dir / "report.md").read_text()
    assert html.count("data:image/png;base64,") == 3  # samples, memorisation, training curve
    for name in ("samples.png", "nearest_training.png", "training_curve.png"):
        assert (out_dir / name).read_bytes().startswith(b"\x89PNG")
        assert f"]({name})" in md
    assert "Fréchet distance" in md and "noise (ceiling)" in md
    assert "| kind | replay |" in md  # the config section, as a table
    assert "<pre>" not in html  # no JSON dump
    # 300 samples against about half the held-out reals: enough images, so no warning.
    assert (result["n_compared"] < MIN_IMAGES_FOR_DISTRIBUTION_METRICS) == ("Warning" in md)
    assert result["report_html"] == str(out_dir / "report.html")
    assert Judge.load(result["judge_dir"]).classes == list(range(10))


def test_noise_generator_scores_near_chance_and_ceiling(digits, replay_result):
    real, pool = digits
    judge_dir = replay_result[0]["judge_dir"]  # a saved judge, passed as a path
    result = evaluate_generator(NoiseGenerator(pool), real, judge=judge_dir, n_samples=200,
                                cas=False, sampling_images_per_s=123.0)
    assert result["sampling_images_per_s"] == 123.0  # measured elsewhere, reported as given
    assert result["conditional_accuracy"] < 0.35
    assert result["fd"] > 0.5 * result["fd_ceiling"]
    assert result["fd"] > 10 * result["fd_floor"]
    assert "memorisation" in result["skipped"] and "CAS" in result["skipped"]
    assert "report_md" not in result  # no out_dir, nothing written


def test_unconditional_generator_skips_class_metrics(digits, tmp_path):
    real, pool = digits
    result = evaluate_generator(ReplayGenerator(pool, conditional=False), real, judge="pixels",
                                n_samples=100, out_dir=tmp_path)
    assert result["judge"] == "pixels"
    assert "conditional_accuracy" not in result and "cas" not in result
    assert "no categorical condition" in result["skipped"]
    assert result["fd"] < 3.0 * result["fd_floor"] + 1e-3
    md = (tmp_path / "report.md").read_text()
    assert "no categorical condition" in md
    assert result["n_compared"] == 100 and "Warning" not in md and "UNRELIABLE" not in md


def test_distribution_figures_average_disjoint_draws_of_samples(digits, tmp_path):
    """More samples than a held-out half: each disjoint set of m is scored, the figures
    averaged with their standard error; the real-vs-real floor does not depend on them."""
    real, pool = digits
    real = real.iloc[:200].reset_index(drop=True)  # a held-out half of 100 images
    one = evaluate_generator(ReplayGenerator(pool), real, judge="pixels", n_samples=100,
                             cas=False)
    three = evaluate_generator(ReplayGenerator(pool), real, judge="pixels", n_samples=300,
                               cas=False, out_dir=tmp_path)
    assert (one["n_compared"], one["n_draws"], one["recall_se"]) == (100, 1, 0.0)
    assert (three["n_compared"], three["n_draws"]) == (100, 3)
    assert three["recall_se"] > 0 and three["fd_se"] > 0  # the draws differ
    assert (three["fd_floor"], three["recall_floor"]) == (one["fd_floor"], one["recall_floor"])
    assert 0.0 <= three["recall"] <= 1.0
    md = (tmp_path / "report.md").read_text()
    assert "mean over 3 disjoint draw(s)" in md and md.count("over 3 draws") == 3


def test_bad_arguments_name_the_fix(digits):
    real, pool = digits
    generator = ReplayGenerator(pool)
    with pytest.raises(ConfigError, match="'image'.*categorical conditions are"):
        evaluate_generator(generator, real, label="image", judge="pixels")
    with pytest.raises(ConfigError, match="judge='nonsense'"):
        evaluate_generator(generator, real, judge="nonsense")
    with pytest.raises(ConfigError, match="n_samples=1"):
        evaluate_generator(generator, real, n_samples=1)
    with pytest.raises(DataError, match="no column 'label'"):
        evaluate_generator(generator, real.drop(columns=["label"]), judge="pixels", n_samples=10)


def test_real_generator_end_to_end(digits, judge, tmp_path):
    """The real Generator, trained for two epochs, through ``evaluate_generator``."""
    from polymodal.api.generator import Generator

    real, pool = digits
    generator = Generator(image="image", condition="label", recipe={"training.max_epochs": 2},
                          verbosity=0)
    generator.fit(pool)
    result = evaluate_generator(generator, real, judge=judge, n_samples=60, num_steps=4, cas=False,
                                train_table=pool, out_dir=tmp_path)
    # The default guidance "auto" is reported as the number the fit chose.
    assert result["num_steps"] == 4 and result["guidance"] == generator.recipe_.sampling.guidance
    assert isinstance(result["guidance"], float)
    assert result["conditional_accuracy_num_scored"] == 60  # classes '0'..'9' match 0..9
    assert 0.0 <= result["conditional_accuracy"] <= 1.0
    # Two epochs (26 steps) are far from real digits: above the floor, not copying.
    assert result["fd"] > result["fd_floor"]
    assert result["near_copies"] == 0
    md = (tmp_path / "report.md").read_text()
    assert "training_curve.png" in md and "| kind | generator |" in md
    # 60 images per set is too few for FD and KID: the report says so, in the table too.
    assert result["n_compared"] == 60
    assert "> **Warning:** Fréchet distance, KID, precision and recall rest on only 60" in md
    assert md.count("UNRELIABLE at 60 images per set") == 4


def test_judge_training_is_seeded(digits):
    real, _ = digits
    images, labels = _images(real[:120]), real["label"][:120]
    state = torch.random.get_rng_state()
    a = Judge.train(images, labels, max_epochs=2, time_limit_s=None, seed=3)
    b = Judge.train(images, labels, max_epochs=2, time_limit_s=None, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    np.testing.assert_array_equal(a.features(images), b.features(images))
    c = Judge.train(images, labels, max_epochs=2, time_limit_s=None, seed=4)
    assert not np.array_equal(a.features(images), c.features(images))
