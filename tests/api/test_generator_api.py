"""The ``Generator`` API: fit, sample, edit, variations, save/load and every bad input.

Each model trains for an epoch or two on a built-in dataset (digits 8x8, shapes 16x16), so
the tests check behaviour that holds for any weights -- shapes, determinism, exact
save/load identity, guidance = 1 is plain conditional sampling, strength 0 and inpainting
keep pixels -- plus that conditioning reaches the output.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from polymodal import datasets
from polymodal.api.generator import Generator
from polymodal.data.dataset import TableDataset, collate
from polymodal.data.image_encoding import tensor_to_uint8
from polymodal.data.text import minilm_available
from polymodal.errors import (
    ConfigError,
    DataError,
    ModelFolderError,
    NotFittedError,
    SchemaError,
)
from polymodal.models.samplers import DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SHIFT, euler_sample
from polymodal.recipes.base import to_dict
from polymodal.recipes.generator import (
    DEFAULT_GUIDANCE,
    DEFAULT_GUIDE,
    DEFAULT_NUM_STEPS,
    DEFAULT_SAMPLER,
    preset_recipe,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def epochs(n: int) -> dict:
    """The recipe override that bounds a fit by ``n`` passes over the images (no clock)."""
    return {"training.max_epochs": n}


FIT = epochs(2)  # the shared models: 46 steps on 1438 digits, 8 on 240 shapes


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", split=True, seed=0)


@pytest.fixture(scope="module")
def digit_gen(digits, tmp_path_factory):
    train, _ = digits
    out = tmp_path_factory.mktemp("digits-run")
    gen = Generator(condition=["label"], recipe=FIT, text_encoder="hashed", verbosity=0)
    return gen.fit(train, out_dir=out)


@pytest.fixture(scope="module")
def shapes_gen():
    """Conditioned on a caption (text), a category and a number at once."""
    table = datasets.load("shapes", n=240, seed=0, image_size=16)
    gen = Generator(condition=["caption", "shape", "hue"], recipe=FIT,
                    text_encoder="hashed", verbosity=0)
    return gen.fit(table)


def _labels(n: int) -> dict:
    return {"label": [i % 10 for i in range(n)]}


# ----------------------------------------------------------------------------- fit


def test_fit_learns_the_image_shape_and_conditions(digit_gen):
    assert digit_gen.image_shape_ == (1, 8, 8)
    assert digit_gen.conditions_ == {
        "label": {"modality": "categorical", "classes": [str(i) for i in range(10)]}}
    result = digit_gen.train_result_
    assert result["steps"] > 0 and result["num_images"] == 1438 and result["skipped_rows"] == 0
    # Constructor arguments are stored unchanged; defaults are the measured ones.
    assert digit_gen.guidance == DEFAULT_GUIDANCE and digit_gen.num_steps == DEFAULT_NUM_STEPS
    assert digit_gen.condition == ["label"]
    assert digit_gen.unet_.config()["coord_channels"] is False  # off unless asked for


def test_fit_writes_sample_grids_into_out_dir(digit_gen):
    samples = digit_gen.out_dir_ + "/samples"
    latest = Image.open(samples + "/latest.png")
    # One row per class (10) of 8 images, scaled 8x for 8-pixel digits.
    assert latest.size[1] > 10 * 64
    steps = sorted(p.name for p in Path(samples).glob("step_*.png"))
    assert steps and steps[-1] == f"step_{digit_gen.train_result_['steps']:06d}.png"


def test_sample_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="fit"):
        Generator().sample(2)


# -------------------------------------------------------------------------- sample


def test_sample_shape_dtype_and_determinism(digit_gen):
    a = digit_gen.sample(10, conditions=_labels(10), seed=3)
    assert a.shape == (10, 8, 8, 1) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, digit_gen.sample(10, conditions=_labels(10), seed=3))
    assert not np.array_equal(a, digit_gen.sample(10, conditions=_labels(10), seed=4))
    # The batch size used for sampling does not change the images' noise.
    b = digit_gen.sample(10, conditions=_labels(10), seed=3, batch_size=3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_fewer_condition_values_than_images_repeat_in_groups(digit_gen):
    grouped = digit_gen.sample(4, conditions={"label": [3, 7]}, seed=2)
    np.testing.assert_array_equal(grouped,
                                  digit_gen.sample(4, conditions={"label": [3, 3, 7, 7]}, seed=2))


def test_conditioning_changes_the_output(digit_gen):
    def class_gap(guidance: float) -> float:
        zeros = digit_gen.sample(8, conditions={"label": 0}, seed=0, guidance=guidance)
        ones = digit_gen.sample(8, conditions={"label": 1}, seed=0, guidance=guidance)
        return float(np.abs(zeros.astype(int) - ones.astype(int)).mean())

    # Same noise, other class: other images; guidance extrapolates along the class
    # difference, so the gap grows with it (two epochs of training teach little more).
    assert 0 < class_gap(1.0) < class_gap(4.0)


@pytest.mark.slow
def test_conditional_samples_are_recognised_by_an_independent_judge(digits):
    """Quality, not just plumbing: an SVC trained on real digits reads the asked class."""
    from sklearn.svm import SVC

    train, test = digits
    gen = Generator(condition=["label"], recipe=epochs(20), verbosity=0).fit(train)  # 460 steps
    svc = SVC().fit(np.stack(list(train["image"])).reshape(len(train), -1) / 255.0,
                    train["label"])
    asked = [i % 10 for i in range(500)]
    images = gen.sample(500, conditions={"label": asked}, seed=0)
    accuracy = float((svc.predict(images.reshape(500, -1) / 255.0) == np.array(asked)).mean())
    assert accuracy >= 0.9, accuracy


def test_guidance_one_equals_plain_conditional_sampling(digit_gen):
    n, seed, steps = 6, 5, 8
    got = digit_gen.sample(n, conditions=_labels(n), seed=seed, guidance=1.0, num_steps=steps,
                           sampler="euler")
    # The same by hand: the condition vector of the rows, then Euler on the plain network.
    rows = pd.DataFrame({"label": [i % 10 for i in range(n)]})
    batch = collate(list(TableDataset(rows, digit_gen.transform_, with_label=False,
                                      allow_missing_columns=True)))
    with torch.no_grad():
        cond = digit_gen.condition_encoder_(batch)
    noise = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    expected = euler_sample(lambda x, t: digit_gen.unet_(x, t, cond), noise, num_steps=steps)
    np.testing.assert_array_equal(got, tensor_to_uint8(expected))
    guided = digit_gen.sample(n, conditions=_labels(n), seed=seed, guidance=3.0, num_steps=steps,
                              sampler="euler")
    assert not np.array_equal(got, guided)


def test_every_sampler_runs(digit_gen):
    for sampler, steps in (("heun", 4), ("euler", 8), ("ab2", 5)):
        images = digit_gen.sample(4, conditions={"label": 7}, sampler=sampler, num_steps=steps)
        assert images.shape == (4, 8, 8, 1) and images.dtype == np.uint8, sampler


def test_unconditional_generator(digits):
    train, _ = digits
    gen = Generator(recipe=epochs(1), verbosity=0).fit(train)
    assert gen.conditions_ == {} and gen.condition_encoder_ is None
    images = gen.sample(5, seed=1)
    assert images.shape == (5, 8, 8, 1)
    with pytest.raises(ConfigError, match="unconditional"):
        gen.sample(2, conditions={"label": 3})


# ------------------------------------------------------------------- text, numeric


def test_prompts_and_numeric_conditions(shapes_gen):
    info = shapes_gen.conditions_
    assert info["caption"]["modality"] == "text" and info["hue"]["modality"] == "numeric"
    assert info["shape"]["classes"] == ["circle", "square", "star", "triangle"]
    assert 0 <= info["hue"]["min"] < info["hue"]["max"] <= 360
    kwargs = dict(conditions={"shape": "circle", "hue": 0.0}, seed=0)
    red = shapes_gen.sample(4, prompts=["a large red circle in the center"] * 4, **kwargs)
    blue = shapes_gen.sample(4, prompts=["a small blue square at the top left"], **kwargs)
    assert red.shape == (4, 16, 16, 3) and red.dtype == np.uint8
    assert not np.array_equal(red, blue)
    hot = shapes_gen.sample(4, prompts=["a circle"], conditions={"shape": "circle", "hue": 300})
    assert not np.array_equal(hot, shapes_gen.sample(4, prompts=["a circle"],
                                                     conditions={"shape": "circle", "hue": 0}))
    with pytest.raises(ConfigError, match="hue"):
        shapes_gen.sample(2, prompts=["x"], conditions={"shape": "star", "hue": "warm"})


def test_a_condition_left_out_is_sampled_unconditionally_and_said_once(shapes_gen):
    shapes_gen._warned_null.clear()
    with pytest.warns(UserWarning, match=r"\['caption', 'hue'\].*unconditionally"):
        images = shapes_gen.sample(3, conditions={"shape": "star"})
    assert images.shape == (3, 16, 16, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shapes_gen.sample(3, conditions={"shape": "star"})  # said once already


@pytest.mark.skipif(not minilm_available(), reason="MiniLM (polymodal[text]) not installed")
def test_minilm_prompt_sampling(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    table = datasets.load("shapes", n=48, seed=1, image_size=8)
    gen = Generator(condition=["caption"], text_encoder="minilm", recipe=epochs(2),
                    verbosity=0).fit(table)
    assert gen.conditions_["caption"]["text_encoder"] == "minilm"
    images = gen.sample(2, prompts=["a red circle", "a blue star"], seed=0)
    assert images.shape == (2, 8, 8, 3)


def test_auto_text_encoder_puts_ngrams_beside_minilm(monkeypatch, tmp_path):
    """A prompt's literal words ("top left") reach the generator as n-grams; MiniLM's
    sentence vector comes beside them when it is installed, and alone it is not used."""
    import polymodal.recipes.generator as generator_module

    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    table = datasets.load("shapes", n=48, seed=1, image_size=8)
    monkeypatch.setattr(generator_module, "minilm_available", lambda: False)
    gen = Generator(condition=["caption"], recipe=epochs(2), verbosity=0).fit(table)
    assert gen.conditions_["caption"]["text_encoder"] == "hashed"
    assert gen.text_encoder == "auto"  # the parameter stays as given; the fit resolves it
    if minilm_available():
        monkeypatch.setattr(generator_module, "minilm_available", lambda: True)
        gen = Generator(condition=["caption"], recipe=epochs(2), verbosity=0).fit(table)
        assert gen.conditions_["caption"]["text_encoder"] == "minilm+hashed"
        assert gen.transform_.text_embedder_.dim == 384 + 256
        again = Generator.load(gen.save(tmp_path / "gen"))
        assert again.conditions_["caption"]["text_encoder"] == "minilm+hashed"
        np.testing.assert_array_equal(again.sample(2, prompts=["a red circle"] * 2, seed=0),
                                      gen.sample(2, prompts=["a red circle"] * 2, seed=0))


def test_an_image_condition(digits):
    """Image-to-image conditioning: generate a digit from its mirror image."""
    table = digits[0].head(200).copy()
    table["mirror"] = [np.ascontiguousarray(im[:, ::-1]) for im in table["image"]]
    gen = Generator(condition=["mirror"], recipe=epochs(3), verbosity=0).fit(table)
    assert gen.conditions_ == {"mirror": {"modality": "image", "shape": [1, 8, 8]}}
    mirrors = list(table["mirror"][:3])
    images = gen.sample(3, conditions={"mirror": mirrors}, seed=0, guidance=3.0)
    assert images.shape == (3, 8, 8, 1)
    other = gen.sample(3, conditions={"mirror": mirrors[::-1]}, seed=0, guidance=3.0)
    assert not np.array_equal(images, other)


# ------------------------------------------------------------------- edit, inpaint


def _digit_images(digits, n: int) -> np.ndarray:
    _, test = digits
    return np.stack(list(test["image"][:n]))  # (n, 8, 8) uint8


def test_edit_strength_zero_returns_the_input(digit_gen, digits):
    images = _digit_images(digits, 3)
    out = digit_gen.edit(images, strength=0.0, conditions={"label": 1})
    np.testing.assert_array_equal(out, images[..., None])
    edited = digit_gen.edit(images, strength=0.7, conditions={"label": 1}, seed=2)
    assert edited.shape == (3, 8, 8, 1) and not np.array_equal(edited, out)
    np.testing.assert_array_equal(edited, digit_gen.edit(images, strength=0.7,
                                                         conditions={"label": 1}, seed=2))


def test_edit_converts_images_of_another_size_or_channel_count(digit_gen, digits, tmp_path):
    rgb = np.repeat(_digit_images(digits, 1)[0][..., None], 3, axis=2)  # (8, 8, 3)
    big = np.asarray(Image.fromarray(rgb).resize((16, 16), Image.Resampling.NEAREST))
    path = tmp_path / "big.png"
    Image.fromarray(big).save(path)
    with pytest.warns(UserWarning, match=r"image 0 \(16x16, 3 channel\(s\)\) converted to the "
                                         r"model's 8x8, 1 channel"):
        out = digit_gen.edit(str(path), strength=0.0)
    # Nearest-upscaled, then downscaled (antialiased) and made grey: close to the original.
    assert out.shape == (1, 8, 8, 1)
    assert np.abs(out[0, ..., 0].astype(int) - rgb[..., 0].astype(int)).mean() < 16


def test_inpainting_keeps_known_pixels_exactly(digit_gen, digits):
    images = _digit_images(digits, 2)
    keep = np.zeros((8, 8), dtype=bool)
    keep[:, :4] = True  # keep the left half, fill in the right half
    out = digit_gen.edit(images, strength=1.0, mask=keep, conditions={"label": [3, 4]}, seed=1)
    assert out.shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(out[:, :, :4, 0], images[:, :, :4])
    assert not np.array_equal(out[:, :, 4:, 0], images[:, :, 4:])
    # A uint8 mask (255 = keep) of twice the size, same aspect: resized, same result.
    big = np.repeat(np.repeat(keep.astype(np.uint8) * 255, 2, axis=0), 2, axis=1)
    again = digit_gen.edit(images, strength=1.0, mask=big, conditions={"label": [3, 4]}, seed=1)
    np.testing.assert_array_equal(again, out)


def test_a_mask_of_another_aspect_is_a_data_error(digit_gen, digits):
    with pytest.raises(DataError, match="aspect"):
        digit_gen.edit(_digit_images(digits, 1), mask=np.ones((8, 4), dtype=bool))


def test_variations(digit_gen, digits):
    out = digit_gen.variations(_digit_images(digits, 1)[0], 4, strength=0.6, seed=0,
                               conditions={"label": 6})
    assert out.shape == (4, 8, 8, 1)
    assert len({o.tobytes() for o in out}) == 4  # each with its own noise


# ----------------------------------------------------------------------- save/load


def test_save_load_gives_identical_samples(digit_gen, tmp_path, digits):
    folder = digit_gen.save(tmp_path / "model")
    for name in ("config.json", "schema.json", "transform/transform.json",
                 "weights.safetensors", "versions.json", "train_log.jsonl",
                 "samples/latest.png", "format_version"):
        assert (folder / name).exists(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["network"]["unet"]["image_size"] == 8
    # The resolved recipe holds the guidance and condition_from "auto" chose, numbers.
    assert config["params"]["guidance"] == DEFAULT_GUIDANCE == "auto"
    assert config["recipe"]["sampling"] == {
        "sampler": DEFAULT_SAMPLER, "num_steps": DEFAULT_NUM_STEPS,
        "guidance": digit_gen.recipe_.sampling.guidance,
        "shift": DEFAULT_SHIFT, "guidance_interval": list(DEFAULT_GUIDANCE_INTERVAL),
        "guide": DEFAULT_GUIDE, "condition_from": digit_gen.recipe_.sampling.condition_from}
    assert isinstance(config["recipe"]["sampling"]["guidance"], float)
    assert isinstance(config["recipe"]["sampling"]["condition_from"], float)
    loaded = Generator.load(folder)
    assert loaded.recipe_ == digit_gen.recipe_
    assert loaded.conditions_ == digit_gen.conditions_
    np.testing.assert_array_equal(loaded.sample(12, conditions=_labels(12), seed=7),
                                  digit_gen.sample(12, conditions=_labels(12), seed=7))
    images = _digit_images(digits, 2)
    np.testing.assert_array_equal(
        loaded.edit(images, strength=0.5, conditions={"label": 2}, seed=1),
        digit_gen.edit(images, strength=0.5, conditions={"label": 2}, seed=1))
    # Saving again over a model folder replaces it.
    loaded.save(folder)
    assert Generator.load(folder).train_result_ == digit_gen.train_result_


def test_save_refuses_a_folder_that_is_not_a_model(digit_gen, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(ModelFolderError, match="not a polymodal model folder"):
        digit_gen.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_load_incomplete_or_foreign_folders(digit_gen, tmp_path):
    with pytest.raises(ModelFolderError, match="not a folder"):
        Generator.load(tmp_path / "nowhere")
    folder = digit_gen.save(tmp_path / "model")
    (folder / "weights.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="weights.safetensors missing"):
        Generator.load(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match="format_version"):
        Generator.load(tmp_path / "empty")
    (folder / "config.json").write_text('{"label": "price"}')  # what a predictor writes
    with pytest.raises(ModelFolderError, match=r"holds a predictor \(written by `polymodal fit`\), "
                       r"not a generator; use it with polymodal predict"):
        Generator.load(folder)


def test_fit_into_out_dir_then_save_there(digits, tmp_path):
    """fit(out_dir=D) then save(D): the training folder becomes the model folder, grids
    included (the CLI trains in a fresh sibling instead, see tests/cli)."""
    train, _ = digits
    out = tmp_path / "run"
    gen = Generator(condition="label", recipe=epochs(2), verbosity=0).fit(train.head(64),
                                                                           out_dir=out)
    gen.save(out)
    assert (out / "samples" / "latest.png").is_file() and (out / "checkpoint.safetensors").is_file()
    assert Generator.load(out).sample(2, conditions={"label": 5}).shape == (2, 8, 8, 1)


def test_a_refit_into_a_saved_model_folder_leaves_it_whole_until_saved(digits, tmp_path):
    """fit(out_dir=MODEL) trains beside MODEL: a fit that stops before save() leaves the
    saved model byte for byte as it was; save(MODEL) replaces it and tidies up."""
    train, _ = digits
    out = tmp_path / "model"
    Generator(condition="label", recipe=epochs(1), verbosity=0).fit(
        train.head(64), out_dir=out).save(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = Generator(condition="label", recipe=epochs(1), seed=1, verbosity=0).fit(
        train.head(64), out_dir=out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    again.save(out)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no training folder left beside
    after = Generator.load(out)
    assert after.seed == 1 and (out / "samples" / "latest.png").is_file()


# ---------------------------------------------------------------------- bad input


def test_sampling_a_class_never_seen_lists_the_known_ones(digit_gen):
    with pytest.raises(ConfigError, match=r"label='11'.*never saw.*'0', '1', '2'"):
        digit_gen.sample(2, conditions={"label": "11"})


def test_a_prompt_for_a_model_without_text_conditioning(digit_gen):
    with pytest.raises(ConfigError, match=r"conditioned on label \(categorical\).*no text"):
        digit_gen.sample(2, prompts=["a seven"])


@pytest.mark.parametrize("kwargs, match", [
    ({"guidance": -0.5}, r"guidance=-0.5 must be a number in \[0, 20\]"),
    ({"guidance": 25}, r"guidance=25 must be a number in \[0, 20\]"),
    ({"num_steps": 0}, r"num_steps=0 must be an integer in \[1, 1000\]"),
    ({"num_steps": 1001}, r"num_steps=1001 must be an integer in \[1, 1000\]"),
    ({"sampler": "ddim"}, r"sampler='ddim' must be one of \['euler', 'heun', 'ab2'\]"),
    ({"conditions": {"colour": 1}}, r"'colour'.*condition columns are \['label'\]"),
    ({"conditions": {"label": [1, 2, 3]}}, r"3 values for n=2 images"),
])
def test_out_of_range_sampling_settings(digit_gen, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        digit_gen.sample(2, **kwargs)


def test_more_images_than_memory_holds_is_one_error_before_any_work(digit_gen):
    n = 10**13  # 8x8 digits: 5.8 PB
    with pytest.raises(ConfigError, match=r"n=10,000,000,000,000 images of 8x8x1 need about "
                                          r"[\d,.]+ GiB.*ask for at most [\d,]+ per call"):
        digit_gen.sample(n, conditions={"label": 3})
    with pytest.raises(ConfigError, match=r"n=10,000,000,000,000 images"):
        digit_gen.variations(np.zeros((8, 8), dtype=np.uint8), n=n)


def test_edit_strength_out_of_range(digit_gen, digits):
    with pytest.raises(ConfigError, match=r"strength=1.5 must be in \[0, 1\]"):
        digit_gen.edit(_digit_images(digits, 1), strength=1.5)


def test_constructor_arguments_are_checked_at_fit_all_at_once(digits):
    gen = Generator(condition=["label"], guidance=30, num_steps=0, preset="slow",
                    coord_channels="yes", lr=0.0, spatial_condition=1,
                    guidance_interval=(0.8, 0.3))
    with pytest.raises(ConfigError) as exc:
        gen.fit(digits[0])
    assert all(s in str(exc.value) for s in ("guidance=30", "num_steps=0", "preset='slow'",
                                             "coord_channels='yes'", "lr=0.0",
                                             "spatial_condition=1",
                                             "guidance_interval=(0.8, 0.3)"))


def test_the_learning_rate_is_used_and_saved(digits, digit_gen, tmp_path):
    given = Generator(condition=["label"], recipe=epochs(2), lr=1.5e-3, verbosity=0)
    given.fit(digits[0].head(64), out_dir=tmp_path / "run")
    default = digit_gen  # fitted without lr=
    # What the training loop was given, and what the model folder says.
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["lr"] == 1.5e-3
    assert given.config_dict()["recipe"]["training"]["lr"] == given.recipe_.training.lr == 1.5e-3
    assert default.recipe_.training.lr == preset_recipe("fast").training.lr != 1.5e-3
    logged = [e["lr"] for e in given.training_history_ if "lr" in e]
    assert logged and max(logged) <= 1.5e-3 * (1 + 1e-9)
    given.save(tmp_path / "m")
    assert Generator.load(tmp_path / "m").lr == 1.5e-3
    # The training precision is kept with the model, as the loop was given it.
    used = json.loads((tmp_path / "run" / "train_config.json").read_text())["precision"]
    assert given.train_result_["precision"] == used
    assert Generator.load(tmp_path / "m").config_dict()["training"]["precision"] == used


def test_the_guidance_interval_is_used_saved_and_kept_for_older_folders(digit_gen, tmp_path):
    digit_gen.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert tuple(loaded.guidance_interval) == DEFAULT_GUIDANCE_INTERVAL
    ask = {"label": "3"}
    np.testing.assert_array_equal(loaded.sample(2, conditions=ask, seed=1),
                                  digit_gen.sample(2, conditions=ask, seed=1))
    # An interval that holds no sampler time is no guidance at all; a wider one differs.
    loaded.guidance_interval = (0.95, 0.99)  # between the first two of 8 steps (1, 0.875)
    unguided = loaded.sample(2, conditions=ask, seed=1, guidance=1.0)
    np.testing.assert_array_equal(loaded.sample(2, conditions=ask, seed=1, guidance=3.0),
                                  unguided)
    loaded.guidance_interval = (0.0, 1.0)
    assert not np.array_equal(loaded.sample(2, conditions=ask, seed=1, guidance=3.0), unguided)
    # A folder saved before the interval was a parameter samples as it did then.
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    del config["params"]["guidance_interval"]
    config["sampler"] = {"guidance_interval": [0.3, 1.0]}
    config_path.write_text(json.dumps(config))
    assert tuple(Generator.load(tmp_path / "m").guidance_interval) == (0.3, 1.0)


def test_autoguidance_by_the_early_snapshot_is_saved_loaded_and_seeded(digits, tmp_path):
    """A step-bounded fit keeps an early EMA snapshot (training.guide_at); guide='early'
    samples with it, and after save/load gives the same images for the same seed."""
    train, _ = digits
    gen = Generator(condition=["label"], text_encoder="hashed", verbosity=0, guide="early",
                    recipe={"training.max_steps": 40, "training.guide_at": 0.25}).fit(train)
    snapshot, final = gen.guide_network_.state_dict(), gen.network_.state_dict()
    assert any(not torch.equal(v, final[k]) for k, v in snapshot.items())  # an earlier model
    gen.save(tmp_path / "m")
    assert (tmp_path / "m" / "guide.safetensors").is_file()
    loaded = Generator.load(tmp_path / "m")
    assert loaded.guide == "early"
    ask = _labels(6)
    early = loaded.sample(6, conditions=ask, seed=3)
    np.testing.assert_array_equal(early, loaded.sample(6, conditions=ask, seed=3))
    np.testing.assert_array_equal(early, gen.sample(6, conditions=ask, seed=3))
    assert not np.array_equal(early, loaded.sample(6, conditions=ask, seed=4))
    loaded.guide = "unconditional"  # classifier-free guidance on the same weights differs
    assert not np.array_equal(early, loaded.sample(6, conditions=ask, seed=3))
    # Edits and variations are autoguided as well, and stay seeded.
    loaded.guide = "early"
    images = early[:2]
    np.testing.assert_array_equal(loaded.edit(images, conditions={"label": [0, 1]}, seed=1),
                                  loaded.edit(images, conditions={"label": [0, 1]}, seed=1))
    assert loaded.variations(images[0], n=3, conditions={"label": 0}).shape == (3, 8, 8, 1)
    with pytest.raises(ConfigError, match=r"guide='early': the export samples with"):
        loaded.export(tmp_path / "export")


def test_autoguidance_without_a_snapshot_and_a_bad_guide_are_clear_errors(digits, tmp_path):
    train, _ = digits
    gen = Generator(condition=["label"], guide="early", text_encoder="hashed", verbosity=0,
                    recipe={"training.max_steps": 2, "training.guide_at": None}).fit(train)
    assert gen.guide_network_ is None
    with pytest.raises(ConfigError, match=r"guide='early' needs the early snapshot"):
        gen.sample(2, conditions=_labels(2))
    gen.save(tmp_path / "m")
    assert not (tmp_path / "m" / "guide.safetensors").exists()
    with pytest.raises(ConfigError, match=r"guide='early' needs the early snapshot"):
        Generator.load(tmp_path / "m").sample(2, conditions=_labels(2))
    # A folder saved before the guide was a parameter guides by the null condition.
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    del config["params"]["guide"]
    config_path.write_text(json.dumps(config))
    assert Generator.load(tmp_path / "m").sample(2, conditions=_labels(2)).shape == (2, 8, 8, 1)
    with pytest.raises(ConfigError, match=r"guide='weak' must be one of \['unconditional', "
                       r"'early'\]"):
        Generator(condition=["label"], guide="weak").fit(train)
    with pytest.raises(ConfigError, match=r"training.guide_at=1.5 must be in \(0, 1\]"):
        Generator(condition=["label"], recipe={"training.guide_at": 1.5}).fit(train)


def test_a_folder_saved_before_recipes_loads_its_recipe_and_samples_identically(digit_gen,
                                                                                tmp_path):
    """config.json held the preset's dict and optimizer/objective/sampler sections then."""
    folder = digit_gen.save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    recipe = config.pop("recipe")
    del config["params"]["recipe"]
    config["preset"] = {"lr": 3e-3, "max_epochs": recipe["training"]["max_epochs"],
                        "cond_dim": recipe["network"]["cond_dim"], "unet": {}}
    config["optimizer"] = {"name": "adamw", "lr": recipe["training"]["lr"],
                           "weight_decay": 0.0, "batch_size": recipe["training"]["batch_size"]}
    config["objective"] = {"name": "rectified_flow", "prediction": "velocity",
                           "condition_dropout": recipe["condition"]["dropout"],
                           "ema_halflife_images": recipe["training"]["ema_halflife_images"]}
    sampling = recipe["sampling"]
    config["sampler"] = {"method": sampling["sampler"], "num_steps": sampling["num_steps"],
                         "guidance": sampling["guidance"], "shift": sampling["shift"],
                         "guidance_interval": sampling["guidance_interval"]}
    (folder / "config.json").write_text(json.dumps(config))
    loaded = Generator.load(folder)
    assert loaded.recipe_ == digit_gen.recipe_ and loaded.recipe is None
    ask = {"label": "4"}
    np.testing.assert_array_equal(loaded.sample(3, conditions=ask, seed=2),
                                  digit_gen.sample(3, conditions=ask, seed=2))
    assert json.loads(json.dumps(to_dict(loaded.recipe_))) == recipe


