"""Schema inference: modalities with reasons, overrides, the label and its problem type."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.data.readers import read_table
from polymodal.data.schema import (
    MODALITIES,
    Schema,
    infer_schema,
    parse_overrides,
)
from polymodal.errors import ConfigError, DataError, SchemaError


def _png_bytes(rng: np.random.Generator, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _column(df: pd.DataFrame, name: str, **kwargs):
    return infer_schema(df, **kwargs).columns[name]


# --------------------------------------------------------------------------- the tiny table


def test_tiny_table_every_modality(tiny_table):
    df = read_table(tiny_table)
    schema = infer_schema(df, label="label")
    modalities = {name: col.modality for name, col in schema.columns.items()}
    assert modalities == {
        "id": "ignored",
        "image": "image",
        "caption": "text",
        "audio": "audio",
        "price": "numeric",
        "color": "categorical",
        "tags": "multilabel",
        "date": "datetime",
        "label": "categorical",
    }
    assert schema.features() == ["image", "caption", "audio", "price", "color", "tags", "date"]
    assert schema.problem_type == "binary"
    assert schema.columns["tags"].delimiter == "|"
    reasons = {name: reason for name, _, reason in schema.summary_rows()}
    assert reasons["image"] == "image: 100% of 8 sampled files open as images"
    assert reasons["audio"] == "audio: 100% of 8 sampled files decode as audio; median 0.1 s, 8 kHz"
    assert reasons["id"] == "ignored: ID-like — 8 distinct integers in 8 rows, increasing"
    assert reasons["color"] == "categorical: 3 distinct values in 8 rows"
    assert "1 missing" in reasons["price"]
    assert "2024-01-03 to 2024-06-24" in reasons["date"]


def test_tiny_table_coded_integers_are_classes(tiny_table_coded):
    schema = infer_schema(read_table(tiny_table_coded), label="label")
    color = schema.columns["color"]
    assert color.modality == "categorical"
    assert "3 distinct integers (0–2) in 8 rows — integer-coded classes" in color.reason
    assert schema.problem_type == "binary"


# --------------------------------------------------------------------------- tricky columns


def test_integer_coded_classes_reason_quotes_the_numbers():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"digit": rng.integers(0, 10, 1797), "count": rng.integers(0, 5000, 1797)})
    schema = infer_schema(df)
    assert schema.columns["digit"].modality == "categorical"
    assert schema.columns["digit"].reason == (
        "categorical: 10 distinct integers (0–9) in 1,797 rows — integer-coded classes, "
        "not quantities; override with digit=numeric"
    )
    assert schema.columns["count"].modality == "numeric"  # many distinct integers: a quantity


def test_few_integers_that_do_not_count_from_0_or_1_are_quantities():
    """Cylinders 4-8, a mileage 9-29, counts with gaps: a model must order them and read a
    value training never saw; codes 1-6 with one left unused are still classes."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"cyl": rng.choice([4, 5, 6, 8], 200), "cty": rng.integers(9, 30, 200),
                       "attach": rng.choice([0, 1, 2, 5, 9, 20], 200),
                       "history": rng.choice([1, 2, 3, 5, 6], 200)})
    schema = infer_schema(df)
    assert [schema.columns[c].modality for c in df] == ["numeric", "numeric", "numeric",
                                                        "categorical"]


