"""Hugging Face formats, each built by the real ``datasets`` library and read back cell by cell.

Everything is offline: datasets are built from in-memory dicts and PIL images, and the
library's cache goes to the test's temporary folder.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
datasets = pytest.importorskip("datasets")

from polymodal.data.media import load_audio, load_image  # noqa: E402
from polymodal.data.readers import read_table  # noqa: E402
from polymodal.data.schema import infer_schema  # noqa: E402
from polymodal.errors import DataError  # noqa: E402

NUM_ROWS = 6
CLASSES = ["cat", "dog", "fox"]


def _pixels(i: int) -> np.ndarray:
    """A distinct 5x4 RGB image per row, (H, W, C)."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


def _wav_bytes(i: int, rate_hz: int = 8000) -> bytes:
    wave = 0.25 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(400) / rate_hz)
    buffer = io.BytesIO()
    soundfile.write(buffer, wave.astype(np.float32), rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    datasets.disable_progress_bars()


def _dataset():
    """Image, ClassLabel (one row unlabelled: -1), a list of ClassLabel, text, audio."""
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=CLASSES),
        "tags": datasets.Sequence(datasets.ClassLabel(names=["small", "large"])),
        "caption": datasets.Value("string"),
    })
    ds = datasets.Dataset.from_dict(
        {
            "image": [Image.fromarray(_pixels(i)) for i in range(NUM_ROWS)],
            "label": [0, 1, 2, 0, -1, 1],
            "tags": [[0], [1], [0, 1], [], [1], [0]],
            "caption": [f"caption {i}" for i in range(NUM_ROWS - 1)] + [None],
        },
        features=features,
    )
    # Encoding audio needs torchcodec; a {bytes, path} column cast to Audio does not.
    audio = [{"bytes": _wav_bytes(i), "path": f"clip_{i}.wav"} for i in range(NUM_ROWS)]
    return ds.add_column("audio", audio).cast_column(
        "audio", datasets.Audio(sampling_rate=8000, decode=False)
    )


def _check_cells(df: pd.DataFrame, rows=range(NUM_ROWS)) -> None:
    rows = list(rows)
    assert len(df) == len(rows)
    labels = [["cat", "dog", "fox", "cat", None, "dog"][i] for i in rows]
    tags = [[["small"], ["large"], ["small", "large"], [], ["large"], ["small"]][i] for i in rows]
    for position, i in enumerate(rows):
        np.testing.assert_array_equal(np.asarray(load_image(df["image"].iloc[position])), _pixels(i))
        wave, rate_hz = load_audio(df["audio"].iloc[position])
        expected, _ = soundfile.read(io.BytesIO(_wav_bytes(i)), dtype="float32")
        assert rate_hz == 8000
        np.testing.assert_allclose(wave, expected)
        assert df["label"].iloc[position] == labels[position]
        assert list(df["tags"].iloc[position]) == tags[position]
        expected_caption = f"caption {i}" if i < NUM_ROWS - 1 else None
        assert (df["caption"].iloc[position] if expected_caption else None) == expected_caption
    assert list(df.columns) == ["image", "label", "tags", "caption", "audio"]


def test_parquet_written_by_datasets(tmp_path):
    _dataset().to_parquet(tmp_path / "t.parquet")
    df = read_table(tmp_path / "t.parquet")
    _check_cells(df)
    assert pd.isna(df["caption"].iloc[-1])
    schema = infer_schema(df, label="label")
    assert schema.modality("image") == "image" and schema.modality("audio") == "audio"
    assert schema.modality("tags") == "multilabel" and schema.problem_type == "multiclass"
    assert set(df.attrs["column_notes"]) == {"image", "label", "tags", "audio"}


def test_dataset_saved_to_disk(tmp_path):
    _dataset().save_to_disk(str(tmp_path / "saved"))
    _check_cells(read_table(tmp_path / "saved"))


def test_dataset_dict_saved_to_disk_reads_train_or_the_split_asked(tmp_path):
    ds = _dataset()
    datasets.DatasetDict(train=ds.select([0, 1, 2, 3]), test=ds.select([4, 5])).save_to_disk(
        str(tmp_path / "dd")
    )
    _check_cells(read_table(tmp_path / "dd"), rows=[0, 1, 2, 3])
    _check_cells(read_table(tmp_path / "dd", split="test"), rows=[4, 5])


def test_dataset_object_is_accepted_like_a_dataframe():
    ds = _dataset()
    _check_cells(read_table(ds))
    # select/shuffle keep an indices mapping over the same Arrow table: it is honoured.
    _check_cells(read_table(ds.select([5, 2, 0])), rows=[5, 2, 0])
    _check_cells(read_table(datasets.DatasetDict(train=ds, test=ds.select([1])), split="test"),
                 rows=[1])


