"""Score rows and sample images from a polymodal ONNX export, with onnxruntime and numpy.

This file is copied as ``runtime.py`` into every folder ``polymodal export`` writes, and
it imports nothing from polymodal (``cells.py`` beside it turns raw cells into arrays;
``minilm.py`` embeds MiniLM text): a service that deploys the export needs ``numpy``,
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

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort


def _beside(name: str, *files: str):
    """The module shipped beside this file as the first of ``files`` found (``cells.py``
    in an export; ``export_cells.py`` in polymodal's source), loaded by path: an export
    folder is not a package."""
    folder = Path(__file__).resolve().parent
    path = next(folder / f for f in files if (folder / f).is_file())
    module_spec = importlib.util.spec_from_file_location(f"polymodal_export_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


cells = _beside("cells", "cells.py", "export_cells.py")
read_csv = cells.read_csv  # rows and their folder from a CSV file, for predict_proba
SPEC_FILE = "preprocess.json"


def load(folder, threads: int | None = None):
    """The :class:`Predictor` or :class:`Generator` exported into ``folder``; ``threads``:
    onnxruntime's threads per call (None: its default, one per core)."""
    spec = json.loads((Path(folder) / SPEC_FILE).read_text())
    return (Predictor if spec["kind"] == "predictor" else Generator)(folder, threads)


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
            parts.append(cells.hashed_embedding(texts, entry["dim"]))
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def encode(self, rows: list[dict], base_dir=None) -> dict[str, np.ndarray]:
        s, n = self.spec, len(rows)

        def column(entry: dict) -> list:
            return [r.get(entry["column"]) for r in rows]

        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        scaled, indicators, dated = [], [], []
        for entry in s["numeric"]:
            values, missing = cells.encode_numeric(column(entry), entry, self.clip)
            scaled.append(values[:, None])
            if entry["indicator"]:
                indicators.append(missing[:, None].astype(np.float32))
            masks[entry["column"]] = ~missing
        for entry in s["datetime"]:
            features, missing = cells.encode_datetime(column(entry), entry, self.clip)
            dated.append(features)
            masks[entry["column"]] = ~missing
        blocks = scaled + indicators + dated
        if blocks:
            arrays["numeric"] = np.concatenate(blocks, axis=1).astype(np.float32)
        if s["categorical"]:
            columns = []
            for entry in s["categorical"]:
                lookup = {k: i + 2 for i, k in enumerate(entry["vocabulary"])}
                keys = [cells.category_key(c) for c in column(entry)]
                index = np.array([cells.MISSING_INDEX if k is None
                                  else lookup.get(k, cells.UNKNOWN_INDEX) for k in keys],
                                 dtype=np.int64)
                columns.append(index)
                masks[entry["column"]] = index != cells.MISSING_INDEX
            arrays["categorical"] = np.stack(columns, axis=1)
        if s["multilabel"]:
            parts = []
            for entry in s["multilabel"]:
                lookup = {t: i for i, t in enumerate(entry["tags"])}
                hot = np.zeros((n, len(lookup)), dtype=np.float32)
                for row, cell in enumerate(column(entry)):
                    for tag in cells.cell_tags(cell, entry["delimiter"]):
                        if tag in lookup:
                            hot[row, lookup[tag]] = 1.0
                parts.append(hot)
                masks[entry["column"]] = np.array([not cells.cell_missing(c)
                                                   for c in column(entry)])
            arrays["multilabel"] = np.concatenate(parts, axis=1)
        for entry in s["text"]:
            texts = column(entry)
            present = np.array([not cells.cell_missing(c) for c in texts])
            embedded = self.embed_text([cells.as_text(c) for c in texts], entry)
            embedded[~present] = 0.0
            arrays[entry["input"]] = embedded
            masks[entry["column"]] = present
        for entry in s["image"]:
            decoded = [cells.decode_image(c, base_dir, entry["shape"]) for c in column(entry)]
            shape = (0, *entry["shape"])
            arrays[entry["input"]] = (np.stack([d[0] for d in decoded]) if decoded
                                      else np.zeros(shape, dtype=np.float32))
            masks[entry["column"]] = np.array([d[1] for d in decoded], dtype=bool)
        for name_of, name in s["mask_inputs"].items():
            arrays[name] = masks[name_of].astype(bool)
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
            pooled = cells.adaptive_mean(images, min(height, 16), min(width, 16)).reshape(n, -1)
            parts += [pooled, cells.edge_statistics(images), present]
        return np.concatenate(parts, axis=1).astype(np.float32)


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
            given = {cells.category_key(r.get(entry["column"])) for r in rows} - {None}
            unseen = sorted(given - set(entry["vocabulary"]))
            if entry["column"] in self.spec["condition"]["columns"] and unseen:
                raise ValueError(f"condition {entry['column']}={unseen[0]!r} is a class the "
                                 f"model never saw; known classes: {entry['vocabulary']}")
        arrays = self.encoder.encode(rows, os.getcwd())
        return np.asarray(_run(self.condition, arrays), dtype=np.float32)

    def velocity(self, x: np.ndarray, t: float, cond, guidance: float, interval,
                 condition_from: float = 1.0) -> np.ndarray:
        """Classifier-free guided velocity (Ho & Salimans 2022, Eq. 6) inside ``interval``;
        above ``condition_from`` the null condition alone (condition-annealed sampling)."""
        times = np.full((x.shape[0],), t, dtype=np.float32)
        t = float(times[0])  # compared as polymodal compares it: 0.8 reads 0.80000001
        if cond is not None and t > condition_from + 1e-6:
            return self._unet(x, times, np.zeros_like(cond))
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
        # Exports written before condition-annealed sampling conditioned every step.
        condition_from = float(defaults.get("condition_from", 1.0))
        shape = self.spec["image_shape"]
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)
        cond = self.condition_vectors(n, conditions)
        chunks = []
        for start in range(0, n, batch_size):
            c = None if cond is None else cond[start:start + batch_size]
            x = noise[start:start + batch_size].astype(np.float32)
            chunks.append(self._integrate(x, c, num_steps, guidance, sampler, interval,
                                          defaults["shift"], condition_from))
        x = np.concatenate(chunks)
        pixels = np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
        return pixels.transpose(0, 2, 3, 1)  # (n, H, W, C)

    def _integrate(self, x, cond, num_steps, guidance, sampler, interval, shift,
                   condition_from: float = 1.0) -> np.ndarray:
        """Euler or Heun steps from t = 1 to 0 (Karras et al. 2022, Algorithm 1), or
        two-step Adams-Bashforth ("ab2": the previous step's velocity instead of Heun's
        second evaluation)."""
        if sampler not in ("euler", "heun", "ab2"):
            raise ValueError(f"sampler={sampler!r} is not known; use 'heun', 'ab2' or 'euler'")
        ts = time_steps(num_steps, shift)
        v_prev, h_prev = None, None
        for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
            h = t_next - t_cur
            v = self.velocity(x, t_cur, cond, guidance, interval, condition_from)
            x_next = x + np.float32(h) * v
            if sampler == "heun" and t_next > 0:
                v_next = self.velocity(x_next, t_next, cond, guidance, interval, condition_from)
                x_next = x + np.float32(h) * np.float32(0.5) * (v + v_next)
            elif sampler == "ab2" and v_prev is not None:
                r = h / h_prev
                x_next = x + np.float32(h) * (np.float32(1 + 0.5 * r) * v
                                              - np.float32(0.5 * r) * v_prev)
            v_prev, h_prev = v, h
            x = x_next
        return x