def test_counts_numbered_from_0_that_thin_out_toward_the_top_are_quantities():
    """Bathrooms, years in a role, tax liens: numbered from 0 like codes, but most rows
    hold the low values and the top of the range is rare (a count); codes such as months
    or a factor's levels fill their range, and a 0/1 flag stays a class."""
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({
        "baths": rng.choice(5, n, p=[0.05, 0.45, 0.45, 0.04, 0.01]),
        "years_in_role": np.minimum(rng.poisson(3, n), 18),
        "month": rng.integers(1, 13, n),
        "level": rng.choice(4, n, p=[0.3, 0.3, 0.25, 0.15]),
        "flag": rng.choice(2, n, p=[0.97, 0.03]),
    })
    schema = infer_schema(df)
    modalities = {c: schema.columns[c].modality for c in df}
    assert modalities == {"baths": "numeric", "years_in_role": "numeric",
                          "month": "categorical", "level": "categorical",
                          "flag": "categorical"}
    reason = schema.columns["baths"].reason
    assert reason.startswith("numeric: counts — 5 distinct integers (0–4)")
    assert "override with baths=categorical" in reason
    # The override the reason names is honoured.
    forced = infer_schema(df, overrides={"baths": "categorical"})
    assert forced.columns["baths"].modality == "categorical"
    # Stored as text with a capped top ("4+", not a number), the top's share is unknown:
    # still codes; without the cap, counts again, and the reason says how they were stored.
    capped = rng.choice(["0", "1", "2", "3", "4+"], n, p=[0.3, 0.4, 0.2, 0.07, 0.03])
    text = infer_schema(pd.DataFrame({"k": capped, "plain": np.char.rstrip(capped, "+")}))
    assert text.columns["k"].modality == "categorical"
    assert text.columns["plain"].modality == "numeric"
    assert text.columns["plain"].reason.startswith("numeric: counts stored as strings")


@pytest.mark.parametrize(
    ("values", "name", "expected"),
    [
        (np.arange(1000, 2000), "row", "increasing"),
        (np.arange(500, 0, -1), "n", "decreasing"),
        (np.random.default_rng(0).permutation(300), "x", "a shuffled range 0–299"),
        (
            np.random.default_rng(1).choice(10**6, 8, replace=False),
            "user_id",
            "reads as an identifier",
        ),
        (
            np.random.default_rng(1).choice(10**6, 8, replace=False),
            "PassengerId",
            "reads as an identifier",
        ),
    ],
)
def test_numeric_ids_are_ignored(values, name, expected):
    col = _column(pd.DataFrame({name: values}), name)
    assert col.modality == "ignored"
    assert "ID-like" in col.reason and expected in col.reason


def test_unique_unordered_quantities_stay_numeric():
    values = np.random.default_rng(0).choice(10**6, 300, replace=False)
    assert _column(pd.DataFrame({"income": values}), "income").modality == "numeric"


def test_numbers_stored_as_strings_are_numeric():
    df = pd.DataFrame({"amount": ["1,234", "3.5", " 7 ", "-2e3", "1,000,000.5", "12", "8", "9"]})
    col = _column(df, "amount")
    assert col.modality == "numeric"
    assert "stored as strings" in col.reason and "range -2,000 to 1e+06" in col.reason


def test_digit_strings_with_leading_zeros_are_codes():
    df = pd.DataFrame({"zip": ["02134", "10001", "94105", "02134"] * 5})
    col = _column(df, "zip")
    assert col.modality == "categorical"
    assert "leading zeros" in col.reason and "'02134'" in col.reason


def test_dates_as_strings_and_datetime64():
    df = pd.DataFrame(
        {
            "when": ["2021-01-05", "2021-02-10", "2021/03/01", "2021-04-22"] * 3,
            "stamp": pd.date_range("2020-01-01", periods=12, freq="D"),
            "month": ["May", "June", "July", "May"] * 3,  # words parse as dates; still categories
        }
    )
    schema = infer_schema(df)
    assert schema.columns["when"].modality == "datetime"
    assert "2021-01-05 to 2021-04-22" in schema.columns["when"].reason
    assert schema.columns["stamp"].modality == "datetime"
    assert schema.columns["month"].modality == "categorical"


