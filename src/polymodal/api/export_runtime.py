"""Score rows and sample images from a polymodal ONNX export, with onnxruntime and numpy.

This file is copied as ``runtime.py`` into every folder ``polymodal export`` writes, and
it imports nothing from polymodal: a service that deploys the export needs ``numpy``,
``onnxruntime`` and, for image columns, ``Pillow``. It reads ``preprocess.json`` (the
frozen transforms: medians, means and standard deviations, vocabularies, tag lists,
text hashing, image sizes; the README beside it documents every field) and turns raw
rows into the ONNX graphs' inputs exactly as polymodal's transforms do
(``polymodal/data/number_encoding.py``, ``category_encoding.py``, ``text.py``,
``image_encoding.py``, ``cells.py``; the flat features of ``models/classic.py``; the
samplers of ``models/samplers.py``). The export's parity tests hold the two to the same
outputs. Usage::

    import runtime
    model = runtime.load("EXPORT_DIR")
    model.predict_proba([{"price": 9.5, "color": "red"}])    # a predictor
    model.sample(8, conditions={"label": 3}, seed=0)          # a generator
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
import onnxruntime as ort

SPEC_FILE = "preprocess.json"
UNKNOWN_INDEX, MISSING_INDEX = 0, 1
EDGE_BINS = 18
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def load(folder, threads: int | None = None):
    """The :class:`Predictor` or :class:`Generator` exported into ``folder``; ``threads``:
    onnxruntime's threads per call (None: its default, one per core)."""
    spec = json.loads((Path(folder) / SPEC_FILE).read_text())
    return (Predictor if spec["kind"] == "predictor" else Generator)(folder, threads)


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
        text = str(cell).strip()
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


def _timestamp(cell) -> dt.datetime | None:
    """An ISO date or datetime (naive ones are UTC), or None."""
    if cell_missing(cell):
        return None
    if isinstance(cell, dt.datetime):
        value = cell
    elif isinstance(cell, dt.date):
        value = dt.datetime(cell.year, cell.month, cell.day)
    else:
        try:
            value = dt.datetime.fromisoformat(str(cell).strip())
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
    stamps = [_timestamp(c) for c in cells]
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


def _as_text(cell) -> str:
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


# ----------------------------------------------------------------------------- rows