def test_recipe_overrides_reach_the_network_the_loop_and_the_sampler(digits, tmp_path):
    gen = Generator(condition=["label"], verbosity=0, num_steps=3,
                    recipe={"network.base_channels": 8, "training.weight_decay": 0.01,
                            "training.max_epochs": 2, "sampling": {"num_steps": 2}})
    gen.fit(digits[0].head(64), out_dir=tmp_path / "run")
    assert gen.unet_.config()["base_channels"] == 8
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["weight_decay"] == 0.01
    assert gen.recipe_.sampling.num_steps == 2  # the override wins over num_steps=3
    np.testing.assert_array_equal(gen.sample(2, conditions={"label": 1}),
                                  gen.sample(2, conditions={"label": 1}, num_steps=2))
    loaded = Generator.load(gen.save(tmp_path / "m"))
    assert loaded.recipe_ == gen.recipe_ and loaded.recipe == gen.recipe
    with pytest.raises(ConfigError) as info:
        Generator(recipe={"network.widht": 8, "training.lr": 5}).fit(digits[0])
    assert "'network.widht'" in str(info.value) and "training.lr=5" in str(info.value)


def test_coordinate_channels_can_be_forced(digits):
    gen = Generator(condition=["label"], recipe=epochs(2), coord_channels=True, verbosity=0)
    gen.fit(digits[0].head(64))
    assert gen.unet_.config()["coord_channels"] is True
    assert gen.sample(2, conditions={"label": "3"}).shape == (2, 8, 8, 1)