def test_dirty_numbers_and_day_first_dates_of_a_european_export(tmp_path):
    from polymodal.data.readers import read_table

    path = tmp_path / "export.csv"
    path.write_text("price;discount;weight;when;y\n"
                    + "".join(f"$1,{i:03d}.50;{i % 40}%;{i % 9},{i % 7};{i % 28 + 1:02d}/"
                              f"{i % 12 + 1:02d}/2021;{'ab'[i % 2]}\n" for i in range(60)),
                    encoding="utf-8")
    df = read_table(path)
    schema = infer_schema(df, label="y")
    for column in ("price", "discount", "weight"):
        assert schema.columns[column].modality == "numeric", schema.columns[column].reason
    assert df["weight"].iloc[:3].tolist() == [0.0, 1.1, 2.2]
    assert "currency/percent signs dropped" in schema.columns["price"].reason
    assert schema.columns["when"].modality == "datetime"
    days = [pd.Timestamp(2021, i % 12 + 1, i % 28 + 1) for i in range(60)]
    assert f"day first ({min(days):%Y-%m-%d} to {max(days):%Y-%m-%d})" in schema.columns["when"].reason


def test_ordinal_words_are_categories_not_dates_of_year_one():
    # pandas parses "1st"/"2nd"/"3rd" as days of January in year 1 (R's TitanicSurvival).
    df = pd.DataFrame({"passengerClass": ["1st", "2nd", "3rd", "3rd"] * 5})
    assert infer_schema(df).columns["passengerClass"].modality == "categorical"


def test_tags_and_list_cells_are_multilabel_but_prose_with_commas_is_text():
    df = pd.DataFrame(
        {
            "tags": ["a;b", "b", "a; c", "c", "b;c", "a"] * 4,
            "lists": [["x", "y"], ["y"], ["x"], ["z", "x"], [], ["y", "z"]] * 4,
            "notes": [f"Note {i}, written on day {i}, about item number {i}" for i in range(24)],
        }
    )
    schema = infer_schema(df)
    assert (schema.columns["tags"].modality, schema.columns["tags"].delimiter) == (
        "multilabel",
        ";",
    )
    assert "';'-separated tags" in schema.columns["tags"].reason
    assert (schema.columns["lists"].modality, schema.columns["lists"].delimiter) == (
        "multilabel",
        None,
    )
    assert schema.columns["notes"].modality == "text"
    assert "words per cell" in schema.columns["notes"].reason


def test_constant_empty_and_boolean_columns():
    df = pd.DataFrame(
        {
            "const": ["x"] * 6,
            "empty": [None, np.nan, "", " ", None, None],
            "flag": [True, False] * 3,
        }
    )
    schema = infer_schema(df)
    assert schema.columns["const"].reason == "ignored: constant (every value is 'x')"
    assert schema.columns["empty"].reason == "ignored: empty (all 6 cells missing)"
    assert schema.columns["flag"].modality == "categorical"
    assert "boolean (3 True, 3 False)" in schema.columns["flag"].reason
    assert schema.features() == ["flag"]


def test_string_ids_and_high_cardinality_strings():
    df = pd.DataFrame(
        {
            "sku": [f"SKU-{i:05d}" for i in range(200)],
            "city": [f"City {i % 80}" for i in range(200)],
            "town": [f"{chr(97 + i % 170 // 26)}{chr(97 + i % 26)}ville" for i in range(200)],
        }
    )
    schema = infer_schema(df)
    assert schema.columns["sku"].modality == "ignored"
    assert "200 distinct strings in 200 rows, none with spaces" in schema.columns["sku"].reason
    # every city recurs (80 in 200 rows): categories; most towns do not: text
    assert schema.columns["city"].modality == "categorical"
    assert schema.columns["town"].modality == "text"
    assert "too many for categories" in schema.columns["town"].reason


