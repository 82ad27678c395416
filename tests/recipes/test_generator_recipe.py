"""The Generator's recipe: a pure function of the schema, the image count and shape and
the user's choices, equal to what the Generator trained with before recipes existed;
validated once with every problem named; saved and loaded back equal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from polymodal.data.schema import infer_schema
from polymodal.errors import ConfigError
from polymodal.models.unet import UNet
from polymodal.recipes.base import from_dict, override, to_dict
from polymodal.recipes.generator import (
    AUTO_GUIDANCE,
    FALLBACK_GUIDANCE,
    GeneratorRecipe,
    argument_problems,
    preset_recipe,
    resolve_generator,
    sampling_recipe,
)


def _schema(conditions=("label",), n=40, side=8):
    rng = np.random.default_rng(0)
    data = {"image": [rng.integers(0, 255, (side, side), dtype=np.uint8) for _ in range(n)]}
    for name in conditions:
        data[name] = rng.choice(["a", "b", "c"], size=n)
    return infer_schema(pd.DataFrame(data), overrides={"image": "image"})


def test_the_fast_preset_resolves_to_what_the_generator_used_before_recipes():
    """The values the Generator's fit computed before the recipe (preset dict + module
    constants + constructor defaults): 1,000 8x8 grey images, conditioned on a label."""
    recipe = resolve_generator(_schema(), 1000, (1, 8, 8))
    old_unet = UNet.sized_for(8, 1, cond_dim=64, coord_channels=False,
                              spatial_condition=True).config()
    n = recipe.network
    assert (n.base_channels, list(n.channel_mults), n.num_res_blocks,
            list(n.attention_resolutions), n.cond_dim, n.coord_channels,
            n.spatial_condition) == (
        old_unet["base_channels"], old_unet["channel_mults"], old_unet["num_res_blocks"],
        old_unet["attention_resolutions"], old_unet["cond_dim"], old_unet["coord_channels"],
        old_unet["spatial_condition"])
    assert recipe.condition.dropout == 0.1
    t = recipe.training
    # batch 64, lr 3e-3, no weight decay, 20 epochs, warm-up min(50, 16 steps * 20 // 20).
    assert (t.batch_size, t.lr, t.weight_decay, t.max_epochs, t.warmup_steps,
            t.min_lr_ratio, t.ema_halflife_images) == (64, 3e-3, 0.0, 20, 16, 0.1, 5000.0)
    s = recipe.sampling
    # Guidance is now chosen after training ("auto"); where it cannot be, it is the old 3.
    assert (s.sampler, s.num_steps, s.guidance, s.guidance_interval, s.shift) == (
        "ab2", 8, AUTO_GUIDANCE, (0.3, 0.8), 1.0)
    assert FALLBACK_GUIDANCE == 3.0


def test_image_sizes_and_the_best_preset():
    large = resolve_generator(_schema(side=64), 1000, (3, 64, 64))
    assert large.network.channel_mults == (1, 2, 4, 8) and large.network.attention_resolutions == (8,)
    best = resolve_generator(_schema(), 1000, (1, 28, 28), preset="best")
    assert best.network.num_res_blocks == 2 and best.network.cond_dim == 128
    assert best.training.lr == 1e-3 and best.training.max_epochs == 100
    assert best.training.warmup_steps == 50
    # Without conditions there is nothing to map spatially.
    assert not resolve_generator(_schema(()), 1000, (1, 8, 8)).network.spatial_condition


def test_constructor_arguments_feed_the_recipe():
    recipe = resolve_generator(_schema(), 100, (1, 8, 8), batch_size=16, lr=1e-3,
                               ema_halflife_images=None, condition_dropout=0.2,
                               coord_channels=True, sampler="euler", num_steps=4,
                               guidance=2.0, guidance_interval=[0.0, 1.0])
    assert (recipe.training.batch_size, recipe.training.lr) == (16, 1e-3)
    assert recipe.training.warmup_steps == 7  # 7 steps per epoch * 20 epochs // 20
    assert recipe.training.ema_halflife_images is None and recipe.condition.dropout == 0.2
    assert recipe.network.coord_channels and recipe.sampling.guidance_interval == (0.0, 1.0)


def test_overrides_by_dotted_key_or_section_and_as_cli_strings():
    recipe = resolve_generator(_schema(), 1000, (1, 8, 8), overrides={
        "network.base_channels": "24", "training": {"batch_size": 100},
        "network.channel_mults": "[1, 2, 2]", "sampling.guidance_interval": "[0.2, 0.9]"})
    assert recipe.network.base_channels == 24 and recipe.network.channel_mults == (1, 2, 2)
    assert recipe.sampling.guidance_interval == (0.2, 0.9)
    commas = resolve_generator(_schema(), 1000, (1, 8, 8), overrides={
        "network.channel_mults": "1,2", "sampling.guidance_interval": "0.1, 1"})
    assert commas.network.channel_mults == (1, 2)
    assert commas.sampling.guidance_interval == (0.1, 1.0)
    with pytest.raises(ConfigError, match="channel_mults"):
        resolve_generator(_schema(), 1000, (1, 8, 8), overrides={"network.channel_mults": "1,x"})
    # The warm-up follows the overridden batch size unless it is overridden itself.
    assert recipe.training.warmup_steps == 10
    fixed = resolve_generator(_schema(), 1000, (1, 8, 8),
                              overrides={"training.warmup_steps": 3, "training.batch_size": 100})
    assert fixed.training.warmup_steps == 3
    assert sampling_recipe(num_steps=4, overrides={"sampling.num_steps": 6}).num_steps == 6


def test_unknown_keys_and_bad_values_are_named_together():
    with pytest.raises(ConfigError) as info:
        resolve_generator(_schema(), 100, (1, 8, 8),
                          overrides={"network.widht": 3, "sampling.steps": 1})
    assert "'network.widht'" in str(info.value) and "'sampling.steps'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        resolve_generator(_schema(), 100, (1, 8, 8), overrides={
            "network.base_channels": 0, "training.lr": -1, "sampling.sampler": "ddim",
            "condition.dropout": 1.0, "sampling.guidance_interval": [0.8, 0.2],
            "network.patch_size": 3})
    message = str(info.value)
    for part in ("network.base_channels=0", "training.lr=-1", "sampling.sampler='ddim'",
                 "condition.dropout=1.0", "sampling.guidance_interval=(0.8, 0.2)",
                 "network.patch_size=3"):
        assert part in message, part
    with pytest.raises(ConfigError, match="training.batch_size='many' must be of type int"):
        override(GeneratorRecipe(), {"training.batch_size": "many"})


def test_argument_problems_name_the_arguments_and_the_overrides_together():
    problems = "; ".join(argument_problems(lr=0.0, num_steps=0, coord_channels="yes",
                                           overrides={"network.widht": 1,
                                                      "training.batch_size": 0}))
    assert "lr=0.0" in problems and "training.lr" not in problems
    assert "num_steps=0" in problems and "coord_channels='yes'" in problems
    assert "'network.widht'" in problems and "training.batch_size=0" in problems
    assert argument_problems() == []


def test_the_recipe_round_trips_through_json_exactly():
    recipe = resolve_generator(_schema(side=64), 5000, (3, 64, 64), preset="best",
                               overrides={"network.base_channels": 24})
    again = from_dict(GeneratorRecipe, json.loads(json.dumps(to_dict(recipe))))
    assert again == recipe
    with pytest.raises(ConfigError, match="'sampling.colour'"):
        from_dict(GeneratorRecipe, {"sampling": {"colour": 1}})


def test_resolving_is_pure_and_the_defaults_are_valid():
    schema = _schema()
    before = resolve_generator(schema, 100, (1, 8, 8))
    resolve_generator(schema, 5000, (1, 8, 8), overrides={"training.lr": 0.5})
    assert resolve_generator(schema, 100, (1, 8, 8)) == before
    GeneratorRecipe().validate()
    preset_recipe("best").validate()
    with pytest.raises(ConfigError, match="preset='slow'"):
        preset_recipe("slow")


def test_a_step_budget_bounds_training_and_sets_the_warm_up():
    from polymodal.train.generator_fit import generator_train_config

    recipe = resolve_generator(_schema(), 1000, (1, 8, 8),
                               overrides={"training.max_steps": "200"})  # as --steps passes it
    assert recipe.training.max_steps == 200
    assert recipe.training.warmup_steps == 10  # a twentieth of the step budget
    loop = {k: v for k, v in to_dict(recipe)["training"].items() if k != "guide_at"}  # not the loop's
    config = generator_train_config(1000, **loop, time_left_s=None,
                                    seed=0, progress=False, precision="auto", checkpoints=False)
    assert config.max_steps == 200 and config.max_epochs is None
    assert resolve_generator(_schema(), 1000, (1, 8, 8)).training.max_steps is None
    with pytest.raises(ConfigError, match="training.max_steps"):
        resolve_generator(_schema(), 1000, (1, 8, 8), overrides={"training.max_steps": 0})
