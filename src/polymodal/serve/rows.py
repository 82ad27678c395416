"""A request's rows -> the table a Predictor takes, and its predictions -> JSON.

The Predictor is lenient by design: a cell it cannot read becomes "missing" so one bad
file does not sink a batch job. A service should instead tell its client, so every cell
is checked here against its column's modality and a wrong one is a 422 naming it
(``rows[3].price: expected a number, got 'abc'``).

Image and audio cells arrive as base64 strings in JSON, or as multipart files named
after their column (``image`` for the first row, ``image[3]`` for row 3). Strings are
never taken as file paths: a client must not make the server read its own files.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# The Predictor's schema type, and the modalities a row may leave out.
from polymodal.api.predictor import OPTIONAL_MODALITIES
from polymodal.errors import DataError, SchemaError
from polymodal.files import json_safe
from polymodal.serve.limits import ServeLimits, check_at_most
from polymodal.serve.uploads import check_audio, check_image, decode_base64
from polymodal.workflows.outputs import number_or_none

MEDIA_MODALITIES = ("image", "audio")


def column_info(schema, categories: Mapping[str, list] | None = None,
                tags: Mapping[str, list] | None = None) -> list[dict]:
    """What a client needs to fill a row: each feature column, its modality, whether a row
    may leave it out, and the values the model knows (``categories`` of a categorical
    column, ``tags`` of a multilabel one) when they are given."""
    info = []
    for name in schema.features():
        modality = schema.modality(name)
        column = {"name": name, "modality": modality,
                  "required": modality not in OPTIONAL_MODALITIES,
                  "reason": schema.columns[name].reason}
        if modality == "categorical" and categories and name in categories:
            column["categories"] = [json_safe(c) for c in categories[name]]
        if modality == "multilabel" and tags and name in tags:
            column["tags"] = [json_safe(t) for t in tags[name]]
        info.append(column)
    return info


def rows_to_frame(rows: Sequence, files: Mapping[str, bytes], schema,
                  limits: ServeLimits) -> pd.DataFrame:
    """Check the rows and files of one request and build the table to predict on.

    ``files`` maps a multipart field name (``column`` or ``column[i]``) to its bytes.
    Raises DataError/SchemaError (422) naming the row and column of the first problem.
    """
    if not isinstance(rows, list) or not rows:
        raise DataError("rows: expected a non-empty list of objects, one per row, e.g. "
                        '{"rows": [{"column": value}]}')
    check_at_most(len(rows), limits.max_rows, field="rows", limit_name="max_rows")
    features = schema.features()
    modality = {name: schema.modality(name) for name in features}
    known = set(schema.columns)
    cells = [_row_dict(row, i, known) for i, row in enumerate(rows)]
    uploaded_as: dict[tuple[int, str], str] = {}  # errors name an upload by its form field
    for field, data in files.items():
        column, index = _file_target(field, len(rows), modality)
        if cells[index].get(column) is not None:
            raise DataError(f"{field}: rows[{index}].{column} is given both in the rows and as "
                            "an uploaded file; send it once")
        cells[index][column] = data
        uploaded_as[index, column] = field
    table: dict[str, list] = {name: [] for name in features}
    for i, row in enumerate(cells):
        missing = [c for c in features if c not in row and modality[c] not in OPTIONAL_MODALITIES]
        if missing:
            raise SchemaError(f"rows[{i}]: missing column(s) {missing}, which the model needs; "
                              "send null for a value that is unknown")
        for name in features:
            value = row.get(name)
            field = uploaded_as.get((i, name), f"rows[{i}].{name}")
            table[name].append(_check_cell(value, field, modality[name], limits))
    return pd.DataFrame(table, columns=features)


def _row_dict(row, i: int, known: set[str]) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"rows[{i}]: expected an object {{column: value}}, got "
                        f"{type(row).__name__}")
    unknown = [c for c in row if c not in known]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SchemaError(f"rows[{i}]: unknown column(s) {unknown}{hint}; the model's columns are "
                          f"{sorted(known)}")
    return dict(row)


def _file_target(field: str, num_rows: int, modality: Mapping[str, str]) -> tuple[str, int]:
    """``"image[2]"`` -> ``("image", 2)``; ``"image"`` is row 0 of a one-row request."""
    column, index = field, 0
    if field.endswith("]") and "[" in field:
        column, _, rest = field[:-1].rpartition("[")
        if not rest.isdigit():
            raise DataError(f"file field {field!r}: write COLUMN or COLUMN[ROW], e.g. 'image[0]'")
        index = int(rest)
        if index >= num_rows:
            raise DataError(f"file field {field!r}: row {index} does not exist; the request has "
                            f"{num_rows} row(s)")
    elif num_rows > 1:
        raise DataError(f"file field {field!r}: with {num_rows} rows, name files COLUMN[ROW], "
                        f"e.g. '{field}[0]'")
    if column not in modality:
        raise SchemaError(f"file field {field!r}: {column!r} is not a feature column of the model "
                          f"(its image/audio columns: "
                          f"{[c for c, m in modality.items() if m in MEDIA_MODALITIES]})")
    if modality[column] not in MEDIA_MODALITIES:
        raise DataError(f"file field {field!r}: column {column!r} is {modality[column]}, not "
                        "image or audio; send its value in the rows instead")
    return column, index


def _check_cell(value, field: str, modality: str, limits: ServeLimits):
    """The cell as the predictor should see it, or DataError naming ``field``."""
    if value is None:
        return None

    def wrong(expected: str):
        shown = repr(value) if not isinstance(value, bytes) else f"{len(value)} bytes"
        return DataError(f"{field}: expected {expected}, got {shown[:80]} "
                         f"({type(value).__name__})")

    if modality in MEDIA_MODALITIES:
        if isinstance(value, str):
            value = decode_base64(value, field=field)
        if not isinstance(value, bytes):
            raise wrong(f"an {modality} file as base64 text or a multipart upload")
        if modality == "image":
            check_image(value, field=field, max_pixels=limits.max_image_pixels)
        else:
            check_audio(value, field=field, max_seconds=limits.max_audio_s)
        return value
    if modality == "numeric":
        if isinstance(value, str):
            if not value.strip():
                return None
            number = number_or_none(value)  # read as a table's numeric column is read
            if number is None:
                raise wrong("a number")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise wrong("a number")
        else:
            try:
                number = float(value)
            except OverflowError:  # a JSON integer of hundreds of digits
                number = math.inf
        if not math.isfinite(number):  # JSON parsers take 1e999, NaN and Infinity
            raise wrong("a finite number (send null for a missing value)")
        return number
    if modality == "categorical":
        if isinstance(value, str | bool | numbers.Real):
            return value
        raise wrong("a category (a string or number)")
    if modality == "text":
        if isinstance(value, str):
            return value
        raise wrong("text (a string)")
    if modality == "multilabel":
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str | numbers.Real) for v in value):
            return value
        raise wrong("a list of tags, or one string of delimited tags")
    if modality == "datetime":
        if isinstance(value, str | numbers.Real) and not isinstance(value, bool):
            if pd.isna(pd.to_datetime(value, errors="coerce")):
                raise wrong("a date or time such as '2024-05-31' or '2024-05-31T12:00'")
            return value
        raise wrong("a date or time string")
    return value


def media_conditions(conditions: dict | None, info: Mapping[str, dict], limits: ServeLimits
                     ) -> dict | None:
    """A generator's image/audio condition values as checked bytes: they arrive as base64
    text, never as paths (the server must not read its own files for a client); any other
    text value at most ``limits.max_prompt_chars`` long. ``info`` is the generator's
    ``conditions_``; DataError (422) names ``conditions.COLUMN[i]``."""
    if not conditions:
        return conditions
    checked = dict(conditions)
    for column, value in conditions.items():
        modality = (info.get(column) or {}).get("modality")
        if modality not in MEDIA_MODALITIES:
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                if isinstance(v, str) and len(v) > limits.max_prompt_chars:
                    at = f"[{i}]" if isinstance(value, list) else ""
                    raise DataError(
                        f"conditions.{column}{at}: at most {limits.max_prompt_chars} characters, "
                        f"got {len(v):,}; that is this server's limit max_prompt_chars="
                        f"{limits.max_prompt_chars} (start it with a higher limit to allow more)")
            continue
        if isinstance(value, list):
            checked[column] = [_check_cell(v, f"conditions.{column}[{i}]", modality, limits)
                               for i, v in enumerate(value)]
        else:
            checked[column] = _check_cell(value, f"conditions.{column}", modality, limits)
    return checked


def prediction_payload(predictor, table: pd.DataFrame) -> dict:
    """``{"predictions": [...], "probabilities": [{class: p}] | None, "classes": [...],
    "unseen_categories": {column: {value: rows}}}``.

    Runs on an inference worker. Classification runs the model once: the labels are
    decoded from the same probabilities ``predict_proba`` returns (as ``predict`` does).
    """
    classes = predictor.classes_
    unseen = predictor.unseen_categories(table)
    if predictor.problem_type_ == "regression":
        values = predictor.predict(table).tolist()
        return {"predictions": [json_safe(v) for v in values], "probabilities": None,
                "classes": None, "unseen_categories": unseen}
    proba = np.asarray(predictor.predict_proba(table), dtype=np.float64)  # (N, K)
    predictions = [json_safe(v) for v in predictor.transform_.decode_label(proba)]
    names = [str(c) for c in classes]
    probabilities = [dict(zip(names, (round(float(p), 6) for p in row), strict=True))
                     for row in proba]
    return {"predictions": predictions, "probabilities": probabilities,
            "classes": [json_safe(c) for c in classes], "unseen_categories": unseen}