def test_image_paths_are_images_even_when_files_are_missing(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / f"p{i}.jpg").write_bytes(_png_bytes(rng))
    df = pd.DataFrame(
        {"photo": [f"p{i}.jpg" for i in range(3)], "lost": [f"gone/{i}.png" for i in range(3)]}
    )
    df.attrs["base_dir"] = str(tmp_path)
    schema = infer_schema(df)
    assert schema.columns["photo"].modality == "image"
    assert schema.columns["lost"].modality == "image"
    assert "3 files not found under" in schema.columns["lost"].reason
    assert "check the paths or base_dir" in schema.columns["lost"].reason
    # Without a base_dir the relative paths do not resolve; base_dir= fixes that.
    del df.attrs["base_dir"]
    assert "(no base_dir given)" in infer_schema(df).columns["photo"].reason
    assert infer_schema(df, base_dir=tmp_path).columns["photo"].reason.startswith("image: 100%")


def test_image_files_without_extension_open_as_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        (tmp_path / f"scan{i}").write_bytes(_png_bytes(rng))
    df = pd.DataFrame({"scan": [str(tmp_path / f"scan{i}") for i in range(4)]})
    assert _column(df, "scan").modality == "image"


def test_bytes_ndarray_and_waveform_cells():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "png": [_png_bytes(rng) for _ in range(6)],
            "junk": [bytes([i]) * 40 for i in range(6)],
            "pixels": [rng.random((3, 8, 8)) for _ in range(6)],  # (C, H, W)
            "vector": [rng.random(16) for _ in range(6)],
            "wave": [(rng.standard_normal(400).astype(np.float32), 8000) for _ in range(6)],
        }
    )
    schema = infer_schema(df)
    assert schema.columns["png"].reason == "image: 100% of 6 sampled bytes cells open as images"
    assert schema.columns["junk"].modality == "ignored"
    assert schema.columns["pixels"].modality == "image"
    assert "(shape (3, 8, 8))" in schema.columns["pixels"].reason
    assert schema.columns["vector"].modality == "ignored"
    assert "array cells of shape (16,) are not supported" in schema.columns["vector"].reason
    assert schema.columns["wave"].modality == "audio"


def test_sampling_is_deterministic_and_bounded(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "ok.png").write_bytes(_png_bytes(rng))
    paths = ["ok.png" if i % 3 else "missing.png" for i in range(300)]
    df = pd.DataFrame({"image": paths})
    df.attrs["base_dir"] = str(tmp_path)
    first = infer_schema(df, sample_size=50, seed=3).columns["image"].reason
    assert first == infer_schema(df, sample_size=50, seed=3).columns["image"].reason
    assert "of 50 sampled files" in first and "not found" in first
    with pytest.raises(ConfigError, match="sample_size"):
        infer_schema(df, sample_size=0)


# --------------------------------------------------------------------------- overrides


def test_overrides_win_and_say_so():
    df = pd.DataFrame({"zip": [1, 2, 3, 1, 2, 3] * 3, "note": ["a b c"] * 17 + ["d"]})
    schema = infer_schema(df, overrides={"zip": "numeric"})
    col = schema.columns["zip"]
    assert (col.modality, col.overridden) == ("numeric", True)
    assert "set by user" in col.reason and "inferred categorical" in col.reason
    assert schema.columns["note"].overridden is False


def test_unknown_override_column_names_close_matches():
    df = pd.DataFrame({"price": [1.0, 2.0], "color": ["a", "b"]})
    with pytest.raises(SchemaError, match=r"'prices' is not in the table; did you mean 'price'"):
        infer_schema(df, overrides={"prices": "numeric"})


def test_unknown_override_modality_lists_modalities():
    df = pd.DataFrame({"price": [1.0, 2.0]})
    with pytest.raises(SchemaError, match="did you mean 'numeric'") as info:
        infer_schema(df, overrides={"price": "numerical"})
    assert all(m in str(info.value) for m in MODALITIES)


def test_parse_overrides():
    assert parse_overrides(["zip=categorical", " a=b = Text "]) == {
        "zip": "categorical",
        "a=b": "text",
    }
    for bad in ["zip", "=text", "zip="]:
        with pytest.raises(SchemaError, match="COLUMN=MODALITY"):
            parse_overrides([bad])
    with pytest.raises(SchemaError, match="unknown modality 'txt'"):
        parse_overrides(["notes=txt"])
    with pytest.raises(SchemaError, match="overridden twice"):
        parse_overrides(["zip=text", "zip=numeric"])