def test_the_spatial_condition_map_is_built_and_saved(digits, tmp_path):
    gen = Generator(condition=["label"], recipe=epochs(2), spatial_condition=True, verbosity=0)
    gen.fit(digits[0].head(64))
    assert gen.unet_.config()["spatial_condition"] is True and gen.unet_.cond_map is not None
    gen.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert loaded.spatial_condition is True and loaded.unet_.cond_map is not None
    np.testing.assert_array_equal(loaded.sample(3, conditions={"label": "3"}, seed=1),
                                  gen.sample(3, conditions={"label": "3"}, seed=1))
    # Nothing to map without a condition: the flag is ignored, not an error.
    plain = Generator(condition=None, recipe=epochs(2), spatial_condition=True, verbosity=0)
    assert plain.fit(digits[0].head(64)).unet_.cond_map is None


def test_an_image_column_that_holds_no_images(digits):
    with pytest.raises(SchemaError, match=r"image column 'label' is categorical.*not an image"):
        Generator(image="label", verbosity=0).fit(digits[0])
    with pytest.raises(SchemaError, match=r"\['photo'\] are not in the table"):
        Generator(image="photo", verbosity=0).fit(digits[0])


def test_too_few_images_says_how_many_are_needed(digits):
    table = digits[0].head(20).copy()
    table.loc[table.index[:10], "image"] = None  # 10 usable left
    with pytest.raises(DataError, match=r"10 usable image\(s\) \(10 of 20 rows missing.*at "
                                        r"least 16"):
        Generator(condition=["label"], verbosity=0).fit(table)


