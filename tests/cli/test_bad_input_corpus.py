"""The bad-input corpus: tables, files, model folders and faults a user can throw at the
installed ``polymodal`` script, each with the exit status it must give and the words its
message must name (the column, file or parameter: the contract of a one-line error).

Every case checks three things: no traceback on stderr, the exit status, and the named
words on stderr. A case that exits 0 after skipping or reinterpreting something names it
too (a count, a row, the fix): nothing is read wrongly in silence.

The cheap cases run through the installed console script in one Python process, one after
another (each with its own stdout/stderr files), so that the seconds of importing torch are
paid once; the faults (kill -9, Ctrl-C, a full disk) each run the script in their own
process. Training is bounded by epochs and candidates (``--set``), never by seconds.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

EXE = Path(sys.executable).with_name("polymodal")
ENV = {**os.environ, "COLUMNS": "400", "PYTHONWARNINGS": "default"}
# One classic candidate, no network: a fit of a 30-row table takes well under a second.
CHEAP = ["--set", "candidates.neural=false", "--set", "candidates.classic=linear"]
ROWS = 30

pytestmark = pytest.mark.skipif(not EXE.exists(), reason="the polymodal script is not installed")


@dataclass(frozen=True)
class Case:
    """One bad input: the command's arguments (``{d}`` is the corpus folder), the exit
    status it must give, and the words stderr must contain."""

    id: str
    argv: tuple[str, ...]
    code: int
    names: tuple[str, ...]


def case(id: str, argv: str, code: int, *names: str, cheap: bool = False) -> Case:
    args = tuple(argv.split()) + (tuple(CHEAP) if cheap else ())
    return Case(id, args, code, names)


def fit(id: str, table: str, code: int, *names: str, label: str = "label",
        extra: str = "") -> Case:
    """``polymodal fit`` on ``table`` into a new folder, cheaply."""
    argv = f"fit {{d}}/{table} --label {label} --out {{d}}/out-{id} {extra}"
    return case(id, argv, code, *names, cheap=True)


def predict(id: str, model: str, table: str, code: int, *names: str) -> Case:
    return case(id, f"predict {{d}}/{model} {{d}}/{table} --out {{d}}/pred-{id}.csv", code, *names)


CASES = [
    # ------------------------------------------------------------------ tables
    fit("empty-file", "empty.csv", 2, "empty.csv", "empty"),
    fit("header-only", "header_only.csv", 2, "header_only.csv", "no rows"),
    fit("ragged-rows", "ragged.csv", 0, "ragged.csv", "ragged", "skipped", "row 5", "row 12"),
    fit("mostly-ragged", "mostly_ragged.csv", 2, "mostly_ragged.csv", "sep"),
    fit("semicolons", "semicolon.csv", 0, "separator", "';'"),
    fit("tabs-in-csv", "tabs.csv", 0, "separator"),
    fit("stray-quote-pair", "stray_quotes.csv", 0, "stray_quotes.csv", "skipped"),
    fit("unclosed-quote", "unclosed_quote.csv", 0, "unclosed_quote.csv", "row 30", "skipped"),
    fit("cp1252", "cp1252.csv", 0, "encoding", "cp1252"),
    fit("utf16-bom", "utf16.csv", 0, "UTF-16"),
    fit("utf8-bom", "bom.csv", 0),
    fit("trailing-empty-columns", "trailing.csv", 0, "trailing.csv", "columns 4, 5"),
    fit("repeated-header", "repeated_header.csv", 0, "repeated_header.csv", "rows 14"),
    case("predict-repeated-header", "predict {d}/model {d}/repeated_header.csv --out "
         "{d}/pred-rh.csv", 0, "repeated_header.csv", "rows 14"),
    fit("duplicate-columns", "dup_columns.csv", 2, "num"),
    fit("label-missing", "good.csv", 2, "nosuch", label="nosuch"),
    fit("label-all-nan", "label_all_nan.csv", 2, "label"),
    fit("label-one-class", "one_class.csv", 2, "label"),
    fit("label-some-nan", "label_some_nan.csv", 0, "4", "'label'"),
    fit("nan-and-inf", "nan_inf.csv", 0, "'num'", "infinite", "rows 5"),
    fit("megabyte-text-cell", "big_text.csv", 0),
    fit("broken-jsonl-line", "broken.jsonl", 0, "broken.jsonl", "line 7", "skipped"),
    fit("mostly-broken-jsonl", "mostly_broken.jsonl", 2, "mostly_broken.jsonl"),
    fit("json-not-records", "scalar.json", 2, "scalar.json"),
    fit("mostly-numbers-column", "mostly_numbers.csv", 0, "'y'", "--column y=numeric",
        "24 of 30", "6 are not"),
    fit("junk-in-numeric", "junk_numeric.csv", 0, "'num'", "1 of 30", "read as missing"),
    fit("empty-column", "empty_column.csv", 0, "'blank'", "empty"),
    fit("excel-file", "book.xlsx", 2, "book.xlsx", "CSV"),
    fit("truncated-gzip", "cut.csv.gz", 2, "cut.csv.gz"),
    fit("corrupt-parquet", "bad.parquet", 2, "bad.parquet", "Parquet"),
    fit("two-tables-in-folder", "two_tables", 2, "two_tables", "2 table files"),
    fit("table-is-fifo", "table_fifo.csv", 2, "table_fifo.csv", "FIFO"),
    case("table-is-dev-zero", "fit /dev/zero --label label --out {d}/out-zero", 2,
         "/dev/zero", "device"),
    fit("missing-table", "nope.csv", 2, "nope.csv", "not found"),
    case("url-table", "fit https://example.com/t.csv --label label --out {d}/out-url", 2,
         "https://example.com/t.csv", "download"),
    fit("only-an-id-column", "id_only.csv", 2, "'id'", "ID-like", "--column id=numeric"),
    fit("only-the-label-column", "label_only.csv", 2, "'label'"),
    fit("regression-label-inf", "label_inf.csv", 0, "'label'", "rows 3"),
    fit("classes-rarer-than-folds", "pairs.csv", 0),
    fit("label-unique-per-row", "unique_label.csv", 2, "'label'", "30 classes"),
    fit("seed-too-large", "good.csv", 2, "seed=99999999999999", "2147483647",
        extra="--seed 99999999999999"),
    fit("time-limit-nan", "good.csv", 2, "time_limit=nan", "> 0", extra="--time-limit nan"),
    fit("unknown-column-override", "good.csv", 2, "nosuch", extra="--column nosuch=numeric"),
    fit("unknown-modality", "good.csv", 2, "colour", extra="--column num=colour"),
    fit("unknown-recipe-key", "good.csv", 2, "network.widht", extra="--set network.widht=3"),
    case("inspect-ragged", "data inspect {d}/ragged.csv", 0, "ragged", "skipped"),
    # ------------------------------------------------------------------ files
    fit("images-all-missing", "img_missing/t.csv", 2, "'image'", "nowhere/0.png",
        "--column image=ignored"),
    fit("images-some-missing", "img_some/t.csv", 0, "'image'", "marked absent", "rows 0, 3"),
    fit("image-truncated", "img_cut/t.csv", 0, "'image'", "0.png", "truncated"),
    fit("image-not-an-image", "img_text/t.csv", 0, "'image'", "0.png", "not an image"),
    fit("image-decompression-bomb", "img_bomb/t.csv", 0, "'image'", "bomb"),
    fit("image-symlink", "img_link/t.csv", 0),
    fit("image-dotdot-path", "img_dotdot/t.csv", 0),
    fit("image-fifo", "img_fifo/t.csv", 0, "fifo.png", "FIFO"),
    fit("image-dev-zero", "img_zero/t.csv", 0, "/dev/zero", "character device"),
    fit("image-over-size-limit", "img_huge/t.csv", 0, "huge.png", "over the limit"),
    # One audio table with a clip of each kind: the bad ones named by row and file, the
    # rest of the table used.
    fit("audio-bad-clips", "aud/t.csv", 0, "'clip'", "rows 0, 1, 5", "0.wav",
        "not decodable audio", "1.wav", "empty clip", "5.mp4", "video file", "rows 2; first "
        "clips/2.wav", "longer than 5 s", "rows 3; first clips/3.wav", "8-bit",
        "rows 4; first clips/4.wav", "more than 2 channels"),
    case("generate-images-all-missing",
         "generate fit {d}/img_missing/t.csv --image image --set training.max_epochs=1 "
         "--out {d}/out-gmiss", 2, "'image'"),
    case("generate-image-column-not-images",
         "generate fit {d}/good.csv --image num --set training.max_epochs=1 --out {d}/out-gnum",
         2, "'num'"),
    # ------------------------------------------------------------------ model folders
    predict("model-missing", "no_model", "good.csv", 2, "no_model"),
    predict("model-plain-folder", "plain_folder", "good.csv", 2, "plain_folder"),
    predict("model-truncated-skops", "m_cut_skops", "good.csv", 2, "model.skops"),
    predict("model-config-not-json", "m_bad_config", "good.csv", 2, "config.json"),
    predict("model-config-edited", "m_edited_config", "good.csv", 2, "m_edited_config"),
    predict("model-format-version-edited", "m_version", "good.csv", 2, "format_version", "99"),
    predict("model-version-overwritten", "m_version_table", "good.csv", 2, "format_version"),
    predict("model-unfinished", "m_unfinished", "good.csv", 2, "format_version"),
    predict("model-schema-missing", "m_no_schema", "good.csv", 2, "schema.json"),
    predict("generator-given-to-predict", "gen", "img/t.csv", 2, "holds a generator",
            "polymodal generate sample"),
    case("predictor-given-to-sample", "generate sample {d}/model --out {d}/g.png", 2,
         "holds a predictor", "polymodal predict"),
    case("generator-truncated-weights", "generate sample {d}/g_cut --out {d}/g.png -n 2", 2,
         "g_cut"),
    case("generator-given-to-evaluate", "evaluate {d}/gen {d}/img/t.csv", 2, "generator"),
    case("serve-truncated-skops", "serve {d}/m_cut_skops --port 1", 2, "model.skops"),
    case("inspect-model-truncated", "inspect-model {d}/m_cut_skops", 2, "model.skops"),
    predict("table-lacks-trained-column", "model", "no_num.csv", 2, "'num'"),
    predict("numeric-column-became-text", "model", "num_as_text.csv", 2, "'num'", "n0",
            "not numbers"),
    predict("numeric-column-some-junk", "model", "junk_numeric.csv", 0, "'num'", "read as missing"),
    predict("predict-images-missing", "model_img", "img_some/t.csv", 0, "'image'",
            "2 of its 16 files are not found", "rows 0, 3"),
    predict("predict-ragged-rows", "model", "ragged.csv", 0, "ragged", "skipped"),
    predict("predict-extra-column", "model", "extra_column.csv", 0, "'extra'", "ignored"),
    case("evaluate-some-labels-missing",
         "evaluate {d}/model {d}/label_some_nan.csv --out {d}/rep-some", 0,
         "26 of 30 rows scored"),
    case("evaluate-without-label", "evaluate {d}/model {d}/no_label.csv --out {d}/rep", 2,
         "'label'"),
    case("predict-out-is-input", "predict {d}/model {d}/keep.csv --out {d}/keep.csv", 2,
         "keep.csv", "input table"),
    case("predict-out-is-xlsx", "predict {d}/model {d}/good.csv --out {d}/preds.xlsx", 2,
         "preds.xlsx", "preds.csv"),
    case("evaluate-out-is-file", "evaluate {d}/model {d}/good.csv --out {d}/keep.csv", 2,
         "keep.csv", "file exists", "new path"),
    case("predict-out-is-folder", "predict {d}/model {d}/good.csv --out {d}/plain_folder", 2,
         "plain_folder", "folder"),
    fit("fit-out-is-file", "good.csv", 2, "keep.csv", "is a file", extra="--out {d}/keep.csv"),
    fit("fit-out-user-folder", "good.csv", 2, "user_folder", "not a polymodal model folder",
        extra="--out {d}/user_folder"),
    case("generate-out-user-folder",
         "generate fit {d}/img/t.csv --image image --out {d}/user_folder", 2, "user_folder"),
    case("predict-out-in-model-folder",
         "predict {d}/model {d}/good.csv --out {d}/model/leaderboard.csv", 2,
         "leaderboard.csv", "model folder"),
    case("sample-bad-condition", "generate sample {d}/gen --condition nope --out {d}/g.png", 2,
         "--condition", "'nope'"),
]

# A fit whose --out is a file or a user's folder is refused before training.
BEFORE_TRAINING = {"fit-out-is-file", "fit-out-user-folder", "generate-out-user-folder"}
# Commands whose output is a report on stdout (the problem named there), not an error line.
REPORTS = {"inspect-ragged", "inspect-model-truncated", "evaluate-some-labels-missing"}


# ---------------------------------------------------------------------------- the corpus


def _csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _good(n: int = ROWS) -> pd.DataFrame:
    """Two informative columns and a binary label."""
    rng = np.random.default_rng(0)
    num = rng.normal(size=n).round(3)
    return pd.DataFrame({"num": num, "cat": [("x", "y", "z")[i % 3] for i in range(n)],
                         "label": np.where(num > 0, "a", "b")})


def _images(folder: Path, n: int = 16) -> pd.DataFrame:
    """``n`` 8x8 PNGs under folder/images and a table of them (with a label)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        pixels = np.zeros((8, 8, 3), dtype=np.uint8)  # (H, W, C)
        pixels[:] = (200, 40, 40) if i % 2 else (40, 40, 200)
        pixels[i % 8, (3 * i) % 8] = 255
        Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
        rows.append({"image": f"images/{i}.png", "num": float(i), "label": "ab"[i % 2]})
    return pd.DataFrame(rows)