# --------------------------------------------------------------------------- label


def test_label_errors():
    df = pd.DataFrame({"target": ["a", "b"] * 5, "empty": [None] * 10, "one": ["a"] * 10})
    with pytest.raises(
        SchemaError, match="label column 'targt' is not in the table; did you mean 'target'"
    ):
        infer_schema(df, label="targt")
    with pytest.raises(SchemaError, match="label 'empty' has no labelled rows"):
        infer_schema(df, label="empty")
    with pytest.raises(
        SchemaError,
        match="label 'one' has a single class 'a' in 10 rows: a classifier needs at least two",
    ):
        infer_schema(df, label="one")
    with pytest.raises(SchemaError, match="not numbers, e.g. 'a'"):
        infer_schema(df, label="target", problem_type="regression")
    with pytest.raises(SchemaError, match="not the 2 a binary problem needs"):
        infer_schema(pd.DataFrame({"y": list("abcabc")}), label="y", problem_type="binary")
    with pytest.raises(ConfigError, match="problem_type 'ranking' is unknown"):
        infer_schema(df, label="target", problem_type="ranking")
    with pytest.raises(ConfigError, match="needs a label column"):
        infer_schema(df, problem_type="binary")


@pytest.mark.parametrize(
    ("values", "problem", "modality", "reason_part"),
    [
        (["yes", "no"] * 10, "binary", "categorical", "2 classes ('no', 'yes')"),
        ([0, 1, 1, 0] * 5, "binary", "categorical", "2 classes (0, 1)"),
        (list("abcd") * 5, "multiclass", "categorical", "4 distinct values in 20 rows"),
        (
            [0, 1, 2, 3, 4] * 4,
            "multiclass",
            "categorical",
            "5 distinct integers (0–4) in 20 rows — read as class codes",
        ),
        (list(np.linspace(0.5, 9.5, 20)), "regression", "numeric", "floats, 20 distinct values"),
        (list(range(0, 600, 3)), "regression", "numeric", "integers, 200 distinct values"),
        # Many integers not numbered from 0 or 1: a score, not 35 classes.
        (list(range(66, 101)) * 30, "regression", "numeric", "integers, 35 distinct values"),
        (list(range(0, 35)) * 30, "multiclass", "categorical", "35 distinct integers (0–34)"),
        (["a|b", "b", "a|c", "c"] * 5, "multilabel", "multilabel", "'|'-separated tags"),
        ([["a"], ["a", "b"], ["c"]] * 5, "multilabel", "multilabel", "list cells"),
    ],
)
def test_every_problem_type(values, problem, modality, reason_part):
    df = pd.DataFrame({"x": np.arange(len(values)) % 3, "y": values})
    schema = infer_schema(df, label="y")
    assert schema.problem_type == problem
    assert reason_part in schema.problem_reason
    assert schema.columns["y"].modality == modality
    assert schema.features() == ["x"]


def test_label_problem_type_from_user():
    df = pd.DataFrame({"y": [0, 1, 2, 3, 4] * 4, "x": range(20)})
    schema = infer_schema(df, label="y", problem_type="regression")
    assert (schema.problem_type, schema.problem_reason) == ("regression", "regression: set by user")
    assert schema.columns["y"].modality == "numeric"
    by_override = infer_schema(df, label="y", overrides={"y": "numeric"})
    assert by_override.problem_type == "regression"
    with pytest.raises(SchemaError, match="cannot be predicted"):
        infer_schema(df, label="y", overrides={"y": "image"})


def test_schema_round_trips_through_json():
    df = pd.DataFrame({"tags": ["a|b", "b", "a"] * 4, "y": ["p", "q", "r"] * 4})
    schema = infer_schema(df, label="y")
    again = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema
    assert again.columns["tags"].delimiter == "|"