def test_struct_with_neither_bytes_nor_path_is_noted_by_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # datasets refuses to write such a struct, so one is damaged after writing.
    _dataset().to_parquet(tmp_path / "written.parquet")
    table = pq.read_table(tmp_path / "written.parquet")
    images = table.column("image").to_pylist()
    images[3] = {"bytes": None, "path": None}
    position = table.column_names.index("image")
    damaged = table.set_column(position, table.field(position),
                               pa.array(images, type=table.schema.field("image").type))
    pq.write_table(damaged, tmp_path / "t.parquet")
    df = read_table(tmp_path / "t.parquet")
    assert df["image"].isna().tolist() == [False, False, False, True, False, False]
    _check_cells(df.drop(index=3), rows=[0, 1, 2, 4, 5])  # nothing else lost
    (note,) = [n for n in df.attrs["read_notes"] if "neither bytes nor" in n]
    assert "t.parquet row 4" in note and "\n" not in note


def _image_folder_split(folder, rows, *, metadata: str):
    folder.mkdir(parents=True)
    records = []
    for i in rows:
        name = f"img_{i}.png"
        Image.fromarray(_pixels(i)).save(folder / name)
        records.append({"file_name": name, "label": CLASSES[i % 3], "caption": f"a picture {i}"})
    frame = pd.DataFrame(records)
    if metadata == "csv":
        frame.to_csv(folder / "metadata.csv", index=False)
    else:
        frame.to_json(folder / "metadata.jsonl", orient="records", lines=True)


@pytest.mark.parametrize("metadata", ["csv", "jsonl"])
def test_imagefolder_with_metadata_matches_datasets_cell_by_cell(tmp_path, metadata):
    root = tmp_path / "pets"
    _image_folder_split(root / "train", range(4), metadata=metadata)
    _image_folder_split(root / "test", range(4, 6), metadata=metadata)
    reference = datasets.load_dataset(
        "imagefolder", data_dir=str(root), cache_dir=str(tmp_path / "hf-cache")
    )
    for split, df in (("train", read_table(root)), ("test", read_table(root, split="test"))):
        expected = reference[split]
        assert len(df) == len(expected)
        assert set(df["label"]) <= set(CLASSES)  # not classes named train/test
        for position, row in enumerate(expected):
            np.testing.assert_array_equal(
                np.asarray(load_image(df["image"].iloc[position], df.attrs["base_dir"])),
                np.asarray(row["image"].convert("RGB")),
            )
            assert df["label"].iloc[position] == row["label"]
            assert df["caption"].iloc[position] == row["caption"]
    schema = infer_schema(read_table(root), label="label")
    assert schema.modality("image") == "image"
    assert "metadata" in read_table(root).attrs["column_notes"]["image"]


def test_audiofolder_with_metadata(tmp_path):
    folder = tmp_path / "sounds"
    folder.mkdir()
    for i in range(3):
        (folder / f"clip_{i}.wav").write_bytes(_wav_bytes(i))
    pd.DataFrame({"file_name": [f"clip_{i}.wav" for i in range(3)], "speaker": ["a", "b", "a"]}
                 ).to_csv(folder / "metadata.csv", index=False)
    df = read_table(folder)
    assert list(df.columns) == ["audio", "speaker"]
    for i in range(3):
        wave, rate_hz = load_audio(df["audio"].iloc[i], df.attrs["base_dir"])
        expected, _ = soundfile.read(io.BytesIO(_wav_bytes(i)), dtype="float32")
        assert rate_hz == 8000
        np.testing.assert_allclose(wave, expected)


def test_metadata_naming_missing_images_keeps_the_rows(tmp_path):
    folder = tmp_path / "train"
    _image_folder_split(folder, range(4), metadata="csv")
    (folder / "img_2.png").unlink()
    df = read_table(folder)
    assert len(df) == 4 and df["image"].isna().tolist() == [False, False, True, False]
    assert df["caption"].tolist() == [f"a picture {i}" for i in range(4)]
    (note,) = [n for n in df.attrs["read_notes"] if "img_2.png" in n]
    assert "metadata.csv" in note and "row 3" in note and "\n" not in note


def test_metadata_without_file_name_is_an_error(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    pd.DataFrame({"name": ["x.png"]}).to_csv(folder / "metadata.csv", index=False)
    with pytest.raises(DataError, match="file_name") as err:
        read_table(folder)
    assert str(folder / "metadata.csv") in str(err.value)
