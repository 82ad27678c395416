"""A Generator whose UNet cross-attends to condition tokens (``network.context_dim``)."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal import datasets
from polymodal.api.generator import Generator
from polymodal.errors import ConfigError
from polymodal.models.condition import MAX_NGRAM_TOKENS

pytestmark = pytest.mark.usefixtures("one_thread")

TOKENS = {"training.max_epochs": 2, "network.context_dim": 8}


@pytest.fixture(scope="module")
def token_gen():
    table = datasets.load("shapes", n=96, seed=0, image_size=16)
    return Generator(condition=["caption", "shape"], text_encoder="hashed", recipe=TOKENS,
                     verbosity=0).fit(table)


def test_the_unet_cross_attends_to_a_token_per_column_and_ngram(token_gen):
    unet = token_gen.unet_.config()
    assert unet["cross_attn_dim"] == 8
    assert unet["context_tokens"] == 2 + min(256, MAX_NGRAM_TOKENS)  # caption, shape, n-grams
    assert unet["cross_attention_resolutions"] == [16, 8]  # both levels of a 16x16 UNet
    assert token_gen.recipe_.network.context_dim == 8


def test_prompts_reach_the_samples_and_a_saved_folder_round_trips(token_gen, tmp_path):
    kind = {"shape": "star"}
    star = token_gen.sample(3, prompts=["a large red star in the center"] * 3,
                            conditions=kind, seed=0)
    square = token_gen.sample(3, prompts=["a large red square in the center"] * 3,
                              conditions=kind, seed=0)
    assert star.shape == (3, 16, 16, 3) and not np.array_equal(star, square)
    again = Generator.load(token_gen.save(tmp_path / "gen"))
    assert again.unet_.config() == token_gen.unet_.config()
    np.testing.assert_array_equal(
        again.sample(3, prompts=["a large red star in the center"] * 3, conditions=kind,
                     seed=0), star)
    # A column left out is sampled unconditionally for it, tokens included.
    with pytest.warns(UserWarning, match="unconditionally"):
        alone = token_gen.sample(2, conditions={"shape": "star"}, seed=0)
    assert alone.shape == (2, 16, 16, 3)


def test_a_bad_token_width_is_named():
    with pytest.raises(ConfigError, match=r"network\.context_dim=-1"):
        Generator(condition=["caption"], recipe={"network.context_dim": -1}).fit(
            datasets.load("shapes", n=32, seed=0, image_size=8))