def test_bad_tables():
    with pytest.raises(DataError, match="needs a pandas DataFrame"):
        infer_schema([[1, 2]])
    with pytest.raises(SchemaError, match="column names must be strings"):
        infer_schema(pd.DataFrame(np.zeros((3, 2))))


def test_urls_long_text_and_objects_of_mixed_types():
    df = pd.DataFrame(
        {
            "url": [f"https://example.com/{i}.jpg" for i in range(6)],
            "essay": ["x" * 400 + f" word {i}" for i in range(6)],  # too long to be a file name
            "mixed": [1, 2, "?", 4, 5, 6],
        }
    )
    schema = infer_schema(df)
    assert schema.columns["url"].modality == "image"
    assert (
        "URLs" in schema.columns["url"].reason and "never downloads" in schema.columns["url"].reason
    )
    assert schema.columns["essay"].modality == "text"
    assert schema.columns["mixed"].modality == "numeric"
    assert "83% of sampled cells" in schema.columns["mixed"].reason


def test_label_overridden_to_categorical_and_many_classes():
    df = pd.DataFrame({"y": np.linspace(0, 1, 30).round(3), "name": [f"n {i}" for i in range(30)]})
    schema = infer_schema(df, label="y", overrides={"y": "categorical"})
    assert schema.problem_type == "multiclass"
    assert schema.problem_reason == "multiclass: set by user (categorical, 30 classes)"
    schema = infer_schema(pd.DataFrame({"who": [f"person {i}" for i in range(100)]}), label="who")
    assert schema.problem_type == "multiclass"
    assert "more classes than expected" in schema.problem_reason


def test_templated_sentences_are_text_and_short_labels_categorical():
    rng = np.random.default_rng(0)
    rooms = rng.integers(1, 7, 300)
    hoods = rng.choice(["north", "south", "east", "west"], 300)
    df = pd.DataFrame({
        "description": [f"bright flat with {r} rooms in the {h}" for r, h in zip(rooms, hoods, strict=True)],
        "job": rng.choice(["data engineer", "shop assistant", "nurse"], 300),
    })
    schema = infer_schema(df)
    assert schema.modality("description") == "text"
    assert "sentences" in schema.columns["description"].reason
    assert schema.modality("job") == "categorical"


def test_a_counter_restarting_per_group_is_a_row_number():
    """'Sample Number' in the raw Palmer penguins table: 1..n per study, restarting."""
    values = np.concatenate([np.arange(1, 153), np.arange(1, 115), np.arange(1, 79)])
    col = _column(pd.DataFrame({"Sample Number": values}), "Sample Number")
    assert col.modality == "ignored" and "row counter" in col.reason
    # The same values under a quantity's name stay numbers; so do counts that do not step by one.
    assert _column(pd.DataFrame({"weight": values}), "weight").modality == "numeric"
    steps = np.random.default_rng(0).integers(0, 5, size=344).cumsum()
    assert _column(pd.DataFrame({"row": steps}), "row").modality == "numeric"


def test_mostly_distinct_codes_are_identifiers_not_text():
    """'Individual ID' (N1A1, N1A2, ...): 190 codes in 344 rows, repeated per individual."""
    rng = np.random.default_rng(0)
    codes = [f"N{i}A{j}" for i in range(1, 96) for j in (1, 2)]  # 190 codes
    values = codes + list(rng.choice(codes, size=154))
    col = _column(pd.DataFrame({"Individual ID": values}), "Individual ID")
    assert col.modality == "ignored" and "codes" in col.reason
    unnamed = _column(pd.DataFrame({"tag": values}), "tag")
    assert unnamed.modality == "ignored" and "too many for categories" in unnamed.reason
    # Words (no digits) with as many distinct values are not codes.
    words = [f"{a} {b}" for a in ("red", "big", "old", "new") for b in range(60)][:190]
    col = _column(pd.DataFrame({"note": words + list(rng.choice(words, 154))}), "note")
    assert col.modality != "ignored"
    # A handful of product codes, each on many rows, stays categorical.
    few = list(rng.choice(["AB-12", "CD-34", "EF-56"], size=300))
    assert _column(pd.DataFrame({"sku": few}), "sku").modality == "categorical"


