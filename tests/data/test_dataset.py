"""Tests for polymodal.data.dataset: TableDataset, collate -> Batch, make_loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

import polymodal.data.image_encoding as image_encoding_module
from polymodal.data.batch import Batch
from polymodal.data.dataset import TableDataset, collate, make_loader, row_uniforms, set_epoch
from polymodal.data.schema import ColumnSchema, Schema
from polymodal.data.transforms import TableTransform


def make_schema(
    modalities: dict[str, str], label: str | None = None, problem_type: str | None = None
) -> Schema:
    columns = {
        name: ColumnSchema(name, modality, "set by the test")
        for name, modality in modalities.items()
    }
    return Schema(columns=columns, label=label, problem_type=problem_type)


@pytest.fixture
def every_modality(tmp_path):
    """Six rows with every modality; rows 2 and 5 have missing or unreadable cells."""
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            tmp_path / f"im{i}.png"
        )
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    t = np.arange(4000) / 8000
    sf.write(tmp_path / "clip.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    df = pd.DataFrame(
        {
            "price": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "colour": ["red", "blue", None, "red", "green", "blue"],
            "tags": ["a;b", "b", None, "c", "a", "b;c"],
            "when": ["2020-01-01", "2020-02-01", None, "2021-01-01", "2021-03-01", "2022-01-01"],
            "title": ["red cup", "blue cup", None, "red mug", "green mug", "blue mug"],
            "photo": ["im0.png", "im1.png", None, "im2.png", "im0.png", "corrupt.png"],
            "sound": ["clip.wav", "clip.wav", None, "clip.wav", "clip.wav", "gone.wav"],
            "y": ["x", "y", "x", "y", "x", "y"],
        }
    )
    df.attrs["base_dir"] = str(tmp_path)
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
    transform = TableTransform(
        schema, text_encoder="hashed", n_mels=16, augment={"shift_px": 2, "hflip": True},
        audio_augment={},
    ).fit(df)
    return df, transform


def test_collate_builds_the_batch_contract(every_modality):
    df, transform = every_modality
    spec = transform.feature_spec()
    batch = collate([TableDataset(df, transform)[i] for i in range(6)])
    assert isinstance(batch, Batch) and len(batch) == 6
    assert batch.index.dtype == torch.int64 and batch.index.tolist() == list(range(6))
    assert batch.numeric.shape == (6, spec["n_numeric"]) and batch.numeric.dtype == torch.float32
    assert batch.categorical.shape == (6, 1) and batch.categorical.dtype == torch.int64
    assert (
        batch.multilabel.shape == (6, spec["multilabel_dim"])
        and batch.multilabel.dtype == torch.float32
    )
    assert batch.text["title"].shape == (6, spec["text_dims"]["title"])
    c, h, w = spec["image_shapes"]["photo"]
    assert (
        batch.image["photo"].shape == (6, c, h, w) and batch.image["photo"].dtype == torch.float32
    )
    assert batch.audio["sound"].shape == (6, *spec["audio_shapes"]["sound"])
    assert set(batch.mask) == set(transform.schema.features())
    assert all(m.dtype == torch.bool and m.shape == (6,) for m in batch.mask.values())
    assert batch.label.dtype == torch.int64 and batch.label.tolist() == [0, 1, 0, 1, 0, 1]
    moved = batch.to("cpu")
    assert torch.equal(moved.image["photo"], batch.image["photo"])


def test_masks_are_false_for_missing_and_unreadable_cells(every_modality):
    df, transform = every_modality
    batch = collate([TableDataset(df, transform)[i] for i in range(6)])
    for column in ["price", "colour", "tags", "when", "title", "photo", "sound"]:
        assert not batch.mask[column][2], column  # row 2: every cell empty
        assert batch.mask[column][0], column
    assert batch.mask["photo"].tolist() == [True, True, False, True, True, False]  # 5: corrupt
    assert batch.mask["sound"].tolist() == [True, True, False, True, True, False]  # 5: no file
    assert not batch.image["photo"][[2, 5]].any() and not batch.audio["sound"][[2, 5]].any()
    assert batch.image["photo"][0].any() and batch.audio["sound"][0].any()
    assert batch.categorical[2, 0] == 1  # the missing index


def test_label_is_none_when_not_wanted_or_absent(every_modality):
    df, transform = every_modality
    assert collate([TableDataset(df, transform, with_label=False)[0]]).label is None
    unlabelled = df.drop(columns=["y"])
    unlabelled.attrs = df.attrs
    assert collate([TableDataset(unlabelled, transform)[0]]).label is None


def test_dataset_is_lazy_and_decodes_only_rows_read(tmp_path, monkeypatch):
    for i in range(4):
        Image.new("L", (10, 10), 40 * i).save(tmp_path / f"{i}.png")
    df = pd.DataFrame({"img": [f"{i % 4}.png" for i in range(2000)], "n": np.arange(2000.0)})
    df.attrs["base_dir"] = str(tmp_path)
    transform = TableTransform(make_schema({"img": "image", "n": "numeric"})).fit(df)

    decoded: list = []
    real_load_image = image_encoding_module.load_image

    def counting_load_image(cell, *args, **kwargs):
        decoded.append(cell)
        return real_load_image(cell, *args, **kwargs)

    monkeypatch.setattr(image_encoding_module, "load_image", counting_load_image)
    dataset = TableDataset(df, transform)
    assert len(dataset) == 2000 and decoded == []  # construction decodes nothing
    batch = collate([dataset[i] for i in (5, 1999)])
    assert decoded == ["1.png", "3.png"]  # only the rows read
    assert batch.index.tolist() == [5, 1999]
    assert batch.image["img"].shape == (2, 1, 12, 12)

    cached = TableDataset(df, transform, cache_media=True)
    decoded.clear()
    first, again = cached[7], cached[7]
    assert decoded == ["3.png"] and torch.equal(first["image"]["img"], again["image"]["img"])


def test_loader_order_is_fixed_by_seed_and_epoch(every_modality):
    df, transform = every_modality
    dataset = TableDataset(df, transform)

    def epoch_order(seed: int, epoch: int) -> list[int]:
        loader = make_loader(dataset, batch_size=4, shuffle=True, seed=seed)
        set_epoch(loader, epoch)
        return [i for batch in loader for i in batch.index.tolist()]

    assert sorted(epoch_order(0, 0)) == list(range(6))
    assert epoch_order(0, 0) == epoch_order(0, 0)  # a fresh loader, same order
    orders = {tuple(epoch_order(s, e)) for s in range(3) for e in range(3)}
    assert len(orders) > 3  # seeds and epochs change the order
    plain = make_loader(dataset, batch_size=4, shuffle=False, seed=0, drop_last=True)
    assert [b.index.tolist() for b in plain] == [[0, 1, 2, 3]]


def test_augmentation_depends_only_on_seed_epoch_and_row(every_modality):
    df, transform = every_modality
    train = TableDataset(df, transform, train=True, seed=3)
    plain = TableDataset(df, transform, train=False)[0]["image"]["photo"]
    first = train[0]["image"]["photo"]
    assert not torch.equal(first, plain)  # augmented
    assert torch.equal(TableDataset(df, transform, train=True, seed=3)[0]["image"]["photo"], first)
    train.set_epoch(1)
    assert not torch.equal(train[0]["image"]["photo"], first)
    train.set_epoch(0)
    assert torch.equal(train[0]["image"]["photo"], first)  # resuming epoch 0 repeats it


def test_worker_processes_give_the_same_batches(every_modality):
    df, transform = every_modality
    dataset = TableDataset(df, transform, train=True, seed=1)
    batches = {}
    for workers in (0, 2):
        loader = make_loader(dataset, batch_size=3, shuffle=True, seed=5, num_workers=workers)
        set_epoch(loader, 2)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2], strict=True):
        assert torch.equal(a.index, b.index)
        assert torch.equal(a.image["photo"], b.image["photo"])
        assert torch.equal(a.audio["sound"], b.audio["sound"])


@pytest.mark.parametrize("workers", [0, 2])
def test_preload_media_fills_the_cache_with_what_a_read_decodes(every_modality, workers):
    df, transform = every_modality
    cached = TableDataset(df, transform, cache_media=True)
    # 2 media columns x 6 rows, decoded by worker processes or here.
    assert cached.preload_media(num_workers=workers) == 12
    assert cached.preload_media(num_workers=workers) == 0  # nothing left to decode
    fresh = TableDataset(df, transform)
    for row in range(len(df)):
        a, b = cached[row], fresh[row]
        for modality, column in (("image", "photo"), ("audio", "sound")):
            assert torch.equal(a[modality][column], b[modality][column])
            assert a["mask"][column] == b["mask"][column]
    assert not cached[5]["mask"]["photo"]  # the corrupt file stays absent


def test_preload_media_needs_the_cache(every_modality):
    df, transform = every_modality
    with pytest.raises(Exception, match="cache_media=True"):
        TableDataset(df, transform).preload_media()


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_a_batch_read_at_once_equals_the_rows_collated(every_modality, train, cache):
    """``__getitems__`` (what the DataLoader calls per batch) builds the same Batch as the
    per-row path, augmentation, missing and unreadable cells included; from the decoded
    cache too, where the batch's shifts are one gather."""
    df, transform = every_modality
    dataset = TableDataset(df, transform, train=train, seed=4, cache_media=cache)
    if cache:
        dataset.preload_media()
    dataset.set_epoch(3)
    indices = [5, 0, 2, 3, 0]
    fast, rows = dataset.__getitems__(indices), collate([dataset[i] for i in indices])
    for name in ("index", "numeric", "categorical", "multilabel", "label"):
        a, b = getattr(fast, name), getattr(rows, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    for name in ("text", "image", "audio", "mask"):
        a, b = getattr(fast, name), getattr(rows, name)
        assert a.keys() == b.keys(), name
        for column in a:
            assert a[column].dtype == b[column].dtype and torch.equal(a[column], b[column])
    with pytest.raises(IndexError, match="row 6 out of range"):
        dataset.__getitems__([1, 6])


def test_a_batch_read_at_once_augments_several_image_columns_like_the_rows(tmp_path):
    """Each image column of a row reads its own draws, mirroring included, in both paths."""
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    df = pd.DataFrame({"front": ["0.png", "1.png", "2.png"], "back": ["2.png", "0.png", "1.png"],
                       "y": ["a", "b", "a"]})
    df.attrs["base_dir"] = str(tmp_path)
    schema = make_schema({"front": "image", "back": "image", "y": "categorical"}, label="y",
                         problem_type="binary")
    transform = TableTransform(schema, augment={"shift_px": 3, "hflip": True}).fit(df)
    dataset = TableDataset(df, transform, train=True, seed=2)
    cached = TableDataset(df, transform, train=True, seed=2, cache_media=True)
    cached.preload_media()
    mirrored = set()
    for epoch in range(6):
        cached.set_epoch(epoch)
        from_cache = cached.__getitems__([2, 0, 1])
        dataset.set_epoch(epoch)
        fast, rows = dataset.__getitems__([2, 0, 1]), collate([dataset[i] for i in (2, 0, 1)])
        for column in ("front", "back"):
            assert torch.equal(fast.image[column], rows.image[column]), (epoch, column)
            assert torch.equal(from_cache.image[column], rows.image[column]), (epoch, column)
        draws = dataset._augment_draws(np.array([2, 0, 1]))  # (3, 2 x AUGMENT_DRAWS)
        mirrored |= {bool(f) for f in (draws[:, 3] < 0.5)} | {bool(f) for f in (draws[:, 7] < 0.5)}
        assert not np.array_equal(draws[:, :4], draws[:, 4:])  # the columns' own draws
    assert mirrored == {True, False}


def test_row_uniforms_depend_on_seed_epoch_and_row_only():
    rows = np.arange(1000)
    u = row_uniforms(3, 1, rows, 4)
    assert u.shape == (1000, 4) and u.min() >= 0.0 and u.max() < 1.0
    assert np.array_equal(u[[7, 2]], row_uniforms(3, 1, np.array([7, 2]), 4))  # batch-free
    assert np.array_equal(u[:, :2], row_uniforms(3, 1, rows, 2))
    for other in (row_uniforms(4, 1, rows, 4), row_uniforms(3, 2, rows, 4)):
        assert np.abs(u - other).mean() > 0.2  # a new seed or epoch: new numbers
    # Uniform enough for augmentation: every decile holds ~10 % of 4,000 draws, and
    # neighbouring rows and columns are uncorrelated.
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert counts.min() > 330 and counts.max() < 470
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.1
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.1


def test_the_loader_reads_whole_batches(every_modality, monkeypatch):
    df, transform = every_modality
    dataset = TableDataset(df, transform)
    monkeypatch.setattr(TableDataset, "__getitem__", lambda self, i: pytest.fail("row path"))
    loader = make_loader(dataset, batch_size=4, shuffle=True, seed=0)
    assert sorted(i for b in loader for i in b.index.tolist()) == list(range(6))