class RowEncoder:
    """Raw rows -> the named arrays the ONNX graphs take (see README.md, 'Inputs')."""

    def __init__(self, spec: dict, folder=None, threads: int | None = None):
        self.spec = spec
        self.clip = float(spec["numeric_clip"])
        self.folder, self.threads, self._minilm = folder, threads, None

    def embed_text(self, texts: list[str], entry: dict) -> np.ndarray:
        """A text column's vectors: hashed n-grams, MiniLM (``minilm.py`` beside this file),
        or both side by side (``minilm+hashed``), as polymodal's ``text_encoder``."""
        parts = []
        if entry["kind"] in ("minilm", "minilm+hashed"):
            if self._minilm is None:
                self._minilm = _import_minilm(self.folder).MiniLM(
                    self.folder, entry["minilm"]["max_length"], self.threads)
            parts.append(self._minilm.embed(texts))
        if entry["kind"] in ("hashed", "minilm+hashed"):
            parts.append(hashed_embedding(texts, entry["dim"]))
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def encode(self, rows: list[dict], base_dir=None) -> dict[str, np.ndarray]:
        s, n = self.spec, len(rows)

        def cells(column: str) -> list:
            return [r.get(column) for r in rows]

        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        scaled, indicators, dated = [], [], []
        for entry in s["numeric"]:
            values, missing = encode_numeric(cells(entry["column"]), entry, self.clip)
            scaled.append(values[:, None])
            if entry["indicator"]:
                indicators.append(missing[:, None].astype(np.float32))
            masks[entry["column"]] = ~missing
        for entry in s["datetime"]:
            features, missing = encode_datetime(cells(entry["column"]), entry, self.clip)
            dated.append(features)
            masks[entry["column"]] = ~missing
        blocks = scaled + indicators + dated
        if blocks:
            arrays["numeric"] = np.concatenate(blocks, axis=1).astype(np.float32)
        if s["categorical"]:
            columns = []
            for entry in s["categorical"]:
                lookup = {k: i + 2 for i, k in enumerate(entry["vocabulary"])}
                keys = [category_key(c) for c in cells(entry["column"])]
                index = np.array([MISSING_INDEX if k is None else lookup.get(k, UNKNOWN_INDEX)
                                  for k in keys], dtype=np.int64)
                columns.append(index)
                masks[entry["column"]] = index != MISSING_INDEX
            arrays["categorical"] = np.stack(columns, axis=1)
        if s["multilabel"]:
            parts = []
            for entry in s["multilabel"]:
                lookup = {t: i for i, t in enumerate(entry["tags"])}
                hot = np.zeros((n, len(lookup)), dtype=np.float32)
                for row, cell in enumerate(cells(entry["column"])):
                    for tag in cell_tags(cell, entry["delimiter"]):
                        if tag in lookup:
                            hot[row, lookup[tag]] = 1.0
                parts.append(hot)
                masks[entry["column"]] = np.array([not cell_missing(c)
                                                   for c in cells(entry["column"])])
            arrays["multilabel"] = np.concatenate(parts, axis=1)
        for entry in s["text"]:
            column = cells(entry["column"])
            present = np.array([not cell_missing(c) for c in column])
            embedded = self.embed_text([_as_text(c) for c in column], entry)
            embedded[~present] = 0.0
            arrays[entry["input"]] = embedded
            masks[entry["column"]] = present
        for entry in s["image"]:
            decoded = [decode_image(c, base_dir, entry["shape"]) for c in cells(entry["column"])]
            shape = (0, *entry["shape"])
            arrays[entry["input"]] = (np.stack([d[0] for d in decoded]) if decoded
                                      else np.zeros(shape, dtype=np.float32))
            masks[entry["column"]] = np.array([d[1] for d in decoded], dtype=bool)
        for column, name in s["mask_inputs"].items():
            arrays[name] = masks[column].astype(bool)
        return arrays

    def flat_features(self, arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
        """The classic models' (N, F) float32 features (polymodal's ``flat_features``)."""
        s, parts = self.spec, []
        if "numeric" in arrays:
            parts.append(arrays["numeric"])
        if "categorical" in arrays:
            codes = arrays["categorical"]
            parts.append(codes.astype(np.float32))
            for j, entry in enumerate(s["categorical"]):
                if entry.get("numbers") is not None:
                    numbers = np.array([np.nan if v is None else v for v in entry["numbers"]],
                                       dtype=np.float32)
                    parts.append(numbers[codes[:, j]][:, None])
        if "multilabel" in arrays:
            parts.append(arrays["multilabel"])
        for entry in s["text"]:
            present = arrays[s["mask_inputs"][entry["column"]]].astype(np.float32)[:, None]
            parts += [arrays[entry["input"]], present]
        for entry in s["image"]:
            images = arrays[entry["input"]]
            _, height, width = entry["shape"]
            present = arrays[s["mask_inputs"][entry["column"]]].astype(np.float32)[:, None]
            pooled = _adaptive_mean(images, min(height, 16), min(width, 16)).reshape(n, -1)
            parts += [pooled, edge_statistics(images), present]
        return np.concatenate(parts, axis=1).astype(np.float32)


def _adaptive_mean(images: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
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


def _import_minilm(folder):
    """The ``minilm.py`` an export with MiniLM text ships beside this file."""
    import importlib.util

    path = Path(folder) / "minilm.py"
    module_spec = importlib.util.spec_from_file_location("polymodal_export_minilm", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = options.inter_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, arrays: dict[str, np.ndarray]) -> np.ndarray:
    wanted = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in arrays.items() if k in wanted})[0]


def _rows(rows) -> tuple[list[dict], str | None]:
    """Rows as dicts from a list of dicts, a CSV path or a pandas DataFrame."""
    if isinstance(rows, str | os.PathLike):
        return read_csv(rows)
    if hasattr(rows, "to_dict"):  # a DataFrame; media paths resolve against its base_dir
        return rows.to_dict("records"), getattr(rows, "attrs", {}).get("base_dir")
    if isinstance(rows, dict):
        return [rows], None
    return list(rows), None


