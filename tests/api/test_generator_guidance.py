"""guidance="auto": the fit samples its trained network at 1, 1.5, 2 and 3 and keeps the
least guidance whose samples a pixel classifier recognises as well as real images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polymodal import datasets
from polymodal.api.generator import Generator
from polymodal.api.generator_guidance import CHECK_IMAGES, auto_guidance
from polymodal.data.generator_rows import training_rows
from polymodal.errors import ConfigError
from polymodal.evaluate.guidance_check import CANDIDATES, choose_guidance
from polymodal.recipes.generator import FALLBACK_GUIDANCE

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
    tried = {float(g): a for g, a in event["sample_accuracy"].items()}
    # Least first, stopping at the first that reaches the real images' accuracy.
    assert list(tried) == list(CANDIDATES[:len(tried)])
    assert event["guidance"] == choose_guidance(event["real_accuracy"], tried)
    assert event["samples"] == CHECK_IMAGES and event["column"] == "label"
    assert 0.9 < event["real_accuracy"] <= 1.0  # a pixel classifier on digits
    assert auto_gen.guidance == "auto"  # the argument stays as given
    assert auto_gen.recipe_.sampling.guidance == event["guidance"]
    ask = {"label": [3, 8]}
    np.testing.assert_array_equal(
        auto_gen.sample(2, conditions=ask, seed=4),
        auto_gen.sample(2, conditions=ask, seed=4, guidance=event["guidance"]))


def test_the_choice_is_saved_loaded_and_repeatable(auto_gen, digits, tmp_path):
    folder = auto_gen.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["params"]["guidance"] == "auto"
    assert config["recipe"]["sampling"]["guidance"] == _event(auto_gen)["guidance"]
    loaded = Generator.load(folder)
    ask = {"label": [1, 7, 7]}
    np.testing.assert_array_equal(loaded.sample(3, conditions=ask, seed=2),
                                  auto_gen.sample(3, conditions=ask, seed=2))
    # The same network, images and seed: the same accuracies.
    dataset, rows = training_rows(digits, loaded.transform_, "image")
    again, event = auto_guidance(loaded, dataset.images, rows, seconds=None, images_per_s=1.0)
    first = _event(auto_gen)
    assert again == first["guidance"]
    assert event["sample_accuracy"] == first["sample_accuracy"]
    assert event["real_accuracy"] == first["real_accuracy"]


def test_no_time_for_the_check_falls_back(auto_gen, digits):
    dataset, rows = training_rows(digits, auto_gen.transform_, "image")
    guidance, event = auto_guidance(auto_gen, dataset.images, rows, seconds=0.0,
                                    images_per_s=1000.0)
    assert guidance == FALLBACK_GUIDANCE and "reason" in event


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


def test_auto_is_a_valid_guidance_and_other_words_are_not():
    Generator(condition="label", guidance="auto")._validate_params()
    with pytest.raises(ConfigError, match=r"guidance='high' must be a number in \[0, 20\].*'auto'"):
        Generator(condition="label", guidance="high")._validate_params()
