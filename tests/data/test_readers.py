"""Tests for polymodal.data.readers: every accepted source, and every bad input."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.data.idx_reader import read_idx
from polymodal.data.media import load_audio, load_image
from polymodal.data.readers import SUPPORTED_EXTENSIONS, read_table
from polymodal.errors import DataError

# The tiny_table fixture's documented columns (tests/conftest.py).
TINY_TABLE_COLUMNS = ["id", "image", "caption", "audio", "price", "color", "tags", "date", "label"]


def _write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _write_idx(path: Path, array: np.ndarray, type_byte: int) -> Path:
    """An IDX file by hand: magic (00 00 type ndim), big-endian sizes, big-endian data."""
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


# --- each reader ------------------------------------------------------------------------


def test_csv_tiny_table_reads_every_column_and_resolves_media(tiny_table):
    df = read_table(tiny_table)
    assert list(df.columns) == TINY_TABLE_COLUMNS
    assert len(df) == 8
    assert df.attrs["base_dir"] == str(tiny_table.parent)
    assert df.attrs["source"] == str(tiny_table)
    assert df.attrs["read_notes"] == []
    assert df["price"].isna().sum() == 1
    assert set(df["label"]) == {"yes", "no"}
    image = load_image(df["image"].iloc[3], df.attrs["base_dir"])
    assert image.size == (8, 8) and image.mode == "RGB"
    wave, rate_hz = load_audio(df["audio"].iloc[0], df.attrs["base_dir"])
    assert rate_hz == 8000 and wave.shape == (800,)


def test_coded_fixture_holds_integer_classes(tiny_table_coded):
    df = read_table(tiny_table_coded)
    assert list(df.columns) == TINY_TABLE_COLUMNS
    assert set(df["color"]) == {0, 1, 2} and set(df["label"]) == {0, 1}


def test_absolute_and_relative_image_paths_resolve_via_base_dir(tmp_path, tiny_table):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    absolute = str(tiny_table.parent / "images" / "img_0.png")
    _write_text(elsewhere / "t.csv", f"image,y\n{absolute},1\nimg_1.png,0\n")
    df = read_table(elsewhere / "t.csv", base_dir=tiny_table.parent / "images")
    assert df.attrs["base_dir"] == str(tiny_table.parent / "images")
    for cell in df["image"]:
        assert load_image(cell, df.attrs["base_dir"]).size == (8, 8)
    # Without base_dir the relative path resolves against the table's own folder, where it is not.
    df = read_table(elsewhere / "t.csv")
    assert df.attrs["base_dir"] == str(elsewhere)
    assert load_image(df["image"].iloc[0], df.attrs["base_dir"]).size == (8, 8)
    with pytest.raises(DataError, match="not found"):
        load_image(df["image"].iloc[1], df.attrs["base_dir"])


@pytest.mark.parametrize("name", ["t.tsv", "t.tab", "t.txt"])
def test_tab_separated_by_extension_or_sniffed(tmp_path, name):
    df = read_table(_write_text(tmp_path / name, "a\tb, with comma\n1\tx, y\n2\tz\n"))
    assert list(df.columns) == ["a", "b, with comma"]
    assert df["b, with comma"].tolist() == ["x, y", "z"]


def test_semicolon_csv_is_sniffed_and_noted(tmp_path):
    df = read_table(_write_text(tmp_path / "t.csv", "a;b;c\n1;2,5;x\n3;4,5;y\n"))
    assert list(df.columns) == ["a", "b", "c"]
    # Beside ';', "2,5" is a decimal comma (Excel's European CSV), and the read says so.
    assert df["b"].tolist() == [2.5, 4.5]
    assert any("';'" in note and "sniffed" in note for note in df.attrs["read_notes"])
    assert any("decimal point" in note for note in df.attrs["read_notes"])


def test_decimal_comma_only_with_evidence(tmp_path):
    # Commas that can only group thousands, or a ',' separator: numbers read as before.
    df = read_table(_write_text(tmp_path / "t.csv", "a;b\n1;1,234\n3;12,500\n"))
    assert df["b"].tolist() == ["1,234", "12,500"]
    assert not any("decimal point" in note for note in df.attrs["read_notes"])
    df = read_table(_write_text(tmp_path / "u.csv", 'a,b\n1,"2,5"\n3,"4,5"\n'))
    assert df["b"].tolist() == ["2,5", "4,5"]


def test_explicit_sep_wins(tmp_path):
    df = read_table(_write_text(tmp_path / "t.csv", "a|b\n1|2\n"), sep="|")
    assert df.to_dict("list") == {"a": [1], "b": [2]}


def test_gzipped_csv_and_jsonl(tmp_path):
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"a,b\n1,x\n2,y\n"))
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert read_table(tmp_path / "t.csv.gz")["b"].tolist() == ["x", "y"]
    assert read_table(tmp_path / "t.jsonl.gz")["a"].tolist() == [1, 2]


def test_parquet_round_trip(tmp_path):
    original = pd.DataFrame({"x": [1.5, 2.5], "name": ["a", "b"]})
    original.to_parquet(tmp_path / "t.parquet")
    df = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(df, original, check_dtype=False)
    assert df.attrs["base_dir"] == str(tmp_path)


def test_parquet_index_written_by_pandas_is_a_column(tmp_path):
    """df.set_index("id").to_parquet(): the id comes back as a column (first, as pandas
    writes it), not dropped with the index; a row-position index is dropped."""
    original = pd.DataFrame({"id": ["u7", "u3", "u9"], "x": [1.5, 2.5, 3.5]})
    original.set_index("id").to_parquet(tmp_path / "named.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "named.parquet"), original)
    original.iloc[1:].to_parquet(tmp_path / "sliced.parquet")
    df = read_table(tmp_path / "sliced.parquet")
    assert list(df.columns) == ["id", "x"] and list(df.index) == [0, 1]


def test_jsonl_and_ndjson(tmp_path):
    text = '{"a": 1, "b": "x"}\n\n{"a": 2, "b": "y", "c": true}\n'
    for name in ("t.jsonl", "t.ndjson"):
        df = read_table(_write_text(tmp_path / name, text))
        assert list(df.columns) == ["a", "b", "c"]
        assert df["a"].tolist() == [1, 2]


def test_json_list_of_records_and_jsonl_named_json(tmp_path):
    df = read_table(_write_text(tmp_path / "t.json", '[{"a": 1}, {"a": 2, "b": "z"}]'))
    assert df["a"].tolist() == [1, 2] and list(df.columns) == ["a", "b"]
    df = read_table(_write_text(tmp_path / "lines.json", '{"a": 1}\n{"a": 2}\n'))
    assert df["a"].tolist() == [1, 2]
    assert any("JSON Lines" in note for note in df.attrs["read_notes"])


def test_dataframe_is_copied_with_attrs(tmp_path):
    original = pd.DataFrame({" a ": [1, 2], "b": ["x", "y"]})
    df = read_table(original)
    assert list(df.columns) == ["a", "b"]
    assert list(original.columns) == [" a ", "b"]  # the caller's frame is untouched
    df.loc[0, "b"] = "changed"
    assert original.loc[0, "b"] == "x"
    assert df.attrs["base_dir"] == os.getcwd()
    assert df.attrs["source"] == "DataFrame"
    assert read_table(original, base_dir=tmp_path).attrs["base_dir"] == str(tmp_path)
    # A frame read before keeps the folder its paths are relative to.
    assert read_table(read_table(original, base_dir=tmp_path)).attrs["base_dir"] == str(tmp_path)


def _make_image_folder(root: Path) -> Path:
    for label, count in (("dog", 2), ("cat", 3)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (4, 5), color=40 * i).save(root / label / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.new("L", (4, 5)).save(root / ".hidden" / "x.png")
    return root


def test_image_folder_gives_sorted_image_and_label(tmp_path):
    root = _make_image_folder(tmp_path / "pets")
    df = read_table(root)
    assert df["image"].tolist() == ["cat/0.png", "cat/1.png", "cat/2.png", "dog/0.png", "dog/1.png"]
    assert df["label"].tolist() == ["cat"] * 3 + ["dog"] * 2
    assert df.attrs["base_dir"] == str(root)
    assert load_image(df["image"].iloc[4], df.attrs["base_dir"]).size == (4, 5)
    assert any("non-image" in note and "cat/notes.txt" in note for note in df.attrs["read_notes"])


def test_image_folder_with_other_base_dir_keeps_paths_resolvable(tmp_path):
    root = _make_image_folder(tmp_path / "pets")
    df = read_table(root, base_dir=tmp_path)
    assert df["image"].iloc[0] == "pets/cat/0.png"
    assert load_image(df["image"].iloc[0], df.attrs["base_dir"]).size == (4, 5)


def test_folder_with_one_table_reads_it(tiny_table):
    df = read_table(tiny_table.parent)
    assert list(df.columns) == TINY_TABLE_COLUMNS
    assert df.attrs["source"] == str(tiny_table)
    assert load_image(df["image"].iloc[0], df.attrs["base_dir"]).size == (8, 8)


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_images_with_labels_beside(tmp_path, gzipped):
    suffix = ".gz" if gzipped else ""
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)  # (N, H, W)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, 0x08)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, 0x08)
    np.testing.assert_array_equal(read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), images)
    df = read_table(tmp_path / f"t10k-images-idx3-ubyte{suffix}")
    assert list(df.columns) == ["image", "label"]
    assert df["label"].dtype == np.int64 and df["label"].tolist() == [7, 0, 9]
    assert df["image"].iloc[1].dtype == np.uint8 and df["image"].iloc[1].shape == (4, 5)
    np.testing.assert_array_equal(df["image"].iloc[2], images[2])
    assert load_image(df["image"].iloc[0]).size == (5, 4)


def test_idx_images_without_labels_file(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 3, 3), np.uint8), 0x08)
    df = read_table(tmp_path / "train-images-idx3-ubyte")
    assert list(df.columns) == ["image"]
    assert any("no labels file" in note for note in df.attrs["read_notes"])


@pytest.mark.parametrize(
    ("type_byte", "dtype"),
    [
        (0x08, np.uint8),
        (0x09, np.int8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ],
)
def test_read_idx_every_dtype_big_endian(tmp_path, type_byte, dtype):
    values = np.array([[0, 1, -2 if np.dtype(dtype).kind != "u" else 2], [100, 3, 5]], dtype=dtype)
    array = read_idx(_write_idx(tmp_path / "x.idx", values, type_byte))
    assert array.dtype == np.dtype(dtype) and array.dtype.isnative
    np.testing.assert_array_equal(array, values)


# --- bad input --------------------------------------------------------------------------


def test_missing_file_names_absolute_path_and_suggests_neighbour(tmp_path):
    _write_text(tmp_path / "train.csv", "a\n1\n")
    with pytest.raises(DataError) as err:
        read_table(tmp_path / "trian.csv")
    assert str(tmp_path / "trian.csv") in str(err.value)
    assert f"did you mean {tmp_path / 'train.csv'}" in str(err.value)


def test_unsupported_extension_lists_supported(tmp_path):
    path = _write_text(tmp_path / "sheet.xlsx", "not really")
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert str(path) in message and "save the sheet as CSV" in message
    assert all(ext in message for ext in SUPPORTED_EXTENSIONS)


def test_ragged_rows_are_skipped_and_noted_by_line_number(tmp_path):
    text = "a,b,c,d\n" + "".join(f"{i},{i},{i},{i}\n" for i in range(20))
    lines = text.splitlines()
    lines[5] = "5,5,5,5,5"  # line 6 (1-based): one field too many
    lines[9] = "9,9"  # line 10: too few
    lines[12] = "12,12,12,12,12"  # line 13
    df = read_table(_write_text(tmp_path / "t.csv", "\n".join(lines) + "\n"))
    assert len(df) == 17 and 4 not in df["a"].tolist() and 8 not in df["a"].tolist()
    notes = df.attrs["read_notes"]
    assert "rows 6, 13 (line numbers): ragged, 5 fields where the header has 4 — skipped" in notes
    assert "row 10 (line numbers): ragged, 2 fields where the header has 4 — skipped" in notes


def test_multiline_quoted_cells_keep_line_numbers_right(tmp_path):
    text = 'a,b\n1,"two\nlines"\n2,x,extra\n3,y\n'
    df = read_table(_write_text(tmp_path / "t.csv", text))
    assert df["b"].tolist() == ["two\nlines", "y"]
    assert df.attrs["read_notes"] == [
        "row 4 (line numbers): ragged, 3 fields where the header has 2 — skipped"
    ]


def test_file_cut_mid_quote_skips_the_last_row_with_a_note(tmp_path):
    text = 'a,b\n1,x\n2,y\n3,"cut off in the mid'
    df = read_table(_write_text(tmp_path / "t.csv", text))
    assert df["a"].tolist() == [1, 2]
    assert any("line 4" in note and "never closed" in note for note in df.attrs["read_notes"])


def test_stray_quote_swallowing_most_of_the_file_is_an_error(tmp_path):
    text = 'a,b\n1,x\n2,"oops\n' + "".join(f"{i},y\n" for i in range(3, 10))
    path = _write_text(tmp_path / "t.csv", text)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (
        str(path) in str(err.value)
        and "line 3" in str(err.value)
        and "close the quote" in str(err.value)
    )


def test_cells_longer_than_the_csv_module_default_limit(tmp_path):
    long_text = "word " * 40_000  # 200 kB, over the csv module's 128 KiB field limit
    df = read_table(_write_text(tmp_path / "t.csv", f'id,text\n1,"{long_text}"\n2,short\n'))
    assert df["text"].tolist() == [long_text, "short"]


def test_mostly_ragged_file_is_an_error_suggesting_sep(tmp_path):
    path = _write_text(tmp_path / "t.csv", "a,b\n1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value) and "sep=" in str(err.value) and "line 2" in str(err.value)


def test_unclosed_quote_in_header_is_an_error(tmp_path):
    path = _write_text(tmp_path / "t.csv", 'a,"b\n1,2\n')
    with pytest.raises(DataError, match="never closed") as err:
        read_table(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("encoding", "expected"), [("cp1252", "cp1252"), ("latin-1", "latin-1")])
def test_non_utf8_text_falls_back_and_says_so(tmp_path, encoding, expected):
    # "\x81" is undefined in cp1252, so only latin-1 can read the second file.
    name = "café €5" if encoding == "cp1252" else "café \x81"
    df = read_table(_write_text(tmp_path / "t.csv", f"name,n\n{name},1\n", encoding=encoding))
    assert df["name"].tolist() == [name]
    note = next(n for n in df.attrs["read_notes"] if n.startswith("encoding"))
    assert f"read as {expected}" in note and "not valid UTF-8" in note and "line 2" in note


def test_explicit_encoding_is_used_or_reported(tmp_path):
    path = _write_text(tmp_path / "t.csv", "name\ncafé\n", encoding="cp1252")
    assert read_table(path, encoding="cp1252")["name"].tolist() == ["café"]
    with pytest.raises(DataError) as err:
        read_table(path, encoding="utf-8")
    assert str(path) in str(err.value) and "omit encoding=" in str(err.value)


def test_utf8_bom_and_utf16_excel_export(tmp_path):
    path = _write_text(tmp_path / "bom.csv", "\ufeffa,b\n1,2\n")
    assert list(read_table(path).columns) == ["a", "b"]
    assert list(read_table(path, encoding="utf-8").columns) == ["a", "b"]
    df = read_table(_write_text(tmp_path / "excel.txt", "\ufeffa\tb\n1\t2\n", encoding="utf-16-le"))
    assert list(df.columns) == ["a", "b"] and df["b"].tolist() == [2]


@pytest.mark.parametrize(
    ("content", "what"), [("", "no content"), ("  \n\n", "no content"), ("a,b\n", "no rows")]
)
def test_empty_table_is_an_error(tmp_path, content, what):
    path = _write_text(tmp_path / "t.csv", content)
    with pytest.raises(DataError, match="empty table") as err:
        read_table(path)
    assert str(path) in str(err.value) and what in str(err.value)


def test_empty_dataframe_and_jsonl_are_errors(tmp_path):
    with pytest.raises(DataError, match="empty table"):
        read_table(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="empty table"):
        read_table(_write_text(tmp_path / "t.jsonl", "\n\n"))


def test_duplicate_column_names_are_named(tmp_path):
    path = _write_text(tmp_path / "t.csv", "a, b ,b,c\n1,2,3,4\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (
        str(path) in str(err.value)
        and "'b' (2 times)" in str(err.value)
        and "rename" in str(err.value)
    )
    with pytest.raises(DataError, match="'x' "):
        read_table(pd.DataFrame([[1, 2]], columns=["x", " x"]))


def test_corrupt_parquet_is_an_error(tmp_path):
    pd.DataFrame({"a": range(100)}).to_parquet(tmp_path / "t.parquet")
    raw = (tmp_path / "t.parquet").read_bytes()
    path = tmp_path / "cut.parquet"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value) and "not a valid Parquet file" in str(err.value)


def test_invalid_jsonl_lines_are_skipped_and_noted(tmp_path):
    text = '{"a": 1}\n{"a": 2,\n[1, 2]\n{"a": 4}\n{"a": 5}\n'
    df = read_table(_write_text(tmp_path / "t.jsonl", text))
    assert df["a"].tolist() == [1, 4, 5]
    (note,) = df.attrs["read_notes"]
    assert "line 2:" in note and "line 3: a JSON list, not an object" in note


def test_mostly_invalid_jsonl_is_an_error_naming_the_line(tmp_path):
    path = _write_text(tmp_path / "t.jsonl", '{"a": 1}\nnot json\n{oops\n')
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (
        str(path) in str(err.value)
        and "line 2" in str(err.value)
        and "one object" in str(err.value)
    )


def test_invalid_json_names_line_and_column(tmp_path):
    path = _write_text(tmp_path / "t.json", '[{"a": 1},\n {"a": }]')
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value) and "line 2, column" in str(err.value)


def test_corrupt_gzip_is_an_error(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" * 1000)[:40])
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value) and "corrupt or truncated" in str(err.value)


def test_binary_file_with_table_extension_is_an_error(tmp_path):
    path = tmp_path / "photo.csv"
    Image.new("RGB", (4, 4)).save(path, format="PNG")
    with pytest.raises(DataError, match="binary file") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_truncated_idx_is_an_error(tmp_path):
    path = _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 3, 3), np.uint8), 0x08)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (
        str(path) in str(err.value)
        and "truncated" in str(err.value)
        and "(4, 3, 3)" in str(err.value)
    )


def test_bad_idx_magic_and_type_byte(tmp_path):
    path = _write_text(tmp_path / "x.idx", "a,b\n1,2\n")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(DataError, match="data-type byte 0x07"):
        read_idx(path)


def test_idx_labels_count_mismatch_is_an_error(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8), 0x08)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8), 0x08)
    with pytest.raises(DataError, match="3 images"):
        read_table(tmp_path / "train-images-idx3-ubyte")


def test_folder_in_neither_layout_explains_both(tmp_path):
    Image.new("L", (2, 2)).save(tmp_path / "loose.png")
    with pytest.raises(DataError) as err:
        read_table(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "1 images directly in it" in message
    assert "one subfolder of images per class" in message and "exactly one table file" in message


def test_folder_with_several_tables_asks_for_one(tmp_path):
    _write_text(tmp_path / "train.csv", "a\n1\n")
    _write_text(tmp_path / "test.csv", "a\n2\n")
    with pytest.raises(DataError, match=r"\(test.csv, train.csv\); pass the one you mean"):
        read_table(tmp_path)


def test_bad_base_dir_and_source_type(tiny_table):
    with pytest.raises(DataError, match="base_dir="):
        read_table(tiny_table, base_dir=tiny_table.parent / "nope")
    with pytest.raises(DataError, match="pass a file path"):
        read_table(42)
    with pytest.raises(DataError, match="never downloads"):
        read_table("https://example.com/t.csv")


# --- through Arrow: compression, shards, columnar files, tar shards, splits --------------


def _compress(path: Path, data: bytes) -> Path:
    """``data`` written to ``path`` compressed by its suffix (.bz2/.zst/.xz/.zip)."""
    import bz2
    import lzma
    import zipfile

    import pyarrow as pa

    if path.suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    elif path.suffix == ".xz":
        path.write_bytes(lzma.compress(data))
    elif path.suffix == ".zst":
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(data)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("inner.csv", data)
    return path


@pytest.mark.parametrize("suffix", [".bz2", ".zst", ".xz", ".zip"])
def test_compressed_csv_every_codec(tmp_path, suffix):
    path = _compress(tmp_path / f"t.csv{suffix}", "a;b\n1;x\n2;é\n".encode())
    df = read_table(path)
    assert df.to_dict("list") == {"a": [1, 2], "b": ["x", "é"]}


def test_large_csv_ragged_rows_and_quoted_newlines_keep_exact_line_numbers(tmp_path):
    # Several MB, so pyarrow cuts it into blocks read in parallel; the first quoted
    # newline comes after the 64 KiB the reader looks at first.
    lines = ["id,text,n"]
    ragged_lines, multiline_ids = [], set()
    for i in range(120_000):
        if i in (50_000, 90_000):
            lines.append(f'{i},"spans\ntwo lines",{i}')  # one record on two physical lines
            multiline_ids.add(i)
        elif i in (7, 60_000, 100_000):
            lines.append(f"{i},x,{i},extra")
            ragged_lines.append(len(lines) + len(multiline_ids))  # its 1-based line number
        else:
            lines.append(f"{i},word {i % 97},{i}")
    path = _write_text(tmp_path / "big.csv", "\n".join(lines) + "\n")
    assert path.stat().st_size > 2_000_000
    df = read_table(path)
    assert len(df) == 120_000 - 3
    assert df.loc[df["id"] == 90_000, "text"].tolist() == ["spans\ntwo lines"]
    assert df["n"].sum() == sum(range(120_000)) - 7 - 60_000 - 100_000
    listed = ", ".join(str(n) for n in ragged_lines)
    assert f"rows {listed} (line numbers): ragged, 4 fields where the header has 3 — skipped" in df.attrs["read_notes"]
    assert ragged_lines[1] == 60_000 + 2 + 1  # header, then one multi-line record before it


def test_numbers_that_turn_into_text_late_in_a_large_csv(tmp_path):
    rows = [f"{i},{i}" for i in range(200_000)] + ["n/a-ish,5"]
    df = read_table(_write_text(tmp_path / "t.csv", "code,v\n" + "\n".join(rows) + "\n"))
    assert len(df) == 200_001 and df["code"].iloc[-1] == "n/a-ish"
    assert str(df["code"].iloc[3]) == "3"


def test_non_utf8_byte_far_into_a_large_file_is_found_on_its_line(tmp_path):
    text = "name,n\n" + "".join(f"plain {i},{i}\n" for i in range(100_000)) + "café,1\n"
    df = read_table(_write_text(tmp_path / "t.csv", text, encoding="cp1252"))
    assert df["name"].iloc[-1] == "café"
    note = next(n for n in df.attrs["read_notes"] if n.startswith("encoding"))
    assert "read as cp1252" in note and "line 100002" in note


def test_jsonl_list_cells_are_python_lists(tmp_path):
    df = read_table(_write_text(tmp_path / "t.jsonl", '{"t": ["a", "b"], "n": 1}\n{"t": [], "n": 2}\n'))
    assert df["t"].tolist() == [["a", "b"], []]
    assert all(isinstance(cell, list) for cell in df["t"])


@pytest.mark.parametrize("fmt", ["feather", "arrow-file", "arrow-stream"])
def test_feather_and_arrow_ipc(tmp_path, fmt):
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.table({"x": [1.5, 2.5], "name": ["a", None]})
    if fmt == "feather":
        path = tmp_path / "t.feather"
        feather.write_feather(table, path)
    else:
        path = tmp_path / "t.arrow"
        with pa.OSFile(str(path), "wb") as sink:
            open_writer = pa.ipc.new_file if fmt == "arrow-file" else pa.ipc.new_stream
            with open_writer(sink, table.schema) as writer:
                writer.write_table(table)
    df = read_table(path)
    assert df["x"].tolist() == [1.5, 2.5]
    assert df["name"].iloc[0] == "a" and pd.isna(df["name"].iloc[1])


def _frame(start: int, num_rows: int) -> pd.DataFrame:
    ids = np.arange(start, start + num_rows)
    return pd.DataFrame({"id": ids, "x": ids * 0.5, "color": [f"c{i % 3}" for i in ids]})


def test_parquet_shard_folder_is_one_table_in_name_order(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in (2, 0, 1):
        _frame(10 * i, 10).to_parquet(folder / f"part-{i:04d}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    df = read_table(folder)
    pd.testing.assert_frame_equal(df, _frame(0, 30), check_dtype=False)
    assert df.attrs["source"] == str(folder)


def test_hive_partitions_become_columns(tmp_path):
    folder = tmp_path / "hive"
    for year, start in ((2023, 0), (2024, 5)):
        (folder / f"year={year}").mkdir(parents=True)
        _frame(start, 5).to_parquet(folder / f"year={year}" / "part-0.parquet", index=False)
    df = read_table(folder)
    assert df["id"].tolist() == list(range(10))
    assert df["year"].tolist() == [2023] * 5 + [2024] * 5


def test_shards_with_an_all_missing_column_in_one_shard_still_combine(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(folder / "part-0.parquet")
    pd.DataFrame({"a": [3], "b": [None]}).to_parquet(folder / "part-1.parquet")
    df = read_table(folder)
    assert df["a"].tolist() == [1, 2, 3] and df["b"].tolist()[:2] == ["x", "y"]
    assert pd.isna(df["b"].iloc[2])


@pytest.mark.parametrize(
    ("second", "named"),
    [
        (pd.DataFrame({"a": [3], "c": ["z"]}), "different columns"),
        (pd.DataFrame({"a": ["three"], "b": ["z"]}), "column 'a'"),
    ],
)
def test_shards_with_mismatched_schemas_name_the_shard(tmp_path, second, named):
    folder = tmp_path / "shards"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(folder / "part-0.parquet")
    second.to_parquet(folder / "part-1.parquet")
    with pytest.raises(DataError) as err:
        read_table(folder)
    message = str(err.value)
    assert "\n" not in message and "part-1.parquet" in message and named in message


def test_shards_named_by_split_read_the_train_split_or_the_one_asked(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _frame(0, 4).to_parquet(folder / "train-00000-of-00002.parquet", index=False)
    _frame(4, 4).to_parquet(folder / "train-00001-of-00002.parquet", index=False)
    _frame(100, 3).to_parquet(folder / "test-00000-of-00001.parquet", index=False)
    assert read_table(folder)["id"].tolist() == list(range(8))
    assert read_table(folder, split="test")["id"].tolist() == [100, 101, 102]
    with pytest.raises(DataError, match="split='dev'"):
        read_table(folder, split="dev")


def test_split_subfolders_are_splits_not_classes(tmp_path):
    root = tmp_path / "pets"
    _make_image_folder(root / "train")
    (root / "test" / "cat").mkdir(parents=True)
    Image.new("L", (4, 5)).save(root / "test" / "cat" / "9.png")
    df = read_table(root)
    assert set(df["label"]) == {"cat", "dog"} and len(df) == 5
    assert load_image(df["image"].iloc[0], df.attrs["base_dir"]).size == (4, 5)
    test = read_table(root, split="test")
    assert test["label"].tolist() == ["cat"] and test["image"].tolist() == ["cat/9.png"]
    with pytest.raises(DataError, match="holds no splits"):
        read_table(root / "train", split="test")


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _png(value: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("L", (3, 2), color=value).save(buffer, format="PNG")
    return buffer.getvalue()


def test_webdataset_tar_shards_with_sidecar_json(tmp_path):
    folder = tmp_path / "wds"
    folder.mkdir()
    _write_tar(folder / "shard-000000.tar", {
        "s/0001.png": _png(10), "s/0001.json": b'{"label": "cat", "w": 1.5}',
        "s/0002.png": _png(20), "s/0002.json": b'{"label": "dog", "w": 2.5}',
    })
    _write_tar(folder / "shard-000001.tar", {
        "s/0003.png": _png(30), "s/0003.json": b"{broken",
        "s/0004.json": b'{"label": "cat", "w": 0.5}',
    })
    df = read_table(folder)
    assert df["__key__"].tolist() == ["s/0001", "s/0002", "s/0003", "s/0004"]
    assert df["label"].tolist()[:2] == ["cat", "dog"] and df["label"].iloc[3] == "cat"
    assert pd.isna(df["label"].iloc[2]) and pd.isna(df["image"].iloc[3])
    assert [np.asarray(load_image(df["image"].iloc[i])).max() for i in range(3)] == [10, 20, 30]
    notes = " ".join(df.attrs["read_notes"])
    assert "shard-000001.tar:s/0003.json" in notes and "s/0004" in notes