# ----------------------------------------------------------------------------- predictor


class Predictor:
    """An exported predictor: ``predict_proba`` / ``predict`` on raw rows."""

    def __init__(self, folder, threads: int | None = None):
        self.folder = Path(folder)
        self.spec = json.loads((self.folder / SPEC_FILE).read_text())
        self.encoder = RowEncoder(self.spec, self.folder, threads)
        self.sessions = {name: _session(self.folder / m["file"], threads)
                         for name, m in self.spec["models"].items()}

    @property
    def classes(self) -> list | None:
        return self.spec["label"].get("classes")

    def outputs(self, rows, base_dir=None) -> np.ndarray:
        """The model's outputs: (N, K) probabilities, or (N,) values in the label's units."""
        rows, found_dir = _rows(rows)
        arrays = self.encoder.encode(rows, base_dir or found_dir)
        flat = None
        mixed, total = None, 0.0
        for name, weight in self.spec["weights"].items():
            model = self.spec["models"][name]
            if model["input"] == "flat":
                flat = self.encoder.flat_features(arrays, len(rows)) if flat is None else flat
                x = flat
                if "standardise" in model:  # in float32, dividing, as scikit-learn does
                    scaler = model["standardise"]
                    x = x - np.asarray(scaler["mean"], dtype=np.float32)
                    x = x / np.asarray(scaler["scale"], dtype=np.float32)
                out = np.asarray(_run(self.sessions[name], {"flat": x}), dtype=np.float64)
                if "class_index" in model:  # classes the model saw -> all classes
                    full = np.zeros((len(rows), model["n_outputs"]))
                    full[:, model["class_index"]] = out
                    out = full
            else:
                out = np.asarray(_run(self.sessions[name], arrays), dtype=np.float64)
            regression = self.spec["label"]["problem_type"] == "regression"
            out = out.reshape(-1) if regression else out.reshape(len(rows), -1)
            mixed = weight * out if mixed is None else mixed + weight * out
            total += weight
        values = mixed / total
        label = self.spec["label"]
        if label["problem_type"] == "regression":
            return values.reshape(-1) * label["std"] + label["mean"]
        return values

    def predict_proba(self, rows, base_dir=None) -> np.ndarray:
        return self.outputs(rows, base_dir)

    def predict(self, rows, base_dir=None, threshold: float = 0.5) -> list:
        """Labels as in the training table (a list of tags per row for multilabel)."""
        values = self.outputs(rows, base_dir)
        label = self.spec["label"]
        if label["problem_type"] == "regression":
            return values.tolist()
        classes = label["classes"]
        if label["problem_type"] == "multilabel":
            return [[t for t, p in zip(classes, row, strict=True) if p > threshold]
                    for row in values]
        if label["problem_type"] == "binary":
            return [classes[1] if p > threshold else classes[0] for p in values[:, 1]]
        return [classes[i] for i in values.argmax(axis=1)]


# ----------------------------------------------------------------------------- generator


def time_steps(num_steps: int, shift: float = 1.0) -> list[float]:
    """``num_steps + 1`` times from 1 (noise) to 0 (data), warped by ``shift``."""
    u = [1 - i / num_steps for i in range(num_steps + 1)]
    return [shift * ui / (1 + (shift - 1) * ui) for ui in u]


