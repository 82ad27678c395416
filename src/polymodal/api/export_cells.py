"""Raw cells to arrays for a polymodal ONNX export: CSV reading, the cell rules (missing,
numbers with thousands separators, tags, timestamps), the number, date and hashed-text
encoders, image decoding, and the image features of the scikit-learn candidates.

This file is copied as ``cells.py`` beside ``runtime.py`` into every folder ``polymodal
export`` writes; ``runtime.py`` loads it from there. Like ``runtime.py`` it imports nothing
from polymodal (numpy; Pillow for image columns), and follows polymodal's transforms
(``polymodal/data/number_encoding.py``, ``category_encoding.py``, ``text.py``,
``image_encoding.py``, ``cells.py``; the flat features of ``models/classic.py``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
import zlib
from pathlib import Path

import numpy as np

UNKNOWN_INDEX, MISSING_INDEX = 0, 1
EDGE_BINS = 18
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_LEADING_UNIT = re.compile(r"^([+-]?)\s*[$€£¥₹]\s*")  # currency/percent signs, as polymodal
_TRAILING_UNIT = re.compile(r"(?<=\d)\s*[%$€£¥₹]$")  # drops them when it reads numbers
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

def read_csv(path) -> tuple[list[dict], str]:
    """The rows of a CSV file as dicts, and its folder (relative media paths start there).

    Like polymodal's reader, a column whose every filled cell is an integer holds ints,
    else one whose cells are all numbers holds floats; an empty cell is missing (None).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for column in (rows[0] if rows else {}):
        cells = [r[column] for r in rows if r[column] is not None and r[column].strip()]
        for kind in (int, float):
            try:
                [kind(c) for c in cells]
            except ValueError:
                continue
            for r in rows:
                text = r[column]
                r[column] = kind(text) if text is not None and text.strip() else None
            break
        else:
            for r in rows:
                if r[column] is not None and not r[column].strip():
                    r[column] = None
    return rows, str(Path(path).parent.absolute())


# ----------------------------------------------------------------------------- cells


def cell_missing(cell) -> bool:
    """None, NaN, blank strings and empty bytes are missing (polymodal's ``cell_missing``)."""
    if cell is None:
        return True
    if isinstance(cell, str):
        return not cell.strip()
    if isinstance(cell, float | np.floating):
        return bool(cell != cell)
    if isinstance(cell, bytes | bytearray):
        return len(cell) == 0
    return False


def category_key(cell) -> str | None:
    """A cell as a category string: 3, 3.0 and "3" are one category."""
    if cell_missing(cell):
        return None
    if isinstance(cell, np.generic):
        cell = cell.item()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, str):
        return cell.strip()
    return str(cell)


def cell_number(cell) -> float:
    """A cell as a float ("1,234" is 1234); NaN when missing, not a number or infinite."""
    if cell_missing(cell):
        return math.nan
    if isinstance(cell, bool | int | float | np.number):
        value = float(cell)
    else:
        text = _TRAILING_UNIT.sub("", _LEADING_UNIT.sub(r"\1", str(cell).strip()))
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        try:
            value = float(text)
        except ValueError:
            return math.nan
    return value if math.isfinite(value) else math.nan


def cell_tags(cell, delimiter: str | None) -> list[str]:
    """The sorted distinct tags of a multilabel cell (a list, a JSON list or a delimited string)."""
    if isinstance(cell, list | tuple | set | frozenset | np.ndarray):
        items = list(cell)
    elif cell_missing(cell):
        return []
    elif isinstance(cell, str):
        text, items = cell.strip(), None
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            items = parsed if isinstance(parsed, list) else None
        if items is None:
            items = text.split(delimiter) if delimiter else [text]
    else:
        items = [cell]
    return sorted({k for k in map(category_key, items) if k})