def _image_table(root: Path, name: str, change) -> None:
    """A copy of the image table in root/name whose cells ``change(folder, frame)`` edits."""
    folder = root / name
    frame = _images(folder)
    change(folder, frame)
    _csv(folder / "t.csv", frame)


def _write_tables(d: Path) -> None:
    good = _good()
    _csv(d / "good.csv", good)
    _csv(d / "keep.csv", good)
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("num,cat,label\n")
    lines = good.to_csv(index=False).splitlines()
    ragged = list(lines)
    ragged[4] += ",extra"  # line 5
    ragged[11] = "1.0,x"  # line 12
    (d / "ragged.csv").write_text("\n".join(ragged) + "\n")
    (d / "mostly_ragged.csv").write_text(
        "num,cat,label\n" + "".join(f"{i};x;a\n" if i % 4 else f"{i},x,a\n" for i in range(ROWS)))
    (d / "semicolon.csv").write_text(good.to_csv(index=False, sep=";"))
    (d / "tabs.csv").write_text(good.to_csv(index=False, sep="\t"))
    stray = list(lines)
    stray[6] = '0.5,x"y,z"w,a'  # a quote pair around a separator, inside unquoted fields
    (d / "stray_quotes.csv").write_text("\n".join(stray) + "\n")
    unclosed = list(lines)
    unclosed[-2] = '0.5,"x,a'
    (d / "unclosed_quote.csv").write_text("\n".join(unclosed) + "\n")
    latin = good.copy()
    latin["cat"] = latin["cat"].str.replace("x", "café")
    (d / "cp1252.csv").write_bytes(latin.to_csv(index=False).encode("cp1252"))
    (d / "utf16.csv").write_bytes(latin.to_csv(index=False).encode("utf-16"))
    (d / "bom.csv").write_bytes(good.to_csv(index=False).encode("utf-8-sig"))
    # As a spreadsheet exports cells formatted past the table's last column: ",," each line.
    (d / "trailing.csv").write_text("".join(line + ",,\n" for line in lines))
    # Two exports joined with `cat`: the second's header line is row 14 of the data.
    (d / "repeated_header.csv").write_text("\n".join(lines[:15] + lines) + "\n")
    (d / "dup_columns.csv").write_text("num,num,label\n" + "".join(
        f"{i},{i},{'ab'[i % 2]}\n" for i in range(ROWS)))
    _csv(d / "id_only.csv", good[["label"]].assign(id=range(ROWS)))
    _csv(d / "label_only.csv", good[["label"]])
    regression = good.assign(label=good["num"] * 10)
    regression.loc[3, "label"] = np.inf
    _csv(d / "label_inf.csv", regression)
    # Two rows a class: fewer than the cross-validation's folds in every class.
    _csv(d / "pairs.csv", good.assign(label=[f"c{i // 2}" for i in range(ROWS)]))
    _csv(d / "unique_label.csv", good.assign(label=[f"user{i}" for i in range(ROWS)]))
    _csv(d / "label_all_nan.csv", good.assign(label=np.nan))
    _csv(d / "one_class.csv", good.assign(label="a"))
    _csv(d / "label_some_nan.csv", good.assign(label=good["label"].where(good.index % 7 != 3)))
    nan_inf = good.copy()
    nan_inf.loc[[2, 5], "num"] = [np.nan, np.inf]
    _csv(d / "nan_inf.csv", nan_inf)
    _csv(d / "big_text.csv", good.assign(note=["word " * 200_000 if i == 0 else f"note {i}"
                                               for i in range(ROWS)]))
    records = [json.dumps(r) for r in good.to_dict("records")]
    records[6] = records[6][:-5]  # line 7 cut short
    (d / "broken.jsonl").write_text("\n".join(records) + "\n")
    (d / "mostly_broken.jsonl").write_text("\n".join(r[:-3] for r in records) + "\n")
    (d / "scalar.json").write_text("42")
    _csv(d / "mostly_numbers.csv", good.assign(y=[("abc" if i % 5 == 0 else str(i))
                                                  for i in range(ROWS)]))
    junk = good.astype({"num": object})
    junk.loc[4, "num"] = "n/a?"
    _csv(d / "junk_numeric.csv", junk)
    _csv(d / "empty_column.csv", good.assign(blank=np.nan))
    (d / "book.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (d / "cut.csv.gz").write_bytes(gzip.compress(good.to_csv(index=False).encode())[:60])
    (d / "bad.parquet").write_bytes(b"PAR1" + b"\0" * 64)
    _csv(d / "two_tables" / "a.csv", good)
    _csv(d / "two_tables" / "b.csv", good)
    os.mkfifo(d / "table_fifo.csv")
    # Predict-time tables.
    _csv(d / "no_num.csv", good.drop(columns="num"))
    _csv(d / "num_as_text.csv", good.assign(num=[f"n{i}" for i in range(ROWS)]))
    _csv(d / "extra_column.csv", good.assign(extra=1))
    _csv(d / "no_label.csv", good.drop(columns="label"))
    (d / "plain_folder").mkdir()
    (d / "user_folder").mkdir()
    (d / "user_folder" / "thesis.txt").write_text("years of work")


def _write_files(d: Path) -> None:
    _image_table(d, "img", lambda folder, frame: None)

    def missing(folder, frame):
        frame["image"] = [f"nowhere/{i}.png" for i in range(len(frame))]
    _image_table(d, "img_missing", missing)

    def some(folder, frame):
        frame.loc[[0, 3], "image"] = ["gone/0.png", "gone/3.png"]
    _image_table(d, "img_some", some)

    def cut(folder, frame):
        data = (folder / "images" / "0.png").read_bytes()
        (folder / "images" / "0.png").write_bytes(data[: len(data) // 2])
    _image_table(d, "img_cut", cut)

    def text(folder, frame):
        (folder / "images" / "0.png").write_text("this is not an image")
    _image_table(d, "img_text", text)

    def bomb(folder, frame):
        # 9,000 x 9,000 one-bit pixels: a small file that decodes to 81 megapixels.
        Image.new("1", (9000, 9000)).save(folder / "images" / "0.png", optimize=True)
    _image_table(d, "img_bomb", bomb)

    def link(folder, frame):
        (folder / "images" / "linked.png").symlink_to(folder / "images" / "1.png")
        frame.loc[0, "image"] = "images/linked.png"
    _image_table(d, "img_link", link)

    def dotdot(folder, frame):
        frame.loc[0, "image"] = "../img/images/0.png"
    _image_table(d, "img_dotdot", dotdot)

    def fifo(folder, frame):
        os.mkfifo(folder / "fifo.png")
        frame.loc[0, "image"] = "fifo.png"
    _image_table(d, "img_fifo", fifo)

    def zero(folder, frame):
        frame.loc[0, "image"] = "/dev/zero"
    _image_table(d, "img_zero", zero)

    def huge(folder, frame):
        with open(folder / "huge.png", "wb") as handle:  # sparse: no disk is used
            handle.truncate(600 << 20)
        frame.loc[0, "image"] = "huge.png"
    _image_table(d, "img_huge", huge)


def _write_audio(d: Path) -> None:
    """d/aud/t.csv: 30 half-second tones, rows 0-5 bad in one way each: not audio, zero
    samples, ten minutes long, 8-bit, eight channels, and a video file."""
    import soundfile as sf

    folder = d / "aud" / "clips"
    folder.mkdir(parents=True)
    t = np.arange(8000) / 16000
    tone = {f: (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (300, 500)}
    rows = []
    for i in range(ROWS):
        sf.write(folder / f"{i}.wav", tone[300 + 200 * (i % 2)], 16000, subtype="PCM_16")
        rows.append({"clip": f"clips/{i}.wav", "label": "high" if i % 2 else "low"})
    (folder / "0.wav").write_text("not audio at all")
    sf.write(folder / "1.wav", np.zeros(0, dtype=np.float32), 16000)
    ten_minutes = np.random.default_rng(0).normal(0.0, 0.05, 600 * 8000).astype(np.float32)
    sf.write(folder / "2.wav", ten_minutes, 8000, subtype="PCM_16")
    sf.write(folder / "3.wav", tone[500], 16000, subtype="PCM_U8")
    sf.write(folder / "4.wav", np.tile(tone[300][:, None], (1, 8)), 16000, subtype="PCM_16")
    # An MP4 container's first box (what a phone's video starts with), then nothing usable.
    (folder / "5.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
                                   + bytes(2000))
    rows[5]["clip"] = "clips/5.mp4"
    _csv(d / "aud" / "t.csv", pd.DataFrame(rows))


def _fit_models(d: Path, table: Path, image_table: Path) -> None:
    """d/model, a predictor, and d/gen, a generator, each trained in a second."""
    from polymodal import Generator, Predictor

    Predictor("label", recipe={"candidates.neural": "false", "candidates.classic": "linear"},
              verbosity=0).fit(table).save(d / "model")
    Generator("image", ["label"], recipe={"training.max_epochs": "1"},
              verbosity=0).fit(image_table).save(d / "gen")


def _write_models(d: Path) -> None:
    """A predictor and a generator, a predictor with an image column, then damaged copies."""
    from polymodal import Predictor

    _fit_models(d, d / "good.csv", d / "img" / "t.csv")
    Predictor("label", recipe={"candidates.neural": "false", "candidates.classic": "linear"},
              verbosity=0).fit(d / "img" / "t.csv").save(d / "model_img")

    def damaged(name: str, source: str, change) -> None:
        shutil.copytree(d / source, d / name)
        change(d / name)

    def cut(path: Path) -> None:
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])

    damaged("m_cut_skops", "model", lambda p: cut(p / "models" / "linear" / "model.skops"))
    damaged("m_bad_config", "model", lambda p: (p / "config.json").write_text("{not json"))

    def edit_config(p: Path) -> None:
        config = json.loads((p / "config.json").read_text())
        config["params"]["no_such_parameter"] = 1
        (p / "config.json").write_text(json.dumps(config))
    damaged("m_edited_config", "model", edit_config)
    damaged("m_version", "model", lambda p: (p / "format_version").write_text("99\n"))
    damaged("m_version_table", "model",
            lambda p: shutil.copy(d / "big_text.csv", p / "format_version"))
    damaged("m_unfinished", "model", lambda p: (p / "format_version").unlink())
    damaged("m_no_schema", "model", lambda p: (p / "schema.json").unlink())
    damaged("g_cut", "gen", lambda p: cut(p / "weights.safetensors"))


# Runs each case's argv through the installed script, in this one process: stdout and
# stderr of case i go to OUT/i.out and OUT/i.err, its exit status to OUT/i.code.
_RUNNER = r"""
import json, os, runpy, sys, traceback, warnings
script, out = sys.argv[1], sys.argv[3]
with open(sys.argv[2]) as handle:
    cases = json.load(handle)
for i, argv in enumerate(cases):
    warnings.simplefilter("always", UserWarning)  # as in a fresh process: each shown
    sys.stdout.flush(); sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    for fd, suffix in ((1, "out"), (2, "err")):
        target = os.open(f"{out}/{i}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv, code = [script, *argv], 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(saved[0], 1); os.dup2(saved[1], 2)
    os.close(saved[0]); os.close(saved[1])
    with open(f"{out}/{i}.code", "w") as handle:
        handle.write(str(code))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, str, str]]]:
    """The corpus folder, and each case's (exit status, stdout, stderr)."""
    d = tmp_path_factory.mktemp("corpus")
    _write_tables(d)
    _write_files(d)
    _write_audio(d)
    _write_models(d)
    results_dir = d / "results"
    results_dir.mkdir()
    argvs = [[a.replace("{d}", str(d)) for a in c.argv] for c in CASES]
    (d / "cases.json").write_text(json.dumps(argvs))
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(EXE), str(d / "cases.json"),
                           str(results_dir)], capture_output=True, text=True, timeout=900,
                          env=ENV, cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {}
    for i, c in enumerate(CASES):
        code_file = results_dir / f"{i}.code"
        results[c.id] = (int(code_file.read_text()) if code_file.exists() else -1,
                         (results_dir / f"{i}.out").read_text(errors="replace"),
                         (results_dir / f"{i}.err").read_text(errors="replace"))
    return d, results


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(FAULTS) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(corpus, c: Case):
    d, results = corpus
    code, out, err = results[c.id]
    assert "Traceback" not in err, err[-2000:]
    assert code == c.code, f"exit {code}, expected {c.code}; stderr: {err[-1500:]}"
    shown = out + err if c.id in REPORTS else err
    for name in c.names:
        assert name.replace("{d}", str(d)) in shown, f"{name!r} not in stderr: {err[-1500:]}"
    if c.code == 2 and c.id not in REPORTS:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err  # one line says what is wrong
    if c.id in BEFORE_TRAINING:
        assert "chosen" not in err and "trained" not in err  # refused before any work
    if c.code == 0 and c.argv[0] == "fit":
        assert "chosen model" in out


def test_a_file_read_into_an_error_is_quoted_short(corpus):
    """A model's format_version overwritten with a megabyte table is quoted in a few
    words, not whole."""
    _, results = corpus
    _, _, err = results["model-version-overwritten"]
    assert len(err) < 1000, err[:300]


def test_nothing_the_corpus_refused_was_changed(corpus):
    d, _ = corpus
    assert (d / "user_folder" / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in (d / "user_folder").iterdir()) == ["thesis.txt"]
    assert pd.read_csv(d / "keep.csv").equals(pd.read_csv(d / "good.csv"))
    assert not (d / "out-fit-out-is-file").exists()
    assert not (d / "preds.xlsx").exists()
    assert (d / "model" / "leaderboard.csv").read_text().startswith("model,")


# ---------------------------------------------------------------------------- faults


def _wait_for(proc: subprocess.Popen, needle: str, limit_s: float = 300.0) -> str:
    """stderr of ``proc`` up to the line holding ``needle`` (the process keeps running)."""
    seen, start = "", time.monotonic()
    while time.monotonic() - start < limit_s:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    proc.kill()
    pytest.fail(f"{needle!r} never appeared on stderr: {seen[-2000:]}")


def _long_table(path: Path) -> None:
    """Enough rows that the network trains for many seconds at 10,000 epochs."""
    _csv(path, _good(400))


LONG_FIT = ["--set", "candidates.classic=linear", "--set", "training.max_epochs=10000",
            "--set", "training.early_stopping_patience=10000"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fault_dir(tmp_path_factory):
    """A table, a saved predictor and a saved generator for the faults to hit."""
    d = tmp_path_factory.mktemp("faults")
    _long_table(d / "long.csv")
    _csv(d / "good.csv", _good())
    _image_table(d, "img", lambda folder, frame: None)
    _fit_models(d, d / "good.csv", d / "img" / "t.csv")
    return d


def _kill_during_fit(fault_dir: Path, argv: list, needle: str, folder: Path) -> None:
    before = _files(folder)
    proc = subprocess.Popen([str(EXE), *map(str, argv)], stderr=subprocess.PIPE, text=True,
                            env=ENV)
    _wait_for(proc, needle)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert _files(folder) == before  # the previous model, byte for byte
    leftovers = [p for p in folder.parent.glob(f".{folder.name}.new-*")]
    assert not leftovers, leftovers


def test_kill_9_during_fit_leaves_the_previous_predictor(fault_dir):
    from polymodal import Predictor

    model = fault_dir / "model"
    _kill_during_fit(fault_dir, ["fit", fault_dir / "long.csv", "--label", "label", "--out",
                                 model, *LONG_FIT], "linear", model)
    assert pd.notna(Predictor.load(model).predict(fault_dir / "good.csv")).all()


def test_kill_9_during_generate_fit_leaves_the_previous_generator(fault_dir):
    from polymodal import Generator

    gen = fault_dir / "gen"
    _kill_during_fit(fault_dir, ["generate", "fit", fault_dir / "img" / "t.csv", "--image",
                                 "image", "--set", "training.max_epochs=100000", "--out", gen],
                     "conditions", gen)
    Generator.load(gen)
    # The killed run's training folder is removed by the next fit into the same place.
    proc = subprocess.run([str(EXE), "generate", "fit", str(fault_dir / "img" / "t.csv"),
                           "--image", "image", "--set", "training.max_epochs=1", "--out",
                           str(gen)], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not list(fault_dir.glob(".gen.*")), list(fault_dir.glob(".gen.*"))


def test_ctrl_c_during_fit_says_what_was_saved(fault_dir):
    model = fault_dir / "model"
    before = _files(model)
    # A shell's background job inherits SIGINT ignored, and so would this child: restore
    # the default so that Ctrl-C reaches it as it would at a terminal.
    proc = subprocess.Popen([str(EXE), "fit", str(fault_dir / "long.csv"), "--label", "label",
                             "--out", str(model), *LONG_FIT], stderr=subprocess.PIPE,
                            text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(proc, "linear")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in rest
    assert "interrupted" in rest and "nothing was saved" in rest and str(model) in rest
    assert _files(model) == before


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "full"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True)
    if proc.returncode != 0:
        pytest.skip("mounting a tmpfs needs root; test_full_disk_in_process covers the API")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_one_line_and_leaves_nothing(fault_dir, full_disk):
    with open(full_disk / "filler", "wb", buffering=0) as handle:  # fill it to the last block
        try:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        except OSError:
            pass
    fit_ = subprocess.run([str(EXE), "fit", str(fault_dir / "good.csv"), "--label", "label",
                           "--out", str(full_disk / "model"),
                           "--set", "candidates.neural=false",
                           "--set", "candidates.classic=random_forest"],
                          capture_output=True, text=True, env=ENV, timeout=600)
    pred = subprocess.run([str(EXE), "predict", str(fault_dir / "model"),
                           str(fault_dir / "long.csv"), "--out", str(full_disk / "p.csv")],
                          capture_output=True, text=True, env=ENV, timeout=600)
    for proc, name in ((fit_, "model"), (pred, "p.csv")):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no space left" in errors[0]
        assert str(full_disk / name) in errors[0]
    assert "--out" in fit_.stderr  # where to retry
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # nothing half-written


def test_full_disk_in_process_keeps_the_model(fault_dir, tmp_path, monkeypatch):
    """The API: a full disk raises DiskFullError; the fitted model stays usable and saves
    elsewhere once there is room."""
    import errno

    import polymodal.files
    from polymodal import Predictor
    from polymodal.errors import DiskFullError

    predictor = Predictor.load(fault_dir / "model")
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(polymodal.files.os, "replace", full)
    with pytest.raises(DiskFullError, match="still in memory"):
        predictor.save(tmp_path / "m")
    assert not list(tmp_path.iterdir())  # no half-written folder, no staging folder
    monkeypatch.setattr(polymodal.files.os, "replace", real_replace)
    predictor.save(tmp_path / "m")
    assert pd.notna(Predictor.load(tmp_path / "m").predict(fault_dir / "good.csv")).all()


FAULTS = [test_kill_9_during_fit_leaves_the_previous_predictor,
          test_kill_9_during_generate_fit_leaves_the_previous_generator,
          test_ctrl_c_during_fit_says_what_was_saved,
          test_full_disk_is_one_line_and_leaves_nothing,
          test_full_disk_in_process_keeps_the_model]
