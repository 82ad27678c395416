"""The cleaning report: each finding on a crafted table, the actions, and the outputs."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.data.cleaning import clean_report
from polymodal.data.readers import read_table
from polymodal.data.schema import infer_schema
from polymodal.errors import ConfigError, SchemaError


def _write_png(path, value: int) -> None:
    pixels = np.full((8, 8, 3), value, dtype=np.uint8)  # (H, W, C)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


@pytest.fixture
def messy(tmp_path) -> pd.DataFrame:
    """40 rows: a corrupt image, a missing image file, duplicates, a leaking column, imbalance."""
    rng = np.random.default_rng(0)
    n = 40
    for i in range(n):
        _write_png(tmp_path / f"img{i}.png", i * 5)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    label = np.array(["common"] * 36 + ["rare"] * 4)
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "image": [f"img{i}.png" for i in range(n)],
            "size": rng.normal(10, 2, n).round(2),
            "shade": rng.choice(["light", "dark"], n),
            "leak": np.where(label == "rare", "R", "C"),
            "const": "same",
            "blank": [None] * n,
            "label": label,
        }
    )
    df.loc[3, "image"] = "corrupt.png"
    df.loc[5, "image"] = "nowhere.png"
    df.loc[7, "image"] = None
    df.loc[9, "size"] = np.nan
    df.loc[11, "shade"] = None
    df.loc[21] = df.loc[20]  # an exact duplicate of row 20, id included
    df.loc[31] = df.loc[30].to_numpy()
    df.loc[31, "id"] = 31  # repeats row 30 except for the (ignored) id
    df.attrs["base_dir"] = str(tmp_path)
    return df


def test_report_on_crafted_table(messy):
    before = messy.copy()
    schema = infer_schema(messy, label="label")
    report = clean_report(messy, schema)
    pd.testing.assert_frame_equal(messy, before)  # never modifies the table

    image = report.columns["image"]
    assert image.files_checked == 39  # every present cell; row 7 is missing
    assert [p.row for p in image.file_problems] == [3, 5]
    assert "corrupt" in image.file_problems[0].reason or "identify" in image.file_problems[0].reason
    assert image.file_problems[1].reason.startswith("file not found:")
    assert (
        image.action
        == "image: 1 missing, 2 unreadable → marked absent (row keeps its other modalities)"
    )

    assert report.duplicate_rows == [21]
    assert report.duplicate_of == {21: 20}
    assert report.duplicate_rows_used_columns == [21, 31]

    assert [f.column for f in report.leakage] == ["leak"]
    assert report.leakage[0].score == 1.0
    assert (
        "100.0% accuracy" in report.leakage[0].message
        and "baseline 90.0%" in report.leakage[0].message
    )

    balance = report.class_balance
    assert balance.counts == {"common": 36, "rare": 4}
    assert balance.ratio == 9.0 and balance.imbalanced  # under 10x, but 'rare' has < 5 rows

    assert report.constant_columns == ["const"]
    assert report.id_like_columns == ["id"]
    assert report.all_missing_columns == ["blank"]
    assert report.columns["size"].action.startswith("numeric: 1 missing → filled with the median ")
    assert report.columns["size"].action.endswith(" + a missing indicator")
    assert report.columns["shade"].action == "categorical: 1 missing → explicit 'missing' category"


def test_issues_most_important_first(messy):
    report = clean_report(messy, infer_schema(messy, label="label"))
    kinds = [
        "likely leakage",
        "image column 'image': 2 of 39 checked cells do not decode (rows 3, 5)",
        "class imbalance in 'label'",
        "column 'blank' is empty",
        "1 duplicate row repeating",
        "1 more row repeating",
        "column 'const' is constant",
        "column 'id' is ID-like",
    ]
    positions = [
        next(i for i, issue in enumerate(report.issues) if kind in issue) for kind in kinds
    ]
    assert positions == sorted(positions)
    assert any(
        "column 'size' (numeric) is missing in 1 row (2%)" in issue for issue in report.issues
    )


def test_missing_label_comes_first(messy):
    messy.loc[0, "label"] = None
    report = clean_report(messy, infer_schema(messy, label="label"))
    assert report.label_missing == 1
    assert report.issues[0].startswith("label 'label' is missing in 1 of 40 rows")
    assert report.columns["label"].action.startswith("label: 1 missing → ")


def test_file_checks_can_be_limited_or_skipped(messy):
    schema = infer_schema(messy, label="label")
    limited = clean_report(messy, schema, max_file_checks=10)
    assert limited.columns["image"].files_checked == 10
    skipped = clean_report(messy, schema, check_files=False)
    assert skipped.columns["image"].files_checked == 0
    assert skipped.columns["image"].file_problems == []
    with pytest.raises(ConfigError, match="max_file_checks"):
        clean_report(messy, schema, max_file_checks=-1)


def test_regression_leakage_by_correlation():
    rng = np.random.default_rng(0)
    y = rng.normal(size=100)
    df = pd.DataFrame(
        {"y": y, "copy": y * 3 + 0.01 * rng.normal(size=100), "noise": rng.normal(size=100)}
    )
    report = clean_report(df, infer_schema(df, label="y"))
    assert [f.column for f in report.leakage] == ["copy"]
    assert report.leakage[0].metric == "abs_correlation" and report.leakage[0].score > 0.99
    assert report.class_balance is None


def test_binned_numeric_leak_but_no_false_alarm_on_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    df = pd.DataFrame(
        {
            "score": y * 10 + rng.random(200),  # continuous, separates the classes perfectly
            "noise": rng.random(200),
            "group": rng.choice(list("abcd"), 200),
            "y": y,
        }
    )
    report = clean_report(df, infer_schema(df, label="y"))
    assert [f.column for f in report.leakage] == ["score"]
    assert "binned into quantiles" in report.leakage[0].message
    assert report.class_balance is not None and not report.class_balance.imbalanced


def test_imbalance_by_ratio_and_multilabel_rare_tags():
    df = pd.DataFrame({"x": range(110), "y": ["a"] * 100 + ["b"] * 10})
    balance = clean_report(df, infer_schema(df, label="y")).class_balance
    assert balance.ratio == 10.0 and balance.imbalanced and "ratio ≥ 10x" in balance.message

    tags = pd.DataFrame({"x": np.arange(30) % 4, "y": ["a|b"] * 14 + ["a"] * 14 + ["a|c", "c"]})
    balance = clean_report(tags, infer_schema(tags, label="y")).class_balance
    assert balance.counts == {"a": 29, "b": 14, "c": 2}
    assert balance.imbalanced and "'c'" in balance.message


def test_actions_per_modality(tiny_table):
    df = read_table(tiny_table)
    df.loc[1, "caption"] = None
    df.loc[2, "tags"] = None
    df.loc[4, "date"] = None
    df.loc[6, "audio"] = "audio/nothing.wav"
    report = clean_report(df, infer_schema(df, label="label"))
    actions = {name: c.action for name, c in report.columns.items()}
    assert actions["caption"] == "text: 1 missing → empty string"
    assert actions["tags"] == "multilabel: 1 missing → no tags"
    assert actions["date"].startswith("datetime: 1 missing → filled with the median date 2024-")
    assert (
        actions["price"] == "numeric: 1 missing → filled with the median 9.99 + a missing indicator"
    )
    assert (
        actions["audio"] == "audio: 1 unreadable → marked absent (row keeps its other modalities)"
    )
    assert actions["image"] == "image: complete"
    assert actions["id"] == "ignored: not used by the models"
    assert report.columns["caption"].missing_fraction == pytest.approx(1 / 8)


def test_duplicates_with_unhashable_cells():
    arr = np.zeros((4, 4))
    df = pd.DataFrame(
        {"pixels": [arr, arr + 1, arr.copy()], "tags": [["a"], ["b"], ["a"]], "y": [1.0, 2.0, 1.0]}
    )
    df.loc[1, "y"] = np.nan
    schema = infer_schema(df)
    assert clean_report(df, schema).duplicate_of == {2: 0}


def test_outputs_serialise(messy):
    report = clean_report(messy, infer_schema(messy, label="label"))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["num_rows"] == 40
    assert [c["name"] for c in d["columns"]][:2] == ["id", "image"]
    assert d["duplicate_of"] == {"21": 20}
    md = report.to_markdown()
    for heading in (
        "## Issues",
        "## Columns",
        "## Unreadable image cells in 'image' (2 of 39 checked)",
        "## Duplicate rows",
        "## Likely leakage",
        "## Class balance",
    ):
        assert heading in md
    assert "| 3 | corrupt.png |" in md


def test_schema_from_another_table_is_refused(messy):
    schema = infer_schema(messy.drop(columns=["blank"]))
    schema.columns["extra"] = schema.columns["size"]
    with pytest.raises(SchemaError, match="'extra'"):
        clean_report(messy, schema)


def test_cells_read_differently_from_how_they_are_written_are_noticed():
    """A mostly numeric column read as categories, a numeric column's junk and infinities
    (read as missing) and an empty column are each one notice with a count and rows."""
    n = 40
    df = pd.DataFrame({
        "mostly": ["abc" if i % 5 == 0 else str(i) for i in range(n)],
        "num": [("?" if i == 7 else f"{i}.5") for i in range(n)],
        "big": [np.inf if i == 3 else float(i) for i in range(n)],
        "blank": [np.nan] * n,
        "label": ["ab"[i % 2] for i in range(n)],
    })
    schema = infer_schema(df, label="label")
    assert schema.modality("mostly") in ("categorical", "text")
    notices = clean_report(df, schema).notices()
    text = "\n".join(notices)
    assert "'mostly'" in text and "32 of 40" in text and "--column mostly=numeric" in text
    assert "'num'" in text and "1 of 40" in text and "rows 7" in text
    assert "'big'" in text and "infinite" in text and "rows 3" in text
    assert "'blank'" in text
    assert len(notices) == 4


def test_a_clean_table_has_no_notices():
    df = pd.DataFrame({"x": [float(i) for i in range(30)], "word": ["a b", "c d", "e f"] * 10,
                       "label": ["ab"[i % 2] for i in range(30)]})
    assert clean_report(df, infer_schema(df, label="label")).notices() == []


def test_audio_clips_that_decode_but_need_a_word(tmp_path):
    """Silent, clipped and over-long clips and mixed sample rates are each reported with
    their rows (they are used as they are, cut or resampled); clean clips are not."""
    import soundfile

    from polymodal.data.audio_checks import audio_notes, clip_stats

    (tmp_path / "clips").mkdir()
    t8, t16 = np.arange(8000) / 8000, np.arange(16000) / 16000
    waves = {
        "clean": (0.5 * np.sin(2 * np.pi * 440 * t8), 8000),
        "silent": (np.zeros(8000), 8000),
        "clipped": (np.clip(3 * np.sin(2 * np.pi * 440 * t8), -1, 1), 8000),
        "long": (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000 * 7) / 8000), 8000),
        "other_rate": (0.5 * np.sin(2 * np.pi * 440 * t16), 16000),
    }
    for name, (wave, rate) in waves.items():
        soundfile.write(tmp_path / "clips" / f"{name}.wav", wave.astype(np.float32), rate)
    # The grouping, read through the row lists each finding names (rows in order above).
    groups = []
    stats = [(row, clip_stats(*waves[name])) for row, name in enumerate(waves)]
    notes = audio_notes("clip", stats, lambda rows: groups.append(list(rows)) or "")
    assert groups == [[1], [2], [3]] and len(notes) == 4  # silent, clipped, long; the rates
    # End to end: the report's console notices carry them.
    df = pd.DataFrame({"clip": [f"clips/{n}.wav" for n in waves] * 2, "y": [0, 1] * 5})
    df.attrs["base_dir"] = str(tmp_path)
    report = clean_report(df, infer_schema(df, label="y"))
    assert sum("'clip'" in line for line in report.notices()) == 4


def test_values_spelled_two_ways_are_pointed_out_not_merged():
    n = 60
    df = pd.DataFrame({"size": (["small", "Small", "large"] * n)[:n],
                       "code": (["a1", "b2", "c3"] * n)[:n],
                       "y": (["Yes", "YES ", "No", "no"] * n)[:n]})
    schema = infer_schema(df, label="y")
    report = clean_report(df, schema)
    notes = [line for line in report.cell_notes if "spelled more than one way" in line]
    assert sorted(line.split("'")[1] for line in notes) == ["size", "y"]
    joined = " ".join(notes)
    assert "'Small' / 'small'" in joined and "'No' / 'no'" in joined and "'YES' / 'Yes'" in joined
    assert schema.problem_type == "multiclass"  # kept apart: not a yes/no label