class Generator:
    """An exported generator: ``sample`` integrates the flow with the exported UNet."""

    def __init__(self, folder, threads: int | None = None):
        self.folder = Path(folder)
        self.spec = json.loads((self.folder / SPEC_FILE).read_text())
        self.encoder = RowEncoder(self.spec, self.folder, threads)
        self.unet = _session(self.folder / self.spec["unet"]["file"], threads)
        condition = self.spec["condition"]
        self.condition = (None if condition is None
                          else _session(self.folder / condition["file"], threads))

    def condition_vectors(self, n: int, conditions: dict | None) -> np.ndarray | None:
        """(n, D) condition vectors; columns not given are the null condition."""
        if self.condition is None:
            return None
        rows = [{} for _ in range(n)]
        for column, value in (conditions or {}).items():
            if column not in self.spec["condition"]["columns"]:
                raise ValueError(f"unknown condition column {column!r}; this generator takes "
                                 f"{self.spec['condition']['columns']}")
            values = list(value) if isinstance(value, list | tuple | np.ndarray) else [value]
            if n % len(values):
                raise ValueError(f"conditions[{column!r}] has {len(values)} values for n={n}; "
                                 "give 1, n, or k values with k dividing n")
            for i in range(n):
                rows[i][column] = values[i // (n // len(values))]
        for entry in self.spec["categorical"]:  # as polymodal: an unseen class is an error
            given = {category_key(r.get(entry["column"])) for r in rows} - {None}
            unseen = sorted(given - set(entry["vocabulary"]))
            if entry["column"] in self.spec["condition"]["columns"] and unseen:
                raise ValueError(f"condition {entry['column']}={unseen[0]!r} is a class the "
                                 f"model never saw; known classes: {entry['vocabulary']}")
        arrays = self.encoder.encode(rows, os.getcwd())
        return np.asarray(_run(self.condition, arrays), dtype=np.float32)

    def velocity(self, x: np.ndarray, t: float, cond, guidance: float, interval) -> np.ndarray:
        """Classifier-free guided velocity (Ho & Salimans 2022, Eq. 6) inside ``interval``."""
        times = np.full((x.shape[0],), t, dtype=np.float32)
        if cond is None or guidance == 1.0 or not interval[0] <= t <= interval[1]:
            return self._unet(x, times, cond)
        both = self._unet(np.concatenate([x, x]), np.concatenate([times, times]),
                          np.concatenate([cond, np.zeros_like(cond)]))
        v_cond, v_uncond = both[:len(x)], both[len(x):]
        return v_uncond + guidance * (v_cond - v_uncond)

    def _unet(self, x, t, cond) -> np.ndarray:
        feeds = {"x": x.astype(np.float32), "t": t.astype(np.float32)}
        if cond is not None:
            feeds["cond"] = cond.astype(np.float32)
        return _run(self.unet, feeds)

    def sample(self, n: int = 16, *, conditions: dict | None = None, num_steps: int | None = None,
               guidance: float | None = None, sampler: str | None = None, seed: int = 0,
               noise: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """``n`` images as uint8 (n, H, W, C). ``noise`` (n, C, H, W) replaces the seeded
        draw: polymodal draws it with torch, so pass torch's noise to reproduce an image."""
        defaults = self.spec["sampling"]
        num_steps = defaults["num_steps"] if num_steps is None else num_steps
        guidance = defaults["guidance"] if guidance is None else guidance
        sampler = defaults["sampler"] if sampler is None else sampler
        interval = tuple(defaults["guidance_interval"])
        shape = self.spec["image_shape"]
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)
        cond = self.condition_vectors(n, conditions)
        chunks = []
        for start in range(0, n, batch_size):
            c = None if cond is None else cond[start:start + batch_size]
            x = noise[start:start + batch_size].astype(np.float32)
            chunks.append(self._integrate(x, c, num_steps, guidance, sampler, interval,
                                          defaults["shift"]))
        x = np.concatenate(chunks)
        pixels = np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
        return pixels.transpose(0, 2, 3, 1)  # (n, H, W, C)

    def _integrate(self, x, cond, num_steps, guidance, sampler, interval, shift) -> np.ndarray:
        """Euler or Heun steps from t = 1 to 0 (Karras et al. 2022, Algorithm 1)."""
        ts = time_steps(num_steps, shift)
        for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
            v = self.velocity(x, t_cur, cond, guidance, interval)
            x_next = x + np.float32(t_next - t_cur) * v
            if sampler == "heun" and t_next > 0:
                v_next = self.velocity(x_next, t_next, cond, guidance, interval)
                x_next = x + np.float32(t_next - t_cur) * np.float32(0.5) * (v + v_next)
            x = x_next
        return x
