"""The Predictor's recipe: a pure function of the schema, the row count and the user's
choices; validated once with every problem named; saved and loaded back equal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from polymodal.data.audio_augment import AUDIO_AUGMENT_DEFAULTS
from polymodal.data.schema import infer_schema
from polymodal.errors import ConfigError
from polymodal.recipes.base import from_dict, override, to_dict
from polymodal.recipes.predictor import (
    LARGE_MEDIA_ROWS,
    LARGE_TABLE_ROWS,
    PredictorRecipe,
    resolve_audio_augment,
    resolve_predictor,
)


def _schema(columns: dict, label="label", n=40):
    rng = np.random.default_rng(0)
    data = {}
    for name, kind in columns.items():
        if kind == "image":
            data[name] = [rng.integers(0, 255, (8, 8), dtype=np.uint8) for _ in range(n)]
        elif kind == "numeric":
            data[name] = rng.normal(size=n)
        elif kind == "audio":
            data[name] = [f"clips/{i}.wav" for i in range(n)]
        elif kind == "categorical":
            data[name] = rng.choice(["a", "b", "c"], size=n)
    data[label] = rng.choice(["yes", "no"], size=n)
    return infer_schema(pd.DataFrame(data), label=label, overrides=dict(columns))


def test_a_numeric_table_gets_the_preset_and_every_classic_kind():
    recipe = resolve_predictor(_schema({"x": "numeric", "c": "categorical"}), 200)
    assert recipe.network.fusion == "concat" and recipe.network.width == 64
    assert recipe.candidates.classic == ("random_forest", "extra_trees", "linear",
                                         "hist_gradient_boosting", "lightgbm", "catboost")
    image = resolve_predictor(_schema({"x": "numeric", "i": "image"}), 200)
    assert not {"lightgbm", "catboost"} & set(image.candidates.classic)  # pixels: forests, boosting
    best = resolve_predictor(_schema({"x": "numeric", "i": "image"}), 200, preset="best")
    assert best.network.fusion == "attention" and best.candidates.ensemble_rounds == 50


def test_a_large_table_trains_histogram_boosting_first_with_a_larger_share():
    schema = _schema({"x": "numeric", "c": "categorical"})
    small = resolve_predictor(schema, LARGE_TABLE_ROWS - 1)
    large = resolve_predictor(schema, LARGE_TABLE_ROWS)
    assert small.candidates.classic[0] == "random_forest"
    assert large.candidates.classic == ("hist_gradient_boosting", "random_forest",
                                        "extra_trees", "linear", "lightgbm", "catboost")
    assert (large.candidates.shares["hist_gradient_boosting"]
            > small.candidates.shares["hist_gradient_boosting"])
    kept = resolve_predictor(schema, LARGE_TABLE_ROWS,
                             overrides={"candidates.classic": ["random_forest"]})
    assert kept.candidates.classic == ("random_forest",)  # the user's list wins


def test_one_token_is_never_fused_by_attention():
    recipe = resolve_predictor(_schema({"x": "numeric"}), 200, preset="best")
    assert recipe.network.fusion == "concat"


def test_image_tables_get_the_image_settings_and_large_ones_larger_batches():
    schema = _schema({"i": "image"})
    small = resolve_predictor(schema, 1000)
    assert (small.network.width, small.training.batch_size, small.training.ema) == (128, 128, False)
    assert small.training.label_smoothing == 0.1 and small.network.fusion == "concat"
    assert "linear" not in small.candidates.classic
    assert small.candidates.shares["random_forest"] == pytest.approx(0.04)
    large = resolve_predictor(schema, LARGE_MEDIA_ROWS)
    assert large.training.batch_size == 256 and large.training.lr == pytest.approx(4.2e-3)
    assert large.network.fusion == "single"
    assert large.candidates.shares["hist_gradient_boosting"] == pytest.approx(0.05)
    # The user's fusion stands; an image beside a number is fused.
    assert resolve_predictor(schema, LARGE_MEDIA_ROWS, fusion="concat").network.fusion == "concat"
    mixed = resolve_predictor(_schema({"i": "image", "x": "numeric"}), LARGE_MEDIA_ROWS)
    assert mixed.network.fusion == "concat"


def test_a_large_table_of_images_alone_trains_the_network_alone():
    schema = _schema({"i": "image"})
    assert resolve_predictor(schema, LARGE_MEDIA_ROWS).candidates.classic == ()
    assert resolve_predictor(schema, LARGE_MEDIA_ROWS - 1).candidates.classic  # small: trees
    # A number beside the image: the trees may use it.
    mixed = resolve_predictor(_schema({"i": "image", "x": "numeric"}), LARGE_MEDIA_ROWS)
    assert "random_forest" in mixed.candidates.classic
    kept = resolve_predictor(schema, LARGE_MEDIA_ROWS,
                             overrides={"candidates.classic": ["extra_trees"]})
    assert kept.candidates.classic == ("extra_trees",)  # the user's list wins


def test_audio_tables_train_longer_with_augmented_per_band_normalised_clips():
    audio = _schema({"a": "audio"})
    recipe = resolve_predictor(audio, 900)
    assert recipe.network.audio_norm == "band"
    assert recipe.training.max_epochs >= 100 and recipe.training.early_stopping_patience >= 20
    assert recipe.candidates.classic == ("random_forest", "extra_trees")
    plain = resolve_predictor(_schema({"x": "numeric"}), 900)
    assert plain.training.max_epochs == PredictorRecipe().training.max_epochs
    assert resolve_predictor(audio, 900, overrides={"training.max_epochs": 7}).training.max_epochs == 7
    with pytest.raises(ConfigError, match="network.audio_norm='instance'"):
        resolve_predictor(audio, 900, overrides={"network.audio_norm": "instance"})
    # The Predictor's audio_augment: "auto" is speech on audio tables, nothing elsewhere.
    assert resolve_audio_augment("auto", audio) == AUDIO_AUGMENT_DEFAULTS
    assert resolve_audio_augment("auto", _schema({"x": "numeric"})) is None
    assert resolve_audio_augment("none", audio) is None and resolve_audio_augment(None, audio) is None
    assert resolve_audio_augment({"speed": 0.0}, audio)["speed"] == 0.0


def test_batches_never_exceed_the_training_rows():
    assert resolve_predictor(_schema({"x": "numeric"}), 10).training.batch_size == 10


def test_overrides_by_dotted_key_or_section_and_as_cli_strings():
    schema = _schema({"x": "numeric"})
    recipe = resolve_predictor(schema, 200, overrides={"network.width": "96",
                                                       "training": {"ema": "false"},
                                                       "candidates.classic": '["linear"]'})
    assert recipe.network.width == 96 and recipe.training.ema is False
    assert recipe.candidates.classic == ("linear",)
    # A list field also takes comma-separated items, as a shell user types them.
    listed = resolve_predictor(schema, 200, overrides={"candidates.classic":
                                                       "random_forest, extra_trees"})
    assert listed.candidates.classic == ("random_forest", "extra_trees")
    assert resolve_predictor(schema, 200, overrides={"candidates.classic": ""}
                             ).candidates.classic == ()


def test_unknown_keys_and_bad_values_are_named_together():
    schema = _schema({"x": "numeric"})
    with pytest.raises(ConfigError) as info:
        resolve_predictor(schema, 200, overrides={"network.widht": 3, "training.lrr": 1})
    assert "'network.widht'" in str(info.value) and "did you mean 'width'" in str(info.value)
    assert "'training.lrr'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        resolve_predictor(schema, 200, overrides={"network.width": 2, "training.lr": -1,
                                                  "network.fusion": "sum"})
    message = str(info.value)
    assert "network.width=2" in message and "training.lr=-1" in message
    assert "network.fusion='sum'" in message
    with pytest.raises(ConfigError, match="training.batch_size='many' must be of type int"):
        override(PredictorRecipe(), {"training.batch_size": "many"})


def test_the_recipe_round_trips_through_json_exactly():
    recipe = resolve_predictor(_schema({"i": "image", "x": "numeric"}), LARGE_MEDIA_ROWS,
                               overrides={"network.width": 96})
    again = from_dict(PredictorRecipe, json.loads(json.dumps(to_dict(recipe))))
    assert again == recipe
    with pytest.raises(ConfigError, match="'network.colour'"):
        from_dict(PredictorRecipe, {"network": {"colour": 1}})


def test_resolving_is_pure():
    schema = _schema({"i": "image"})
    before = resolve_predictor(schema, 100)
    resolve_predictor(schema, LARGE_MEDIA_ROWS, overrides={"network.width": 32})
    assert resolve_predictor(schema, 100) == before


def test_a_mapping_field_takes_its_keys_one_by_one_and_bad_shapes_are_one_error():
    schema = _schema({"x": "numeric"})
    recipe = resolve_predictor(schema, 200, overrides={"candidates.shares.linear": "0.2"})
    assert recipe.candidates.shares["linear"] == 0.2
    assert recipe.candidates.shares["random_forest"] == 0.08  # the others keep their share
    for bad in ({"candidates.classic": "5"}, {"candidates.shares": "[1]"},
                {"candidates.classic": '"linear"'}, {"candidates.shares.linear": "lots"}):
        with pytest.raises(ConfigError, match="candidates"):
            resolve_predictor(schema, 200, overrides=bad)