def test_unreadable_images_are_skipped_and_reported(digits, tmp_path):
    rows = digits[0].head(40)
    paths = []
    for i, image in enumerate(rows["image"]):
        paths.append(f"img{i}.png")
        Image.fromarray(image).save(tmp_path / paths[-1])
    for name in paths[:3]:
        (tmp_path / name).write_bytes(b"not a png")  # unreadable
    (tmp_path / "table.csv").write_text(
        pd.DataFrame({"image": paths, "label": rows["label"].to_numpy()}).to_csv(index=False))
    with pytest.warns(UserWarning, match="3 of 40 rows skipped"):
        gen = Generator(condition=["label"], recipe=epochs(2), verbosity=0).fit(
            str(tmp_path / "table.csv"))
    assert gen.train_result_["num_images"] == 37


def test_an_audio_condition_end_to_end(tiny_table, tmp_path):
    """An image generated from a clip: audio is a condition column like any other — it
    trains, samples from a clip given as a path, saves and loads."""
    rows = pd.read_csv(tiny_table)
    table = pd.concat([rows, rows], ignore_index=True)  # 16 images, the fewest a fit takes
    table.attrs["base_dir"] = str(tiny_table.parent)
    gen = Generator(image="image", condition=["audio"], recipe=epochs(2), text_encoder="hashed",
                    verbosity=0).fit(table)
    assert gen.conditions_["audio"]["modality"] == "audio"
    clips = [str(tiny_table.parent / "audio" / f"clip_{i}.wav") for i in (0, 7)]
    images = gen.sample(4, conditions={"audio": clips}, seed=0)
    assert images.shape == (4, 8, 8, 3) and images.dtype == np.uint8
    gen.save(tmp_path / "gen")
    again = Generator.load(tmp_path / "gen").sample(4, conditions={"audio": clips}, seed=0)
    np.testing.assert_array_equal(again, images)
    # The clip changes the condition vector, so it can change the image.
    vectors = gen._condition_vectors(2, {"audio": clips}, None)
    assert not torch.allclose(vectors[0], vectors[1])
