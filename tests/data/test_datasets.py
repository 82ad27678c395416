"""Built-in datasets: digits, fashion-mnist, shapes, the registry and the CSV + PNG export."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull

from polymodal import datasets
from polymodal.data.builtin import fashion_mnist, shapes
from polymodal.errors import ConfigError, DataError

FASHION_AVAILABLE = fashion_mnist.is_available()
needs_fashion = pytest.mark.skipif(
    not FASHION_AVAILABLE, reason="Debian package dataset-fashion-mnist is not installed"
)


def _stack(column: pd.Series) -> np.ndarray:
    return np.stack(column.to_list())


# ----------------------------------------------------------------------------- registry


def test_list_datasets_describes_every_builtin():
    infos = {info.name: info for info in datasets.list_datasets()}
    assert list(infos) == ["digits", "fashion-mnist", "shapes"]
    assert infos["digits"].rows == 1797 and infos["digits"].available
    assert infos["fashion-mnist"].rows == 70_000
    assert infos["fashion-mnist"].available == FASHION_AVAILABLE
    assert "apt-get install dataset-fashion-mnist" in infos["fashion-mnist"].how_to_install
    assert infos["shapes"].generated and infos["shapes"].options["image_size"] == 32
    assert set(infos["shapes"].modalities) == {"image", "text", "categorical", "numeric"}
    for info in infos.values():
        assert info.description and info.license and info.source
    assert datasets.describe("Fashion_MNIST").name == "fashion-mnist"


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(DataError) as err:
        datasets.load("mnist-ish")
    message = str(err.value)
    assert "'mnist-ish'" in message
    for name in ("digits", "fashion-mnist", "shapes"):
        assert name in message
    with pytest.raises(DataError, match="known datasets"):
        datasets.export("nope", "unused-folder")


def test_bad_options_and_n_are_config_errors():
    with pytest.raises(ConfigError, match="image_sise"):
        datasets.load("shapes", image_sise=64)
    with pytest.raises(ConfigError, match="n=5000.*1,797"):
        datasets.load("digits", n=5000)
    with pytest.raises(ConfigError, match="n=1"):
        datasets.load("digits", n=1, split=True)
    with pytest.raises(ConfigError, match="image_size=4"):
        datasets.load("shapes", n=2, image_size=4)


# ------------------------------------------------------------------------------- digits


def test_digits_pixels_are_sklearn_digits_scaled_to_uint8():
    from sklearn.datasets import load_digits

    df = datasets.load("digits")
    assert list(df.columns) == ["image", "label"]
    assert len(df) == 1797
    images = _stack(df["image"])  # (1797, 8, 8)
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    source = load_digits()
    expected = np.floor(source.images * 255 / 16 + 0.5)  # round half up
    np.testing.assert_array_equal(images, expected.astype(np.uint8))
    assert images.max() == 255 and images.min() == 0
    np.testing.assert_array_equal(df["label"].to_numpy(), source.target)
    assert df.attrs["source"] == "polymodal:digits"
    assert df.attrs["base_dir"] == os.getcwd()


def test_digits_split_is_stratified_80_20_and_seeded():
    train, test = datasets.load("digits", split=True, seed=3)
    assert len(train) + len(test) == 1797
    assert abs(len(test) - 0.2 * 1797) <= 1
    train_share = train["label"].value_counts(normalize=True).sort_index()
    test_share = test["label"].value_counts(normalize=True).sort_index()
    assert np.abs(train_share - test_share).max() < 0.01
    assert list(train.index) == list(range(len(train)))
    again, _ = datasets.load("digits", split=True, seed=3)
    np.testing.assert_array_equal(_stack(train["image"]), _stack(again["image"]))
    other, _ = datasets.load("digits", split=True, seed=4)
    assert not np.array_equal(_stack(train["image"]), _stack(other["image"]))
    # Train and test together are exactly the full table (as a multiset of rows).
    full = datasets.load("digits")

    def rows(df: pd.DataFrame) -> list[bytes]:
        pairs = zip(df["image"], df["label"], strict=True)
        return sorted(img.tobytes() + bytes([label]) for img, label in pairs)

    assert rows(pd.concat([train, test])) == rows(full)


def test_digits_n_takes_a_seeded_sample():
    small = datasets.load("digits", n=50, seed=1)
    assert len(small) == 50
    np.testing.assert_array_equal(
        _stack(small["image"]), _stack(datasets.load("digits", n=50, seed=1)["image"])
    )
    train, test = datasets.load("digits", n=20, split=True)  # too small to stratify: still splits
    assert (len(train), len(test)) == (16, 4)


# ------------------------------------------------------------------------ fashion-mnist


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_reads_idx_files_from_the_env_folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    _write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", train_images)
    _write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(7))
    _write_idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", test_images)
    _write_idx_gz(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([9, 0, 3]))
    monkeypatch.setenv("POLYMODAL_FASHION_MNIST_DIR", str(tmp_path))

    train, test = datasets.load("fashion-mnist", split=True)
    assert (len(train), len(test)) == (7, 3)
    np.testing.assert_array_equal(_stack(train["image"]), train_images)
    np.testing.assert_array_equal(_stack(test["image"]), test_images)
    assert test["label"].tolist() == [9, 0, 3]
    assert test["label_name"].tolist() == ["Ankle boot", "T-shirt/top", "Dress"]
    assert len(datasets.load("fashion-mnist")) == 10


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_FASHION_MNIST_DIR", str(tmp_path))
    assert not datasets.describe("fashion-mnist").available
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        datasets.load("fashion-mnist")


@needs_fashion
def test_fashion_mnist_standard_split_loads_fast():
    start = time.perf_counter()
    train, test = datasets.load("fashion-mnist", split=True)
    elapsed_s = time.perf_counter() - start
    # The target is < 2 s; the bound is loose because the test machine is shared.
    assert elapsed_s < 10, f"loading took {elapsed_s:.1f} s; it must stay vectorised"
    assert (len(train), len(test)) == (60_000, 10_000)
    assert list(train.columns) == ["image", "label", "label_name"]
    first = train["image"].iloc[0]
    assert first.shape == (28, 28) and first.dtype == np.uint8
    assert (train["label"].value_counts() == 6000).all()
    assert (test["label"].value_counts() == 1000).all()
    names = dict(zip(train["label"], train["label_name"], strict=True))
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and len(names) == 10
    assert train.attrs["source"] == "polymodal:fashion-mnist"
    small_train, small_test = datasets.load("fashion-mnist", split=True, n=700)
    assert (len(small_train), len(small_test)) == (600, 100)


# ------------------------------------------------------------------------------ shapes

EXPECTED_SHAPES_COLUMNS = [
    "image", "caption", "shape", "color", "size", "position",
    "area", "hue", "material", "price", "label",
]  # fmt: skip


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="image"), b.drop(columns="image"))
    np.testing.assert_array_equal(_stack(a["image"]), _stack(b["image"]))


def test_shapes_is_deterministic_by_seed_for_any_n():
    first = datasets.load("shapes", n=12, seed=5)
    assert list(first.columns) == EXPECTED_SHAPES_COLUMNS
    assert len(first) == 12
    image = first["image"].iloc[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    _assert_same_table(first, datasets.load("shapes", n=12, seed=5))
    # Rows are generated independently: a shorter table is a prefix of a longer one.
    _assert_same_table(datasets.load("shapes", n=5, seed=5), first.iloc[:5].reset_index(drop=True))
    other = datasets.load("shapes", n=12, seed=6)
    assert not np.array_equal(_stack(first["image"]), _stack(other["image"]))
    assert len(datasets.load("shapes", n=1)) == 1
    assert datasets.load("shapes", n=3, image_size=48)["image"].iloc[0].shape == (48, 48, 3)
    assert (
        len(datasets.load("shapes")) == 2000
        and len(datasets.load("shapes", n=7, split=True)[1]) >= 1
    )


def test_shapes_columns_hold_valid_ground_truth():
    df = datasets.load("shapes", n=300, seed=1)
    assert set(df["shape"]) == set(shapes.KINDS)
    assert set(df["color"]) == set(shapes.COLORS)
    assert set(df["size"]) == set(shapes.SIZES)
    assert set(df["position"]) == set(shapes.POSITIONS)
    assert set(df["material"]) == set(shapes.MATERIALS)
    assert set(df["label"]) == {"premium", "standard"}
    assert df["hue"].between(0, 360).all() and df["price"].gt(0).all()
    # Size is visible as area: every small shape covers less than every large one.
    assert df.loc[df["size"] == "small", "area"].max() < df.loc[df["size"] == "large", "area"].min()
    # hue is the colour's hue plus noise (circular distance, degrees).
    nominal = df["color"].map(shapes.COLOR_HUES_DEG)
    gap = np.abs((df["hue"] - nominal + 180) % 360 - 180)
    assert gap.median() < 10 and gap.max() < 50


def test_shapes_label_rule_holds_on_most_rows_and_needs_both_modalities():
    df = datasets.load("shapes", n=2000, seed=2)
    rule = [shapes.label_rule(k, m) for k, m in zip(df["shape"], df["material"], strict=True)]
    agreement = float(np.mean(df["label"].to_numpy() == np.asarray(rule)))
    assert 0.9 <= agreement < 0.99  # ~5% label noise
    premium = df["label"] == "premium"
    # Neither half alone says anything: P(premium) stays near 0.5 within each kind and material.
    for column in ("shape", "material"):
        share = premium.groupby(df[column]).mean()
        assert share.between(0.4, 0.6).all(), share
    clean = datasets.load("shapes", n=200, seed=2, label_noise=0.0)
    assert all(
        lab == shapes.label_rule(k, m)
        for lab, k, m in zip(clean["label"], clean["shape"], clean["material"], strict=True)
    )
    assert shapes.label_rule("star", "metal") == "premium"
    assert shapes.label_rule("square", "metal") == "standard"
    assert shapes.label_rule("triangle", "wood") == "premium"


# Geometry read back from the pixels, to check that the image shows what the caption says.


def _main_shape_mask(image: np.ndarray, color: str) -> np.ndarray:
    """Pixels whose nearest palette colour (6 named colours + background) is ``color``."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    background = values[counts.argmax()]  # the background covers most of the image
    palette = [shapes._hsv_rgb(shapes.COLOR_HUES_DEG[c], 0.825, 0.9) for c in shapes.COLORS]
    palette = np.vstack([np.asarray(palette, dtype=np.float64), background])  # (7, 3)
    nearest = np.argmin(((pixels[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    mask = (nearest == shapes.COLORS.index(color)).reshape(image.shape[:2])
    labelled, count = ndimage.label(mask)
    assert count >= 1, f"no {color} pixels"
    largest = np.argmax(np.bincount(labelled.ravel())[1:]) + 1  # drops stray anti-aliased edges
    return labelled == largest


def _kind_from_mask(mask: np.ndarray) -> str:
    """circle/square/triangle/star from how round and how convex the blob is."""
    ys, xs = np.nonzero(mask)
    points = np.column_stack([xs, ys]).astype(np.float64)
    solidity = len(points) / ConvexHull(points).volume  # (hull area in 2-D is .volume)
    if solidity < 0.9:  # stars measure 0.57-0.78, convex kinds above 1 (hull of pixel centres)
        return "star"
    reach = np.sqrt(((points - points.mean(0)) ** 2).sum(1)).max() + 0.5
    roundness = len(points) / (np.pi * reach**2)  # circle 1, square 0.64, triangle 0.41
    return "circle" if roundness > 0.78 else "square" if roundness > 0.545 else "triangle"


def _position_from_mask(mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    size = mask.shape[0]
    col, row = int(xs.mean() * 3 // size), int(ys.mean() * 3 // size)
    return shapes.POSITIONS[row * 3 + col]


def _parse_caption(caption: str) -> dict:
    text = caption.lower()
    found = {
        "shape": [k for k in shapes.KINDS if k in text],
        "color": [c for c in shapes.COLORS if c in text],
        "size": [
            s
            for s, words in shapes.SIZE_WORDS.items()
            if any(w in text.split() or w + "," in text.split() for w in words)
        ],
    }
    phrases = [(p, pos) for pos, ps in shapes.POSITION_PHRASES.items() for p in ps if p in text]
    found["position"] = [max(phrases, key=lambda pair: len(pair[0]))[1]] if phrases else []
    return found


def test_shapes_captions_and_images_match_the_attribute_columns():
    df = datasets.load("shapes", n=60, seed=7, image_size=64)
    kinds_checked = 0
    for row in df.itertuples():
        parsed = _parse_caption(row.caption)
        assert parsed == {
            "shape": [row.shape],
            "color": [row.color],
            "size": [row.size],
            "position": [row.position],
        }, row.caption
        mask = _main_shape_mask(row.image, row.color)
        assert _position_from_mask(mask) == row.position, row.caption
        assert mask.mean() == pytest.approx(row.area, rel=0.25), row.caption
        touches_border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        if not touches_border:  # a clipped shape changes its outline
            assert _kind_from_mask(mask) == row.shape, row.caption
            kinds_checked += 1
    assert kinds_checked >= 30
    assert df["caption"].nunique() > 50  # varied phrasing, not one template


def test_render_shape_draws_what_it_is_told():
    for kind in shapes.KINDS:
        for color in ("red", "blue", "yellow"):
            image = shapes.render_shape(kind, color, "large", "center", image_size=64, seed=3)
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            mask = _main_shape_mask(image, color)
            assert _kind_from_mask(mask) == kind
            assert _position_from_mask(mask) == "center"
    small = shapes.render_shape("circle", "green", "small", "bottom right", image_size=64, seed=1)
    mask = _main_shape_mask(small, "green")
    assert _position_from_mask(mask) == "bottom right" and mask.mean() < 0.05
    np.testing.assert_array_equal(
        small,
        shapes.render_shape("circle", "green", "small", "bottom right", image_size=64, seed=1),
    )
    with pytest.raises(ConfigError, match="kind='hexagon'"):
        shapes.render_shape("hexagon", "red", "small", "center")


# ------------------------------------------------------------------------------ export


def _read_back(out: Path, split: str) -> tuple[pd.DataFrame, list[np.ndarray]]:
    table = pd.read_csv(out / f"{split}.csv")
    images = []
    for path in table["image"]:
        assert not Path(path).is_absolute() and path.startswith("images/")
        with Image.open(out / path) as img:
            assert img.format == "PNG"
            images.append(np.asarray(img))
    return table, images


@pytest.mark.parametrize(("name", "n"), [("shapes", 30), ("digits", 40)])
def test_export_writes_csv_and_pngs_identical_to_memory(tmp_path, name, n):
    out = datasets.export(name, tmp_path / "table", n=n, seed=4)
    assert out == tmp_path / "table"
    assert sorted(p.name for p in out.iterdir()) == ["images", "test.csv", "train.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["table"]  # no staging folder left behind
    expected = dict(
        zip(("train", "test"), datasets.load(name, split=True, n=n, seed=4), strict=True)
    )
    for split, frame in expected.items():
        table, images = _read_back(out, split)
        assert len(table) == len(frame) and list(table.columns) == list(frame.columns)
        for got, want in zip(images, frame["image"], strict=True):
            np.testing.assert_array_equal(got, want)
        pd.testing.assert_frame_equal(
            table.drop(columns="image"), frame.drop(columns="image"), check_dtype=False
        )


def test_export_reads_back_like_a_users_table(tmp_path):
    from polymodal.data.media import image_to_array, load_image
    from polymodal.data.readers import read_table

    out = datasets.export("shapes", tmp_path / "shapes", n=10)
    table = read_table(out / "train.csv")
    assert Path(table.attrs["base_dir"]).resolve() == out.resolve()
    train, _ = datasets.load("shapes", split=True, n=10)
    for cell, want in zip(table["image"], train["image"], strict=True):
        got = image_to_array(load_image(cell, table.attrs["base_dir"], channels=3))
        np.testing.assert_array_equal(got, want)


def test_export_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    datasets.export("digits", out, n=10)  # an empty folder is fine
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty.*overwrite=True"):
        datasets.export("digits", out, n=10)
    assert (out / "notes.txt").read_text() == "mine"
    datasets.export("shapes", out, n=10, overwrite=True)
    assert not (out / "notes.txt").exists()
    assert "caption" in pd.read_csv(out / "train.csv").columns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        datasets.export("digits", tmp_path / "file", n=10)


def test_export_of_a_bad_request_leaves_nothing_behind(tmp_path):
    with pytest.raises(ConfigError):
        datasets.export("shapes", tmp_path / "out", n=10, image_size=2)
    assert list(tmp_path.iterdir()) == []
