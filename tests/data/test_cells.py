"""The cell helpers every data module reads cells with: the missing-cell test, tags, numbers."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import numpy as np
import pandas as pd
import pytest

from polymodal.data.cells import (
    category_key,
    cell_missing,
    cell_tags,
    column_numbers,
    present_mask,
)

# --------------------------------------------------------------------------- missing

MISSING = [
    None,
    float("nan"),
    np.nan,
    np.float32("nan"),
    np.float16("nan"),
    complex("nan"),
    pd.NaT,
    np.datetime64("NaT"),
    np.timedelta64("NaT"),
    pd.NA,
    decimal.Decimal("NaN"),
    "",
    "   ",
    "\t\n",
    np.str_(" "),
    b"",
    bytearray(),
]
PRESENT = [
    0,
    0.0,
    -1.5,
    np.float32(2.0),
    np.int64(0),
    False,
    True,
    float("inf"),
    "x",
    " x ",
    "nan",  # the text "nan" is a value; readers turn NA markers into NaN before this
    "None",
    b"\x00",
    bytearray(b"a"),
    pd.Timestamp("2024-01-01"),
    np.datetime64("2024-01-01"),
    dt.date(2024, 1, 1),
    decimal.Decimal("1.5"),
    [],
    [None],
    (),
    set(),
    {},
    np.array([]),
    np.array([np.nan]),
    np.zeros((2, 2)),
    pd.Series([], dtype=object),
]


@pytest.mark.parametrize("cell", MISSING, ids=repr)
def test_missing_cells(cell):
    assert cell_missing(cell) is True


@pytest.mark.parametrize("cell", PRESENT, ids=lambda c: type(c).__name__ + ":" + repr(c)[:20])
def test_present_cells(cell):
    assert cell_missing(cell) is False


@pytest.mark.parametrize("cell", [c for c in MISSING + PRESENT if np.ndim(c) == 0
                                  and not isinstance(c, str | bytes | bytearray | dict)],
                         ids=repr)
def test_missing_agrees_with_pandas_on_scalars(cell):
    assert cell_missing(cell) == bool(pd.isna(cell))


def test_present_mask_reads_object_and_typed_columns_alike():
    objects = pd.Series(["a", None, np.nan, " ", pd.NA, pd.NaT, b"", [], 0], dtype=object)
    np.testing.assert_array_equal(
        present_mask(objects), [True, False, False, False, False, False, False, True, True]
    )
    strings = pd.Series(["a", None, " ", "b"], dtype="string")
    np.testing.assert_array_equal(present_mask(strings), [True, False, False, True])
    floats = pd.Series([1.0, np.nan, 0.0])
    np.testing.assert_array_equal(present_mask(floats), [True, False, True])
    times = pd.Series(pd.to_datetime(["2024-01-01", None]))
    np.testing.assert_array_equal(present_mask(times), [True, False])


def test_column_numbers_parses_number_strings():
    series = pd.Series(["1,234", " 5 ", None, "x", "", "3,5"], name="n")
    np.testing.assert_array_equal(
        column_numbers(series), [1234.0, 5.0, np.nan, np.nan, np.nan, np.nan]
    )


def test_category_key_merges_spellings_of_one_value():
    assert category_key(3) == category_key(3.0) == category_key(" 3 ") == category_key(np.int64(3))
    assert category_key(3.5) == "3.5" and category_key(True) == "True"
    assert category_key(None) is None and category_key(" ") is None and category_key(pd.NaT) is None


# --------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "cell, delimiter, tags",
    [
        ("b| a |b", "|", ["a", "b"]),  # stripped, de-duplicated, sorted
        ("a;b", ";", ["a", "b"]),
        ("a, b,,c", ",", ["a", "b", "c"]),  # blank tags dropped
        ("a|b", ";", ["a|b"]),  # another delimiter: one tag
        ("a|b", None, ["a|b"]),  # no delimiter: the whole string is one tag
        ("|", "|", []),
        ('["x", "y", "x"]', "|", ["x", "y"]),  # a JSON list string
        ('["x", "y"]', None, ["x", "y"]),
        (' ["b", 1, 2.0, null, ""] ', "|", ["1", "2", "b"]),
        ("[]", "|", []),
        ("[not json|z", "|", ["[not json", "z"]),  # looks like JSON, is not: split as usual
        ('{"a": 1}', ",", ['{"a": 1}']),
        (["b", "a", "b"], None, ["a", "b"]),
        (("x", " y "), None, ["x", "y"]),
        ({"q", "p"}, "|", ["p", "q"]),
        (np.array(["z", "x"]), "|", ["x", "z"]),
        (pd.Series(["m", "n"]), "|", ["m", "n"]),
        ([1, 1.0, np.int64(2), None, np.nan, " "], None, ["1", "2"]),  # tags are categories
        ([], "|", []),
        (5, "|", ["5"]),
        (5.0, "|", ["5"]),
    ],
)
def test_cell_tags(cell, delimiter, tags):
    assert cell_tags(cell, delimiter) == tags


@pytest.mark.parametrize("cell", MISSING, ids=repr)
def test_missing_cells_have_no_tags(cell):
    assert cell_tags(cell, "|") == []


@pytest.mark.parametrize("text, number", [("1,234", 1234.0), (" 3.5 ", 3.5), ("-2e3", -2000.0),
                                          ("3,5", None), ("n0", None), ("", None),
                                          ("$1,274.29", 1274.29), ("-$5", -5.0), ("$-5", -5.0),
                                          ("29%", 29.0), ("12 %", 12.0), ("5 €", 5.0),
                                          ("£1,000,000", 1e6), ("$", None), ("abc%", None),
                                          ("x$", None)])
def test_one_number_is_read_as_a_column_of_them(text, number):
    """The service checks a request's cell with the definition a table's column uses."""
    from polymodal.api.export_cells import cell_number
    from polymodal.data.cells import non_number_positions, number_or_none

    assert number_or_none(text) == number
    # The exported runtime reads a cell as polymodal does.
    assert (math.isnan(cell_number(text)) if number is None else cell_number(text) == number)
    column = pd.Series(["1", text], dtype=object)
    expected = [1] if number is None and text else []
    assert non_number_positions(column).tolist() == expected