_NUMERIC_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _timestamp(cell, dayfirst: bool = False) -> dt.datetime | None:
    """An ISO date or datetime, or a numeric date such as 31/01/2024 (day first when the
    column was read so at fit, else month first), naive ones UTC; or None."""
    if cell_missing(cell):
        return None
    if isinstance(cell, dt.datetime):
        value = cell
    elif isinstance(cell, dt.date):
        value = dt.datetime(cell.year, cell.month, cell.day)
    else:
        text = str(cell).strip()
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            match = _NUMERIC_DATE.match(text)
            if match is None:
                return None
            first, second, year, hour, minute, second_s = (int(g or 0) for g in match.groups())
            day, month = (first, second) if dayfirst else (second, first)
            try:
                value = dt.datetime(year, month, day, hour, minute, second_s)
            except ValueError:
                return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


# ----------------------------------------------------------------------------- encoders


def encode_numeric(cells: list, stats: dict, clip: float) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([cell_number(c) for c in cells], dtype=np.float64)
    missing = np.isnan(values)
    filled = np.where(missing, stats["median"], values)
    scaled = np.clip((filled - stats["mean"]) / stats["std"], -clip, clip)
    return scaled.astype(np.float32), missing


def encode_datetime(cells: list, stats: dict, clip: float) -> tuple[np.ndarray, np.ndarray]:
    stamps = [_timestamp(c, bool(stats.get("dayfirst", False))) for c in cells]
    missing = np.array([s is None for s in stamps])
    days = np.array([math.nan if s is None else (s - _EPOCH).total_seconds() / 86400.0
                     for s in stamps])
    median_year = float(dt.datetime.fromtimestamp(stats["days_median"] * 86400.0,
                                                  tz=dt.UTC).year)
    utc = [None if s is None else s.astimezone(dt.UTC) for s in stamps]
    year = np.array([median_year if s is None else s.year for s in utc], dtype=np.float64)
    days = np.where(missing, stats["days_median"], days)
    columns = [np.clip((year - stats["year_mean"]) / stats["year_std"], -clip, clip),
               np.clip((days - stats["days_mean"]) / stats["days_std"], -clip, clip)]
    parts = {"month": [0.0 if s is None else s.month for s in utc],
             "dow": [0.0 if s is None else s.weekday() for s in utc],
             "hour": [0.0 if s is None else s.hour + s.minute / 60.0 for s in utc]}
    for name, period, offset in (("month", 12.0, 1.0), ("dow", 7.0, 0.0), ("hour", 24.0, 0.0)):
        angle = 2.0 * np.pi * (np.asarray(parts[name], dtype=np.float64) - offset) / period
        columns += [np.where(missing, 0.0, np.sin(angle)), np.where(missing, 0.0, np.cos(angle))]
    if stats["indicator"]:
        columns.append(missing.astype(np.float64))
    return np.stack(columns, axis=1).astype(np.float32), missing