def test_names_that_recur_are_categories_with_many_levels():
    """A business name in every inspection of it: 300 names in 2,000 rows, more than a
    category column has, but each in about 7 rows -- a category, not text to embed."""
    rng = np.random.default_rng(0)
    names = [f"{a} {b} #{i}" for i, (a, b) in enumerate(
        zip(rng.choice(["Cafe", "Deli", "Grill", "Mart"], 300),
            rng.choice(["North", "Bay", "Oak", "Elm"], 300), strict=True))]
    df = pd.DataFrame({"business": rng.choice(names, 2000), "y": rng.integers(0, 2, 2000)})
    assert infer_schema(df, label="y").columns["business"].modality == "categorical"
    # As many names, each in fewer than five rows: still text.
    rare = pd.DataFrame({"business": rng.choice(names, 1000), "y": rng.integers(0, 2, 1000)})
    assert infer_schema(rare, label="y").columns["business"].modality == "text"


def test_a_distinct_short_name_per_row_is_an_identifier_but_short_phrases_are_text():
    """Hitters' ``rownames``: a player per row ("-Alan Ashby"), every value distinct, two
    words each -- an identifier, not text to embed; unique short strings under another
    name (an utterance, a product title) and unique phrases of several words stay text."""
    rng = np.random.default_rng(0)
    first = ["Alan", "Mike", "Tony", "Juan", "Dale", "Ron", "Bob", "Ken", "Tom", "Jim"]
    players = [f"-{f} {last}{i}" for i, (f, last) in enumerate(zip(
        rng.choice(first, 300), rng.choice(["Ashby", "Davis", "Smith", "Lopez"], 300),
        strict=True))]
    df = pd.DataFrame({"player": players, "y": rng.integers(0, 2, 300)})
    column = infer_schema(df, label="y").columns["player"]
    assert column.modality == "ignored", column.reason
    for other in ("utterance", "title"):
        renamed = df.rename(columns={"player": other})
        assert infer_schema(renamed, label="y").columns[other].modality == "text"
    phrases = [f"a {w} {c} item number {i}" for i, (w, c) in enumerate(zip(
        rng.choice(["small", "large", "red"], 300), rng.choice(["box", "cup"], 300),
        strict=True))]
    text = pd.DataFrame({"title": phrases, "y": rng.integers(0, 2, 300)})
    assert infer_schema(text, label="y").columns["title"].modality == "text"


def test_short_labels_that_mostly_recur_are_categories_despite_a_long_tail():
    """Job titles: a few common ones in most rows, every other row its own title -- more
    than half the values rare, but most rows share theirs: a category, not text."""
    rng = np.random.default_rng(0)
    common = ["manager", "owner", "teacher", "driver", "registered nurse", "sales",
              "office manager", "truck driver", "supervisor", "engineer"]
    n = 2000
    titles = [str(t) for t in rng.choice(common, n)]
    rare = rng.random(n) < 0.45  # these rows get a title no other row has
    titles = [f"clerk {i}" if r else t for i, (t, r) in enumerate(zip(titles, rare, strict=True))]
    df = pd.DataFrame({"title": titles, "y": rng.integers(0, 2, n)})
    column = infer_schema(df, label="y").columns["title"]
    assert column.modality == "categorical", column.reason
    # Mostly rare (the tail in 65% of rows): text, as before.
    rarer = [f"clerk {i}" if rng.random() < 0.65 else t for i, t in enumerate(titles)]
    df = pd.DataFrame({"title": rarer, "y": rng.integers(0, 2, n)})
    assert infer_schema(df, label="y").columns["title"].modality == "text"
