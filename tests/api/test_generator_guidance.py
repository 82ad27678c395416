"""guidance="auto": the fit samples its trained network at 1, 1.5, 2 and 3 (each first with
the condition withheld for the first steps, then throughout) and keeps the least guidance
whose samples a pixel classifier recognises as well as real images."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from polymodal import datasets
from polymodal.api.generator import Generator
from polymodal.api.generator_guidance import ANNEALED_FROM, CHECK_IMAGES, auto_guidance
from polymodal.data.generator_rows import training_rows
from polymodal.errors import ConfigError
from polymodal.evaluate.guidance_check import CANDIDATES, TOLERANCE, choose_guidance
from polymodal.recipes.generator import FALLBACK_CONDITION_FROM, FALLBACK_GUIDANCE

pytestmark = pytest.mark.usefixtures("one_thread")

FIT = {"training.max_epochs": 2}


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", split=True, seed=0)[0]


@pytest.fixture(scope="module")
def auto_gen(digits):
    return Generator(condition="label", recipe=FIT, verbosity=0).fit(digits)


def _event(gen) -> dict:
    events = [e for e in gen.training_history_ if e.get("event") == "guidance"]
    assert len(events) == 1
    return events[0]


def test_the_check_chooses_a_guidance_and_sampling_uses_it(auto_gen):
    event = _event(auto_gen)
    tried = {(s["guidance"], s["condition_from"]): s["accuracy"]
             for s in event["sample_accuracy"]}
    # The least guidance first, conditioned throughout, stopping at the first that reaches
    # the real images' accuracy; there (only there) the annealed setting is tried too.
    conditioned = [g for g, c in tried if c == 1.0]
    annealed = [g for g, c in tried if c == ANNEALED_FROM]
    assert conditioned == list(CANDIDATES[:len(conditioned)])
    reached = [g for g in conditioned
               if tried[g, 1.0] >= event["real_accuracy"] - TOLERANCE]
    assert annealed == reached[:1] and reached in ([], conditioned[-1:])
    chosen = (event["guidance"], event["condition_from"])
    assert chosen == choose_guidance(event["real_accuracy"], tried)
    assert event["samples"] == CHECK_IMAGES and event["column"] == "label"
    assert 0.9 < event["real_accuracy"] <= 1.0  # a pixel classifier on digits
    assert auto_gen.guidance == "auto"  # the argument stays as given
    assert (auto_gen.recipe_.sampling.guidance,
            auto_gen.recipe_.sampling.condition_from) == chosen
    ask = {"label": [3, 8]}
    np.testing.assert_array_equal(
        auto_gen.sample(2, conditions=ask, seed=4),
        auto_gen.sample(2, conditions=ask, seed=4, guidance=event["guidance"]))


def test_the_choice_is_saved_loaded_and_repeatable(auto_gen, digits, tmp_path):
    folder = auto_gen.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["params"]["guidance"] == "auto"
    assert config["recipe"]["sampling"]["guidance"] == _event(auto_gen)["guidance"]
    assert config["recipe"]["sampling"]["condition_from"] == _event(auto_gen)["condition_from"]
    loaded = Generator.load(folder)
    ask = {"label": [1, 7, 7]}
    np.testing.assert_array_equal(loaded.sample(3, conditions=ask, seed=2),
                                  auto_gen.sample(3, conditions=ask, seed=2))
    # The same network, images and seed: the same accuracies.
    dataset, rows = training_rows(digits, loaded.transform_, "image")
    loaded.recipe_ = dataclasses.replace(  # as before the check: both "auto"
        loaded.recipe_, sampling=dataclasses.replace(loaded.recipe_.sampling, guidance="auto",
                                                     condition_from="auto"))
    again, start, event = auto_guidance(loaded, dataset.images, rows, seconds=None,
                                        images_per_s=1.0)
    first = _event(auto_gen)
    assert (again, start) == (first["guidance"], first["condition_from"])
    assert event["sample_accuracy"] == first["sample_accuracy"]
    assert event["real_accuracy"] == first["real_accuracy"]


def test_no_time_for_the_check_falls_back(auto_gen, digits):
    dataset, rows = training_rows(digits, auto_gen.transform_, "image")
    guidance, start, event = auto_guidance(auto_gen, dataset.images, rows, seconds=0.0,
                                           images_per_s=1000.0)
    assert (guidance, start) == (FALLBACK_GUIDANCE, FALLBACK_CONDITION_FROM) and "reason" in event


def test_a_generator_without_one_category_condition_samples_at_the_fallback(digits):
    gen = Generator(condition=None, recipe={"training.max_epochs": 1}, verbosity=0).fit(digits)
    event = _event(gen)
    assert event["guidance"] == FALLBACK_GUIDANCE and "reason" in event
    assert gen.recipe_.sampling.guidance == FALLBACK_GUIDANCE


def test_a_guidance_given_is_kept_without_a_check(digits):
    gen = Generator(condition="label", guidance=2.0, recipe={"training.max_epochs": 1},
                    verbosity=0).fit(digits)
    assert not [e for e in gen.training_history_ if e.get("event") == "guidance"]
    assert gen.recipe_.sampling.guidance == 2.0
    assert gen.recipe_.sampling.condition_from == FALLBACK_CONDITION_FROM


def test_a_condition_from_given_is_kept_by_the_check(digits):
    gen = Generator(condition="label", recipe={**FIT, "sampling.condition_from": 0.9},
                    verbosity=0).fit(digits)
    event = _event(gen)
    assert {s["condition_from"] for s in event["sample_accuracy"]} == {0.9}
    assert gen.recipe_.sampling.condition_from == 0.9


def test_withholding_the_condition_for_every_step_samples_unconditionally(auto_gen):
    """condition_from below the first step's t: every step is unconditional, so the class
    asked for makes no difference; at 1 it does."""
    recipe = auto_gen.recipe_
    try:
        auto_gen.recipe_ = dataclasses.replace(recipe, sampling=dataclasses.replace(
            recipe.sampling, condition_from=1e-6))
        threes = auto_gen.sample(4, conditions={"label": [3] * 4}, seed=1, guidance=2.0)
        eights = auto_gen.sample(4, conditions={"label": [8] * 4}, seed=1, guidance=2.0)
        np.testing.assert_array_equal(threes, eights)
        auto_gen.recipe_ = dataclasses.replace(recipe, sampling=dataclasses.replace(
            recipe.sampling, condition_from=1.0))
        assert not np.array_equal(
            auto_gen.sample(4, conditions={"label": [3] * 4}, seed=1, guidance=2.0),
            auto_gen.sample(4, conditions={"label": [8] * 4}, seed=1, guidance=2.0))
    finally:
        auto_gen.recipe_ = recipe


def test_condition_from_outside_its_range_is_one_error():
    with pytest.raises(ConfigError, match=r"sampling.condition_from=1.5 must be a sampler time"):
        Generator(condition="label", recipe={"sampling.condition_from": 1.5})._validate_params()


def test_auto_is_a_valid_guidance_and_other_words_are_not():
    Generator(condition="label", guidance="auto")._validate_params()
    with pytest.raises(ConfigError, match=r"guidance='high' must be a number in \[0, 20\].*'auto'"):
        Generator(condition="label", guidance="high")._validate_params()