def hashed_embedding(texts: list[str], dim: int) -> np.ndarray:
    """Word unigrams, bigrams and character 3-grams hashed with CRC32 into ``dim`` buckets,
    sublinear term frequency, L2-normalised (polymodal's ``hashed`` text encoder)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        counts: dict[int, int] = {}
        words = _WORD_RE.findall(text.lower())
        features = []
        for word in words:
            features.append("w:" + word)
            padded = f"<{word}>"
            features += ["c:" + padded[i:i + 3] for i in range(len(padded) - 2)]
        features += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feature in features:
            bucket = zlib.crc32(feature.encode("utf-8")) % dim
            counts[bucket] = counts.get(bucket, 0) + 1
        if not counts:
            continue
        buckets = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        values /= math.sqrt(float(np.sum(values * values)))
        out[row, buckets] = values.astype(np.float32)
    return out


def as_text(cell) -> str:
    if cell_missing(cell):
        return ""
    if isinstance(cell, bytes):
        return cell.decode("utf-8", errors="replace")
    return str(cell)


def decode_image(cell, base_dir, shape) -> tuple[np.ndarray, bool]:
    """One image cell (path, bytes, array or PIL image) as ((C, H, W) float32 in [-1, 1],
    present): resized to fit (bicubic, aspect kept), padded with black (-1), centred."""
    channels, height, width = shape
    empty = np.zeros((channels, height, width), dtype=np.float32)
    if cell_missing(cell):
        return empty, False
    try:
        img = _open_image(cell, base_dir, channels)
    except (OSError, ValueError):
        return empty, False
    from PIL import Image

    w, h = img.size
    scale = min(width / w, height / h)
    new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    pixels = np.asarray(img, dtype=np.uint8)
    pixels = (pixels[..., None] if pixels.ndim == 2 else pixels).transpose(2, 0, 1)
    scaled = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    out = np.full((channels, height, width), -1.0, dtype=np.float32)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[:, top:top + new_h, left:left + new_w] = scaled
    return out, True


def _open_image(cell, base_dir, channels: int):
    import io

    from PIL import Image, ImageOps

    if isinstance(cell, Image.Image):
        img = cell
    elif isinstance(cell, np.ndarray):
        arr = cell
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float64)
            if np.nanmax(arr) <= 1.0 + 1e-6 and np.nanmin(arr) >= 0.0:
                arr = arr * 255.0
            arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr)
    else:
        if isinstance(cell, bytes | bytearray):
            data = bytes(cell)
        else:
            path = Path(os.path.expanduser(str(cell)))
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            data = path.read_bytes()
        img = Image.open(io.BytesIO(data))
        img.load()
        if img.format in ("JPEG", "MPO", "TIFF", "WEBP") or "exif" in img.info:
            img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        img = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if img.mode in ("P", "PA") or (img.mode in ("L", "RGB") and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def adaptive_mean(images: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Adaptive average pooling of (B, C, H, W) to (B, C, out_h, out_w), as torch bins it."""
    _, _, height, width = images.shape
    rows = []
    for i in range(out_h):
        top, bottom = (i * height) // out_h, -((-(i + 1) * height) // out_h)
        cols = []
        for j in range(out_w):
            left, right = (j * width) // out_w, -((-(j + 1) * width) // out_w)
            cols.append(images[:, :, top:bottom, left:right].mean(axis=(2, 3)))
        rows.append(np.stack(cols, axis=-1))
    return np.stack(rows, axis=-2).astype(np.float32)


def edge_statistics(images: np.ndarray) -> np.ndarray:
    """Histogram of Sobel gradient orientations (18 bins), its Fourier magnitudes and the
    mean gradient magnitude of each (B, C, H, W) image (polymodal's ``edge_statistics``)."""
    gray = images.astype(np.float32).mean(axis=1)  # (B, H, W)
    padded = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    height, width = gray.shape[1:]
    sobel = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=np.float32)
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    for a in range(3):
        for b in range(3):
            window = padded[:, a:a + height, b:b + width]
            gx += sobel[a, b] * window
            gy += sobel.T[a, b] * window
    gx, gy = gx.reshape(len(images), -1), gy.reshape(len(images), -1)
    magnitude = np.sqrt(gx * gx + gy * gy)
    angle = np.mod(np.arctan2(gy, gx), np.float32(math.pi))
    bins = np.minimum((angle / np.float32(math.pi) * EDGE_BINS).astype(np.int64), EDGE_BINS - 1)
    histogram = np.zeros((len(images), EDGE_BINS), dtype=np.float32)
    for row in range(len(images)):  # float32 sums in pixel order, as torch's scatter_add
        np.add.at(histogram[row], bins[row], magnitude[row])
    histogram = histogram / np.maximum(histogram.sum(axis=1, keepdims=True), np.float32(1e-6))
    spectrum = np.abs(np.fft.rfft(histogram, axis=1))[:, 1:]
    return np.concatenate([histogram, spectrum, magnitude.mean(axis=1, keepdims=True)],
                          axis=1).astype(np.float32)
