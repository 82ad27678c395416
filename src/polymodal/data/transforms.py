"""Per-modality transforms: fitted on training rows only, then frozen and saved.

:class:`TableTransform` turns the columns of a table into the tensors of a
:class:`~polymodal.data.batch.Batch`. ``fit`` learns everything that depends on data —
numeric medians and scales, category vocabularies, tag vocabularies, image size and
channels, audio length and log-mel statistics, the label encoding — from the rows it is
given, which must be the training rows only (anything learned from test rows leaks).
After ``fit`` nothing changes: ``encode`` applies the frozen state, and ``save``/``load``
round-trip it through JSON so a loaded transform gives bit-identical tensors.

Small per-row features (numbers, categories, tags, text embeddings, the label) are
computed eagerly by ``encode``; image and audio cells stay references (paths, bytes,
arrays) and are decoded one at a time by :meth:`TableTransform.image_tensor` and
:meth:`TableTransform.audio_tensor`, so memory does not grow with the table.

Conventions (see ``batch.py``): categorical index 0 = unknown, 1 = missing; image pixels
in [-1, 1], padding -1 (black); absent or unreadable media give zeros and ``present=False``;
a regression label is standardised with the training mean/std (``inverse_label`` undoes it).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from polymodal.data.media import image_to_array, load_audio, load_image
from polymodal.data.schema import MODALITIES, PROBLEM_TYPES, Schema, column_numbers
from polymodal.data.text import TEXT_KINDS, TextEmbedder
from polymodal.errors import ConfigError, DataError, ModelFolderError, NotFittedError, SchemaError
from polymodal.files import write_text

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TRANSFORM_FILE = "transform.json"

UNKNOWN_INDEX = 0  # a category not seen at fit time
MISSING_INDEX = 1  # an empty cell
# Beyond this many distinct values a column is closer to an identifier than a category;
# the rarest values share the unknown bucket instead of each getting an embedding row.
MAX_CATEGORIES = 10_000
# Standardised numbers are clipped so one wild value at predict time cannot saturate a model.
NUMERIC_CLIP = 10.0

# Image size inference: small enough for a 2-core CPU, large enough to see something.
MAX_IMAGE_SIZE = 64
MIN_IMAGE_SIZE = 8
IMAGE_SAMPLE = 64  # images decoded at fit time to choose size and channels
AUGMENT_DEFAULTS = {"hflip": False, "shift_px": 2, "rotate_deg": 0.0}
AUGMENT_DRAWS = 4  # uniforms one image's augmentation reads (see TableTransform.augment_with)

MAX_AUDIO_DURATION_S = 5.0
MIN_AUDIO_DURATION_S = 0.1
AUDIO_SAMPLE = 32  # clips decoded at fit time to choose the length and log-mel statistics
AUDIO_WINDOW_S = 0.025  # 25 ms analysis window, 10 ms hop: the usual speech front end
AUDIO_HOP_S = 0.010
LOG_MEL_EPS = 1e-6

DATETIME_FEATURES = (
    "year",
    "days",
    "month_sin",
    "month_cos",
    "dow_sin",
    "dow_cos",
    "hour_sin",
    "hour_cos",
)
_EPOCH = pd.Timestamp(0, tz="UTC")

_SUPPORTED = {"numeric", "categorical", "multilabel", "datetime", "text", "image", "audio"}
_OPTIONAL_MODALITIES = {"image", "audio", "text"}  # may be absent at predict time if allowed
# A cell that cannot be decoded. Deliberately broad: a corrupt file can make Pillow or
# soundfile raise almost anything (struct.error, IndexError, ...), and one bad cell must
# mark that cell absent rather than stop training.
_MEDIA_ERRORS = (Exception,)


@dataclass
class EncodedTable:
    """A table after :meth:`TableTransform.encode`: small features computed, media referenced.

    Row ``i`` of every array is row ``i`` (by position) of the encoded DataFrame.
    """

    n_rows: int
    numeric: np.ndarray | None = None  # (N, F_num) float32
    categorical: np.ndarray | None = None  # (N, F_cat) int64
    multilabel: np.ndarray | None = None  # (N, F_tags) float32
    text: dict[str, np.ndarray] = field(default_factory=dict)  # {col: (N, D) float32}
    image: dict[str, np.ndarray] = field(default_factory=dict)  # {col: (N,) object cells}
    audio: dict[str, np.ndarray] = field(default_factory=dict)  # {col: (N,) object cells}
    # {col: (N,) bool}. For image/audio columns: the cell is not empty; whether it decodes
    # is only known when it is decoded.
    mask: dict[str, np.ndarray] = field(default_factory=dict)
    # (N,) int64 class index (-1 = missing or a class unseen at fit), (N,) float32
    # standardised target (NaN = missing), or (N, K) float32 multi-hot; None without label.
    label: np.ndarray | None = None
    label_present: np.ndarray | None = None  # (N,) bool
    base_dir: str | None = None  # folder relative media paths resolve against


class TableTransform:
    """Fit on training rows, then turn any table with the same columns into tensors.

    Args:
        schema: column modalities and the label (see :mod:`polymodal.data.schema`).
        image_size: side of the square images; ``None`` chooses it at fit time (median
            side of sampled images, rounded to a multiple of 4, between 8 and 64).
        image_channels: 1 or 3; ``None`` chooses 1 when most sampled images are grey.
        text_encoder: ``"auto"``, ``"minilm"``, ``"hashed"`` or ``"minilm+hashed"`` (see
            :mod:`polymodal.data.text`).
        audio_sample_rate: rate every clip is resampled to, in Hz.
        n_mels: mel bands of the log-mel spectrogram.
        audio_duration_s: clip length; ``None`` uses the median at fit time (at most 5 s).
        augment: ``None`` for no augmentation, or a dict with any of ``hflip`` (bool),
            ``shift_px`` (int), ``rotate_deg`` (float); missing keys take
            ``AUGMENT_DEFAULTS`` (no flips unless asked: flipping changes digits and text).
        cache_dir: text-embedding cache folder (default ``~/.cache/polymodal/text``).
    """

    def __init__(
        self,
        schema: Schema,
        *,
        image_size: int | None = None,
        image_channels: int | None = None,
        text_encoder: str = "auto",
        audio_sample_rate: int = 16000,
        n_mels: int = 64,
        audio_duration_s: float | None = None,
        augment: dict | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        self.schema = schema
        self.image_size = image_size
        self.image_channels = image_channels
        self.text_encoder = text_encoder
        self.audio_sample_rate = audio_sample_rate
        self.n_mels = n_mels
        self.audio_duration_s = audio_duration_s
        self.augment = augment
        self.cache_dir = cache_dir
        self._validate_config()

    # ------------------------------------------------------------------ configuration

    def _validate_config(self) -> None:
        """Check every argument once and report all problems in one error."""
        problems = []
        if not isinstance(self.schema, Schema):
            problems.append(f"schema must be a polymodal Schema, got {type(self.schema).__name__}")
        else:
            for name in self.schema.features():
                modality = self.schema.modality(name)
                if modality not in _SUPPORTED:
                    problems.append(
                        f"column {name!r} has modality {modality!r}; transforms support "
                        f"{sorted(_SUPPORTED)} (or 'ignored')"
                    )
            if self.schema.problem_type not in (None, *PROBLEM_TYPES):
                problems.append(
                    f"schema.problem_type={self.schema.problem_type!r} is not one of {PROBLEM_TYPES}"
                )
        if self.image_size is not None and (
            not isinstance(self.image_size, int) or self.image_size < MIN_IMAGE_SIZE
        ):
            problems.append(
                f"image_size={self.image_size!r} must be an integer >= {MIN_IMAGE_SIZE}, or None to infer it"
            )
        if self.image_channels not in (None, 1, 3):
            problems.append(f"image_channels={self.image_channels!r} must be 1, 3 or None")
        if self.text_encoder not in TEXT_KINDS:
            problems.append(f"text_encoder={self.text_encoder!r} must be one of {TEXT_KINDS}")
        if not isinstance(self.audio_sample_rate, int) or self.audio_sample_rate < 1000:
            problems.append(
                f"audio_sample_rate={self.audio_sample_rate!r} must be an integer >= 1000 Hz, e.g. 16000"
            )
        if not isinstance(self.n_mels, int) or not 8 <= self.n_mels <= 256:
            problems.append(f"n_mels={self.n_mels!r} must be an integer between 8 and 256, e.g. 64")
        if self.audio_duration_s is not None and not (
            isinstance(self.audio_duration_s, int | float)
            and self.audio_duration_s >= MIN_AUDIO_DURATION_S
        ):
            problems.append(
                f"audio_duration_s={self.audio_duration_s!r} must be >= {MIN_AUDIO_DURATION_S} s, or None"
            )
        if self.augment is not None:
            if not isinstance(self.augment, dict):
                problems.append(
                    f"augment must be None or a dict like {AUGMENT_DEFAULTS}, got {self.augment!r}"
                )
            else:
                unknown = sorted(set(self.augment) - set(AUGMENT_DEFAULTS))
                if unknown:
                    problems.append(
                        f"unknown augment keys {unknown}; known keys are {sorted(AUGMENT_DEFAULTS)}"
                    )
                shift = self.augment.get("shift_px", 0)
                if not isinstance(shift, int) or shift < 0:
                    problems.append(f"augment['shift_px']={shift!r} must be a non-negative integer")
                angle = self.augment.get("rotate_deg", 0.0)
                if not isinstance(angle, int | float) or not 0 <= angle <= 180:
                    problems.append(f"augment['rotate_deg']={angle!r} must be between 0 and 180")
        if problems:
            raise ConfigError("TableTransform: " + "; ".join(problems))

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able), except the schema and cache_dir."""
        return {
            "image_size": self.image_size,
            "image_channels": self.image_channels,
            "text_encoder": self.text_encoder,
            "audio_sample_rate": self.audio_sample_rate,
            "n_mels": self.n_mels,
            "audio_duration_s": self.audio_duration_s,
            "augment": self.augment,
        }

    @property
    def augment_(self) -> dict | None:
        """The augmentation settings with defaults filled in, or None."""
        return None if self.augment is None else {**AUGMENT_DEFAULTS, **self.augment}

    # ------------------------------------------------------------------ fit

    def fit(self, df: pd.DataFrame) -> TableTransform:
        """Learn every data-dependent setting from ``df`` — the training rows only."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"fit expects a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise DataError("fit got a table with 0 rows; pass the training rows")
        self._check_columns(df, allow_missing_columns=False)
        base_dir = df.attrs.get("base_dir")
        schema = self.schema
        self.notes_: list[str] = []

        self.numeric_stats_ = {c: _fit_numeric(df[c]) for c in schema.by_modality("numeric")}
        self.datetime_stats_ = {c: _fit_datetime(df[c]) for c in schema.by_modality("datetime")}
        self.vocab_ = {c: _fit_vocab(df[c]) for c in schema.by_modality("categorical")}
        self.tag_vocab_ = {
            c: _fit_tags(df[c], delimiter=schema.columns[c].delimiter)
            for c in schema.by_modality("multilabel")
        }

        self.text_embedder_ = None
        if schema.by_modality("text"):
            self.text_embedder_ = TextEmbedder(self.text_encoder, cache_dir=self.cache_dir)
            self.notes_.append(
                f"text columns embedded with {self.text_embedder_.kind} ({self.text_embedder_.dim}-d)"
            )
        self.text_config_ = self.text_embedder_.to_config() if self.text_embedder_ else None

        self.image_shapes_ = {
            c: self._fit_image(c, df[c], base_dir) for c in schema.by_modality("image")
        }
        self.audio_stats_ = {
            c: self._fit_audio(c, df[c], base_dir) for c in schema.by_modality("audio")
        }
        self.label_ = self._fit_label(df) if schema.label is not None else None
        for note in self.notes_:
            logger.info(note)
        return self

    def _fit_image(self, column: str, cells: pd.Series, base_dir) -> list[int]:
        """Choose [C, H, W] for one image column from a sample of its cells."""
        sides, greys = [], []
        for cell in _sample_present(cells, IMAGE_SAMPLE):
            try:
                img = load_image(cell, base_dir)
            except _MEDIA_ERRORS:
                continue
            sides.append(max(img.size))
            greys.append(_is_grey(img))
        channels = self.image_channels
        if channels is None:
            channels = 1 if greys and 2 * sum(greys) > len(greys) else 3
            self.notes_.append(
                f"image column {column!r}: {channels} channel(s) ({sum(greys)} of {len(greys)} sampled images grey)"
            )
        size = self.image_size
        if size is None:
            if sides:
                median = float(np.median(sides))
                size = int(
                    min(MAX_IMAGE_SIZE, max(MIN_IMAGE_SIZE, 4 * math.floor(median / 4 + 0.5)))
                )
                self.notes_.append(
                    f"image column {column!r}: size {size}x{size} (median longer side {median:g} px of "
                    f"{len(sides)} sampled images, rounded to a multiple of 4, kept within "
                    f"{MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}; set image_size to change it)"
                )
            else:
                size = 32
                self.notes_.append(
                    f"image column {column!r}: no sampled image decoded; using size 32x32"
                )
        return [channels, size, size]

    def _fit_audio(self, column: str, cells: pd.Series, base_dir) -> dict:
        """Choose the clip length and log-mel mean/std for one audio column."""
        waves, durations = [], []
        for cell in _sample_present(cells, AUDIO_SAMPLE):
            try:
                wave, rate = load_audio(cell, base_dir)
            except _MEDIA_ERRORS:
                continue
            if len(wave) == 0:
                continue
            waves.append(self._resample(wave, rate))
            durations.append(len(wave) / rate)
        duration_s = self.audio_duration_s
        if duration_s is None:
            median = float(np.median(durations)) if durations else 1.0
            duration_s = min(MAX_AUDIO_DURATION_S, max(MIN_AUDIO_DURATION_S, median))
            self.notes_.append(
                f"audio column {column!r}: clips cut/padded to {duration_s:.3g} s (median of "
                f"{len(durations)} sampled clips, at most {MAX_AUDIO_DURATION_S:g} s)"
            )
        num_samples = int(round(duration_s * self.audio_sample_rate))
        stats = {"num_samples": num_samples, "mean": 0.0, "std": 1.0}
        if waves:
            log_mels = torch.stack([self._log_mel(_fit_length(w, num_samples)) for w in waves])
            std = float(log_mels.std())
            stats["mean"] = float(log_mels.mean())
            stats["std"] = std if std > 1e-6 else 1.0
        stats["num_frames"] = 1 + num_samples // self._hop_length
        return stats

    def _fit_label(self, df: pd.DataFrame) -> dict:
        """The label encoding: classes, tag vocabulary, or regression mean/std."""
        label, problem = self.schema.label, self.schema.problem_type
        if label not in df.columns:
            raise SchemaError(
                f"label column {label!r} is not in the training table; columns are {list(df.columns)}"
            )
        if problem is None:
            raise SchemaError(
                f"schema.problem_type is None for label {label!r}; set it to one of {PROBLEM_TYPES} "
                "(infer_schema does this)"
            )
        cells = df[label]
        if problem == "regression":
            values = _to_float(cells)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                raise DataError(
                    f"label column {label!r} has no numeric values in the training rows; regression needs numbers"
                )
            std = float(finite.std())
            return {
                "kind": "regression",
                "mean": float(finite.mean()),
                "std": std if std > 1e-12 else 1.0,
            }
        if problem == "multilabel":
            return {
                "kind": "multilabel",
                **_fit_tags(cells, cap=None, delimiter=self.schema.columns[label].delimiter),
            }
        classes = _sorted_classes(cells)
        if len(classes) < 2:
            raise DataError(
                f"label column {label!r} has {len(classes)} distinct value(s) {classes} in the training rows; "
                "a classifier needs at least two classes"
            )
        return {"kind": "classification", "classes": classes}

    # ------------------------------------------------------------------ encode

    def encode(
        self, df: pd.DataFrame, *, with_label: bool = True, allow_missing_columns: bool = False
    ) -> EncodedTable:
        """Compute the per-row features of ``df`` with the frozen state.

        The label is encoded when ``with_label`` and the table has the label column
        (a table to predict on may lack it). A missing feature column is a
        :class:`DataError`, except image/audio/text columns when
        ``allow_missing_columns=True``: those are then marked absent in every row.
        """
        self._check_fitted()
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"encode expects a pandas DataFrame, got {type(df).__name__}")
        absent = self._check_columns(df, allow_missing_columns=allow_missing_columns)
        n = len(df)
        none_cells = pd.Series([None] * n, index=df.index, dtype=object)

        def cells(column: str) -> pd.Series:
            return none_cells if column in absent else df[column]

        out = EncodedTable(n_rows=n, base_dir=df.attrs.get("base_dir"))
        # Batch.numeric is [scaled numbers | their missing indicators | datetime features].
        scaled_blocks, indicator_blocks, datetime_blocks = [], [], []
        for c, stats in self.numeric_stats_.items():
            scaled, missing = _encode_numeric(cells(c), stats)
            scaled_blocks.append(scaled[:, None])
            if stats["indicator"]:
                indicator_blocks.append(missing[:, None].astype(np.float32))
            out.mask[c] = ~missing
        for c, stats in self.datetime_stats_.items():
            features, missing = _encode_datetime(cells(c), stats)
            datetime_blocks.append(features)
            out.mask[c] = ~missing
        blocks = scaled_blocks + indicator_blocks + datetime_blocks
        if blocks:
            out.numeric = np.concatenate(blocks, axis=1).astype(np.float32)  # (N, F_num)

        if self.vocab_:
            columns = []
            for c, vocab in self.vocab_.items():
                index, present = _encode_categories(cells(c), vocab)
                columns.append(index)
                out.mask[c] = present
            out.categorical = np.stack(columns, axis=1)  # (N, F_cat)

        if self.tag_vocab_:
            parts = []
            for c, vocab in self.tag_vocab_.items():
                hot, present = _encode_tags(cells(c), vocab)
                parts.append(hot)
                out.mask[c] = present
            out.multilabel = np.concatenate(parts, axis=1)  # (N, F_tags)

        for c in self.schema.by_modality("text"):
            present = np.array([not _is_missing(v) for v in cells(c)], dtype=bool)
            embedded = self.text_embedder_.embed(list(cells(c)))  # (N, D)
            embedded[~present] = 0.0  # absent text reads as "nothing", not as the empty string
            out.text[c] = embedded
            out.mask[c] = present
        for modality, target in (("image", out.image), ("audio", out.audio)):
            for c in self.schema.by_modality(modality):
                column = cells(c).to_numpy(dtype=object)
                target[c] = column
                out.mask[c] = np.array([not _is_missing(v) for v in column], dtype=bool)

        label = self.schema.label
        if with_label and self.label_ is not None and label in df.columns:
            out.label, out.label_present = self._encode_label(df[label])
        return out

    def _encode_label(self, cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        spec = self.label_
        if spec["kind"] == "regression":
            values = _to_float(cells)
            present = np.isfinite(values)
            return ((values - spec["mean"]) / spec["std"]).astype(np.float32), present
        if spec["kind"] == "multilabel":
            return _encode_tags(cells, spec)
        lookup = {_category_key(v): i for i, v in enumerate(spec["classes"])}
        keys = [_category_key(v) for v in cells]
        index = np.array([lookup.get(k, -1) if k is not None else -1 for k in keys], dtype=np.int64)
        unseen = sorted({k for k in keys if k is not None and k not in lookup})
        if unseen:
            logger.warning(
                "label column %r has %d value(s) not seen at fit time (%s); those rows get label -1",
                self.schema.label,
                len(unseen),
                ", ".join(unseen[:5]),
            )
        return index, index >= 0

    # ------------------------------------------------------------------ images

    def image_tensor(
        self,
        cell,
        base_dir: str | os.PathLike | None = None,
        *,
        column: str | None = None,
        train: bool = False,
        rng: np.random.Generator | None = None,
    ) -> tuple[torch.Tensor, bool]:
        """Decode one image cell to ((C, H, W) float32 in [-1, 1], present).

        The image keeps its aspect ratio: it is resized so its longer side fits, then
        padded to a square with black (-1), centred. An absent or unreadable cell gives
        zeros and ``present=False``. With ``train=True`` and ``augment`` set, random
        augmentation is applied, drawn from ``rng`` (pass one for reproducibility).
        """
        column = self._media_column("image", column)
        x, present = self._decode_image(cell, base_dir, column)
        if train and present and self.augment is not None:
            x = self.augment_image(x, rng if rng is not None else np.random.default_rng())
        return x, present

    def _decode_image(self, cell, base_dir, column: str) -> tuple[torch.Tensor, bool]:
        channels, height, width = self.image_shapes_[column]
        if _is_missing(cell):
            return torch.zeros(channels, height, width), False
        try:
            img = load_image(cell, base_dir, channels=channels)
        except _MEDIA_ERRORS as exc:
            logger.debug("image column %r: cell not decoded (%s)", column, exc)
            return torch.zeros(channels, height, width), False
        w, h = img.size
        scale = min(width / w, height / h)
        new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
        if (new_w, new_h) != (w, h):
            # Pillow's resize widens its kernel when shrinking, so this is antialiased.
            img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(image_to_array(img).copy()).permute(2, 0, 1)  # (C, h, w) uint8
        scaled = pixels.float().div_(127.5).sub_(1.0)
        if (new_w, new_h) == (width, height):
            return scaled.contiguous(), True
        out = torch.full((channels, height, width), -1.0)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        out[:, top : top + new_h, left : left + new_w] = scaled
        return out, True

    def augment_image(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Random rotation, shift and (if asked) horizontal flip of a (C, H, W) image.

        Uncovered pixels become black (-1), the same as the padding. All randomness comes
        from ``rng`` (:data:`AUGMENT_DRAWS` uniforms), so a seeded generator reproduces the
        same augmentation.
        """
        return self.augment_with(image, rng.random(AUGMENT_DRAWS))

    def augment_with(self, image: torch.Tensor, draws: Sequence[float], *,
                     flip: bool = True) -> torch.Tensor:
        """:meth:`augment_image` from ``draws``, :data:`AUGMENT_DRAWS` uniforms in [0, 1)
        (angle, vertical shift, horizontal shift, flip), whatever is enabled. With
        ``flip=False`` the mirroring is left to the caller (:meth:`flips`)."""
        aug = self.augment_
        if aug is None:
            return image
        angle = (2.0 * float(draws[0]) - 1.0) * float(aug["rotate_deg"])
        span = 2 * int(aug["shift_px"]) + 1
        dy, dx = (min(span - 1, int(float(u) * span)) - int(aug["shift_px"]) for u in draws[1:3])
        flip = flip and bool(aug["hflip"]) and float(draws[3]) < 0.5
        if angle != 0.0:
            image = _rotate(image, angle)
        if dy or dx:
            image = _shift(image, dy, dx)
        if flip:
            image = image.flip(-1)
        return image

    def flips(self, draws: np.ndarray) -> np.ndarray | None:
        """Which rows of ``draws`` (``(B, AUGMENT_DRAWS)``, as :meth:`augment_with` reads
        them) are mirrored, as a ``(B,)`` bool array; None when mirroring is off."""
        aug = self.augment_
        if aug is None or not aug["hflip"]:
            return None
        return np.asarray(draws)[:, 3] < 0.5

    # ------------------------------------------------------------------ audio

    @property
    def _win_length(self) -> int:
        return int(round(AUDIO_WINDOW_S * self.audio_sample_rate))

    @property
    def _hop_length(self) -> int:
        return int(round(AUDIO_HOP_S * self.audio_sample_rate))

    @property
    def _n_fft(self) -> int:
        return 1 << (self._win_length - 1).bit_length()  # next power of two >= window

    def audio_tensor(
        self, cell, base_dir: str | os.PathLike | None = None, *, column: str | None = None
    ) -> tuple[torch.Tensor, bool]:
        """Decode one audio cell to ((1, n_mels, T) standardised log-mel, present).

        The clip is mixed to mono, resampled to ``audio_sample_rate``, cut or zero-padded
        to the fitted length, and turned into a log-mel spectrogram. An absent or
        unreadable cell gives zeros and ``present=False``.
        """
        column = self._media_column("audio", column)
        stats = self.audio_stats_[column]
        shape = (1, self.n_mels, stats["num_frames"])
        if _is_missing(cell):
            return torch.zeros(shape), False
        try:
            wave, rate = load_audio(cell, base_dir)
        except _MEDIA_ERRORS as exc:
            logger.debug("audio column %r: cell not decoded (%s)", column, exc)
            return torch.zeros(shape), False
        if len(wave) == 0 or not np.all(np.isfinite(wave)):
            return torch.zeros(shape), False
        log_mel = self._log_mel(_fit_length(self._resample(wave, rate), stats["num_samples"]))
        out = ((log_mel - stats["mean"]) / stats["std"])[None]  # (1, n_mels, T)
        assert out.shape == shape, (out.shape, shape)
        return out, True

    def _resample(self, wave: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.audio_sample_rate:
            return wave.astype(np.float32)
        g = math.gcd(int(rate), self.audio_sample_rate)
        # Polyphase resampling applies an anti-aliasing low-pass filter.
        # Imported here, not with the module: only audio at another sample rate needs
        # scipy.signal, a large import (most of scipy is loaded by scikit-learn anyway).
        from scipy.signal import resample_poly

        return resample_poly(wave, self.audio_sample_rate // g, int(rate) // g).astype(np.float32)

    def _log_mel(self, wave: np.ndarray) -> torch.Tensor:
        """Natural-log mel power spectrogram of a fixed-length mono wave: (n_mels, T)."""
        window, bank = _stft_constants(
            self.audio_sample_rate, self._win_length, self._n_fft, self.n_mels
        )
        spec = torch.stft(
            torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
            n_fft=self._n_fft,
            hop_length=self._hop_length,
            win_length=self._win_length,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (n_fft // 2 + 1, T)
        mel = bank @ (spec.abs() ** 2)  # (n_mels, T)
        return torch.log(mel + LOG_MEL_EPS)

    # ------------------------------------------------------------------ spec, labels

    def feature_spec(self) -> dict:
        """What models need to size themselves (JSON-able)."""
        self._check_fitted()
        tag_dims = {c: len(v["tags"]) for c, v in self.tag_vocab_.items()}
        spec = {
            "n_numeric": len(self.numeric_names()),
            "numeric_names": self.numeric_names(),
            "categorical_columns": list(self.vocab_),
            "categorical_cardinalities": [len(v) + 2 for v in self.vocab_.values()],
            "multilabel_columns": tag_dims,
            "multilabel_dim": sum(tag_dims.values()),
            "text_dims": {c: self.text_embedder_.dim for c in self.schema.by_modality("text")},
            "image_shapes": {c: list(s) for c, s in self.image_shapes_.items()},
            "audio_shapes": {
                c: [1, self.n_mels, s["num_frames"]] for c, s in self.audio_stats_.items()
            },
            "columns": {c: self.schema.modality(c) for c in self.schema.features()},
            "problem_type": self.schema.problem_type if self.label_ is not None else None,
            "label": self.schema.label,
            "n_classes": None,
            "classes": None,
            "n_outputs": None,  # classes, tags, or 1 for regression (see models/heads.py)
        }
        if self.label_ is not None and self.label_["kind"] != "regression":
            spec["classes"] = self.classes_
            spec["n_classes"] = spec["n_outputs"] = len(spec["classes"])
        elif self.label_ is not None:
            spec["n_outputs"] = 1
        return spec

    def numeric_names(self) -> list[str]:
        """Names of the columns of ``Batch.numeric``, in order."""
        self._check_fitted()
        names = list(self.numeric_stats_)
        names += [f"{c}__missing" for c, s in self.numeric_stats_.items() if s["indicator"]]
        for c, s in self.datetime_stats_.items():
            names += [f"{c}__{f}" for f in DATETIME_FEATURES]
            if s["indicator"]:
                names.append(f"{c}__missing")
        return names

    @property
    def classes_(self) -> list | None:
        """Class values (classification) or tags (multilabel) in output order; else None."""
        self._check_fitted()
        if self.label_ is None or self.label_["kind"] == "regression":
            return None
        return list(
            self.label_["classes"]
            if self.label_["kind"] == "classification"
            else self.label_["tags"]
        )

    def inverse_label(self, values) -> np.ndarray | list:
        """Encoded labels back to user labels.

        Regression: standardised values -> original units. Classification: class indices
        -> class values. Multilabel: (N, K) multi-hot -> list of tag lists.
        """
        spec = self._label_spec()
        values = _as_numpy(values)
        if spec["kind"] == "regression":
            return values.astype(np.float64).reshape(-1) * spec["std"] + spec["mean"]
        if spec["kind"] == "multilabel":
            tags = spec["tags"]
            return [[tags[j] for j in np.flatnonzero(row > 0.5)] for row in np.atleast_2d(values)]
        index = values.astype(np.int64).reshape(-1)
        classes = spec["classes"]
        if index.size and (index.min() < 0 or index.max() >= len(classes)):
            raise DataError(
                f"class indices must be in 0..{len(classes) - 1}, got {index.min()}..{index.max()}"
            )
        return np.asarray(classes)[index]

    def decode_label(self, outputs, *, threshold: float = 0.5) -> np.ndarray | list:
        """Model outputs back to user labels.

        Classification: (N, K) scores or probabilities -> the argmax class; for binary,
        (N,) or (N, 1) P(class 1) -> the second class where it exceeds ``threshold``;
        a 1-D integer array is taken as class indices already decided. Multilabel:
        (N, K) probabilities -> the tags above ``threshold``. Regression: (N,) or (N, 1)
        standardised predictions -> values in the label's units.
        """
        spec = self._label_spec()
        outputs = _as_numpy(outputs)
        if spec["kind"] == "regression":
            return self.inverse_label(outputs)
        if spec["kind"] == "multilabel":
            return self.inverse_label((np.atleast_2d(outputs) > threshold).astype(np.float32))
        if outputs.ndim == 2 and outputs.shape[1] > 1:
            return self.inverse_label(outputs.argmax(axis=1))
        outputs = outputs.reshape(-1)
        if outputs.dtype.kind in "iub":
            return self.inverse_label(outputs)
        if len(spec["classes"]) == 2:
            return self.inverse_label((outputs > threshold).astype(np.int64))
        raise DataError(
            f"decode_label got a 1-D float array for {len(spec['classes'])} classes; pass "
            "(N, K) scores or integer class indices"
        )

    def _label_spec(self) -> dict:
        self._check_fitted()
        if self.label_ is None:
            raise SchemaError(
                "this transform was fitted without a label column, so it cannot decode labels"
            )
        return self.label_

    # ------------------------------------------------------------------ save / load

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the frozen transform to ``directory/transform.json`` (no pickle)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "format_version": FORMAT_VERSION,
            "config": self.get_config(),
            "schema": self.schema.to_dict(),
            "state": {
                "numeric_stats": self.numeric_stats_,
                "datetime_stats": self.datetime_stats_,
                "vocab": self.vocab_,
                "tag_vocab": self.tag_vocab_,
                "text_config": self.text_config_,
                "image_shapes": self.image_shapes_,
                "audio_stats": self.audio_stats_,
                "label": self.label_,
                "notes": self.notes_,
            },
        }
        # allow_nan=False: every stored number must be finite, or the file is not JSON.
        return write_text(directory / TRANSFORM_FILE, json.dumps(state, indent=1, allow_nan=False))

    @classmethod
    def load(
        cls, directory: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
    ) -> TableTransform:
        """Rebuild a transform saved by :meth:`save`; it gives bit-identical tensors."""
        path = Path(directory) / TRANSFORM_FILE
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelFolderError(
                f"{path} not found; is {directory} a folder written by TableTransform.save?"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFolderError(
                f"{path} is unreadable or corrupt ({exc}); save the transform again"
            ) from None
        version = saved.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFolderError(
                f"{path} has format_version {version!r}; this polymodal reads version {FORMAT_VERSION}"
            )
        try:
            transform = cls(
                Schema.from_dict(saved["schema"]), **saved["config"], cache_dir=cache_dir
            )
            state = saved["state"]
            transform.numeric_stats_ = state["numeric_stats"]
            transform.datetime_stats_ = state["datetime_stats"]
            transform.vocab_ = state["vocab"]
            transform.tag_vocab_ = state["tag_vocab"]
            transform.text_config_ = state["text_config"]
            transform.image_shapes_ = state["image_shapes"]
            transform.audio_stats_ = state["audio_stats"]
            transform.label_ = state["label"]
            transform.notes_ = state["notes"]
        except (KeyError, TypeError) as exc:
            raise ModelFolderError(
                f"{path} is missing or has a malformed entry ({exc}); save the transform again"
            ) from None
        transform.text_embedder_ = (
            TextEmbedder.from_config(transform.text_config_, cache_dir=cache_dir)
            if transform.text_config_
            else None
        )
        return transform

    # ------------------------------------------------------------------ helpers

    def _check_fitted(self) -> None:
        if not hasattr(self, "label_"):
            raise NotFittedError(
                "this TableTransform is not fitted; call .fit(train_df) or TableTransform.load(folder) first"
            )

    def _check_columns(self, df: pd.DataFrame, *, allow_missing_columns: bool) -> set[str]:
        """The optional feature columns absent from ``df``; raises for any other absent one."""
        absent = [c for c in self.schema.features() if c not in df.columns]
        optional = {
            c
            for c in absent
            if allow_missing_columns and self.schema.modality(c) in _OPTIONAL_MODALITIES
        }
        required = [c for c in absent if c not in optional]
        if required:
            raise DataError(
                f"the table lacks feature column(s) {required} that the schema uses; its columns are "
                f"{list(df.columns)}. Add them (image/audio/text columns may be left out with "
                "allow_missing_columns=True, which marks them absent)"
            )
        return optional

    def _media_column(self, modality: str, column: str | None) -> str:
        self._check_fitted()
        columns = self.schema.by_modality(modality)
        if column is None:
            if len(columns) != 1:
                raise ConfigError(
                    f"the schema has {len(columns)} {modality} columns {columns}; pass column=NAME"
                )
            return columns[0]
        if column not in columns:
            raise SchemaError(
                f"{column!r} is not an {modality} column; {modality} columns are {columns}"
            )
        return column

    def __repr__(self) -> str:
        fitted = "fitted" if hasattr(self, "label_") else "not fitted"
        counts = {
            m: len(self.schema.by_modality(m)) for m in MODALITIES if self.schema.by_modality(m)
        }
        return f"TableTransform({counts}, label={self.schema.label!r}, {fitted})"


# ---------------------------------------------------------------------- generator helper


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (B, C, H, W) in [-1, 1] -> uint8 array (B, H, W, C), e.g. to save generations."""
    if images.ndim != 4:
        raise DataError(f"tensor_to_uint8 expects (B, C, H, W), got shape {tuple(images.shape)}")
    pixels = ((images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (B, H, W, C)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), float64, from 0 Hz to Nyquist.

    HTK mel scale, mel = 2595 * log10(1 + f / 700) (O'Shaughnessy 1987). Each filter rises
    from the previous band's centre to its own and falls to the next one's.
    """
    nyquist = sample_rate / 2.0
    mel_max = 2595.0 * math.log10(1.0 + nyquist / 700.0)
    edges_hz = 700.0 * (
        10.0 ** (np.linspace(0.0, mel_max, n_mels + 2) / 2595.0) - 1.0
    )  # (n_mels + 2,)
    bins_hz = np.linspace(0.0, nyquist, n_fft // 2 + 1)  # (F,)
    left, centre, right = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None] - left) / (centre - left)
    falling = (right - bins_hz[None]) / (right - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)  # (n_mels, F)


@functools.lru_cache(maxsize=8)
def _stft_constants(
    sample_rate: int, win_length: int, n_fft: int, n_mels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hann window (win_length,) and mel filterbank (n_mels, F), float32, built once
    per setting: they are read-only and rebuilding them costs more than the STFT."""
    window = torch.hann_window(win_length, dtype=torch.float32)
    bank = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float32))
    return window, bank


# ---------------------------------------------------------------------- cell helpers


def _is_missing(value) -> bool:
    """None, NaN, NaT, pd.NA and empty/blank strings or bytes; containers are never missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, bytes | bytearray):
        return len(value) == 0
    return False


def _category_key(value) -> str | None:
    """A cell as a category string; None when missing. 3, 3.0 and "3" are one category."""
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return str(value)


def _to_float(cells: pd.Series) -> np.ndarray:
    """Numbers as float64, parsed as schema inference parsed them ("1,234" -> 1234);
    anything unparseable (and +-inf) becomes NaN."""
    values = np.array(column_numbers(cells), dtype=np.float64)  # a writable copy
    values[~np.isfinite(values)] = np.nan
    return values


def _sample_present(cells: pd.Series, limit: int) -> list:
    """Up to ``limit`` non-missing cells, evenly spread over the column (deterministic)."""
    present = [v for v in cells.to_numpy(dtype=object) if not _is_missing(v)]
    if len(present) <= limit:
        return present
    return [present[i] for i in np.linspace(0, len(present) - 1, limit).round().astype(int)]


def _is_grey(img: Image.Image) -> bool:
    """True for greyscale images, including RGB files whose three channels are equal."""
    if img.mode == "L":
        return True
    arr = np.asarray(img)
    return arr.ndim == 3 and bool(
        np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    )


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


# ---------------------------------------------------------------------- numeric


def _fit_numeric(cells: pd.Series) -> dict:
    values = _to_float(cells)
    finite = values[~np.isnan(values)]
    if finite.size == 0:  # an all-missing column: every row reads 0 plus its indicator
        return {"median": 0.0, "mean": 0.0, "std": 1.0, "indicator": True}
    std = float(finite.std())
    return {
        "median": float(np.median(finite)),
        "mean": float(finite.mean()),
        # A constant column would divide by zero; it carries no information either way.
        "std": std if std > 1e-12 else 1.0,
        "indicator": bool(finite.size < values.size),
    }


def _encode_numeric(cells: pd.Series, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N,) standardised values with missing ones imputed by the median, and (N,) missing."""
    values = _to_float(cells)
    missing = np.isnan(values)
    filled = np.where(missing, stats["median"], values)
    scaled = np.clip((filled - stats["mean"]) / stats["std"], -NUMERIC_CLIP, NUMERIC_CLIP)
    return scaled.astype(np.float32), missing


# ---------------------------------------------------------------------- datetime


def _to_datetime(cells: pd.Series) -> pd.Series:
    """Timestamps in UTC (naive ones are taken as UTC); unparseable cells become NaT."""
    if pd.api.types.is_datetime64_any_dtype(cells):
        series = cells
    else:
        series = pd.to_datetime(cells.astype(object), errors="coerce", utc=True, format="mixed")
    series = pd.Series(series)
    if series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    return series.dt.tz_convert("UTC")


def _datetime_parts(cells: pd.Series) -> dict[str, np.ndarray]:
    ts = _to_datetime(cells)
    days = np.asarray((ts - _EPOCH).dt.total_seconds(), dtype=np.float64) / 86400.0
    return {
        "days": days,
        "year": np.asarray(ts.dt.year, dtype=np.float64),
        "month": np.asarray(ts.dt.month, dtype=np.float64),
        "dow": np.asarray(ts.dt.day_of_week, dtype=np.float64),
        "hour": np.asarray(ts.dt.hour + ts.dt.minute / 60.0, dtype=np.float64),
    }


def _fit_datetime(cells: pd.Series) -> dict:
    parts = _datetime_parts(cells)
    days, years = parts["days"], parts["year"]
    ok = ~np.isnan(days)
    if not ok.any():
        return {
            "days_median": 0.0,
            "days_mean": 0.0,
            "days_std": 1.0,
            "year_mean": 1970.0,
            "year_std": 1.0,
            "indicator": True,
        }
    days_std, year_std = float(days[ok].std()), float(years[ok].std())
    return {
        "days_median": float(np.median(days[ok])),
        "days_mean": float(days[ok].mean()),
        "days_std": days_std if days_std > 1e-12 else 1.0,
        "year_mean": float(years[ok].mean()),
        "year_std": year_std if year_std > 1e-12 else 1.0,
        "indicator": bool(not ok.all()),
    }


def _encode_datetime(cells: pd.Series, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, 8 [+1]) features in DATETIME_FEATURES order (+ missing indicator), and (N,) missing.

    Year and days since 1970 are standardised; month, weekday and hour are encoded as
    points on a circle so December sits next to January. A missing timestamp takes the
    training median for the linear features and 0 (no direction) for the cyclic ones.
    """
    parts = _datetime_parts(cells)
    missing = np.isnan(parts["days"])
    median_year = float(pd.Timestamp(stats["days_median"] * 86400.0, unit="s").year)
    days = np.where(missing, stats["days_median"], parts["days"])
    year = np.where(missing, median_year, parts["year"])
    columns = [
        np.clip((year - stats["year_mean"]) / stats["year_std"], -NUMERIC_CLIP, NUMERIC_CLIP),
        np.clip((days - stats["days_mean"]) / stats["days_std"], -NUMERIC_CLIP, NUMERIC_CLIP),
    ]
    for name, period, offset in (("month", 12.0, 1.0), ("dow", 7.0, 0.0), ("hour", 24.0, 0.0)):
        angle = 2.0 * np.pi * (np.nan_to_num(parts[name]) - offset) / period
        columns += [np.where(missing, 0.0, np.sin(angle)), np.where(missing, 0.0, np.cos(angle))]
    if stats["indicator"]:
        columns.append(missing.astype(np.float64))
    return np.stack(columns, axis=1).astype(np.float32), missing


# ---------------------------------------------------------------------- categorical


def _fit_vocab(cells: pd.Series) -> list[str]:
    """Category strings seen at fit, most frequent first (ties by value), capped."""
    keys = pd.Series([_category_key(v) for v in cells], dtype=object).dropna()
    counts = keys.value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [k for k, _ in ranked[:MAX_CATEGORIES]]


def _encode_categories(cells: pd.Series, vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 indices (0 unknown, 1 missing, 2.. the vocabulary) and (N,) present."""
    lookup = {k: i + 2 for i, k in enumerate(vocab)}
    keys = [_category_key(v) for v in cells]
    index = np.array(
        [MISSING_INDEX if k is None else lookup.get(k, UNKNOWN_INDEX) for k in keys], dtype=np.int64
    )
    return index, index != MISSING_INDEX


# ---------------------------------------------------------------------- multilabel

_TAG_DELIMITERS = (";", "|", ",")


def _split_tags(cell, delimiter: str) -> list[str] | None:
    """A tag cell (list/tuple/set/array, JSON list string, or delimited string) as tags."""
    if isinstance(cell, list | tuple | set | frozenset | np.ndarray | pd.Series):
        items = list(cell)
    elif _is_missing(cell):
        return None
    elif isinstance(cell, str):
        text = cell.strip()
        items = None
        if text.startswith("["):
            try:
                parsed = json.loads(text)
                items = parsed if isinstance(parsed, list) else None
            except json.JSONDecodeError:
                items = None
        if items is None:
            items = text.split(delimiter)
    else:
        items = [cell]
    tags = [k for k in (_category_key(v) for v in items) if k]
    return list(dict.fromkeys(tags))


def _fit_tags(
    cells: pd.Series, cap: int | None = MAX_CATEGORIES, delimiter: str | None = None
) -> dict:
    """The delimiter of string cells (the schema's when it has one) and the sorted tag vocabulary."""
    if delimiter is None:
        strings = [v for v in cells if isinstance(v, str) and not v.strip().startswith("[")]
        counts = {d: sum(s.count(d) for s in strings) for d in _TAG_DELIMITERS}
        delimiter = (
            max(_TAG_DELIMITERS, key=lambda d: counts[d])
            if any(counts.values())
            else _TAG_DELIMITERS[0]
        )
    frequency: dict[str, int] = {}
    for cell in cells:
        for tag in _split_tags(cell, delimiter) or []:
            frequency[tag] = frequency.get(tag, 0) + 1
    kept = sorted(frequency, key=lambda t: (-frequency[t], t))[:cap]
    return {"delimiter": delimiter, "tags": sorted(kept)}


def _encode_tags(cells: pd.Series, vocab: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) float32 multi-hot over the vocabulary (unseen tags dropped) and (N,) present."""
    lookup = {t: i for i, t in enumerate(vocab["tags"])}
    hot = np.zeros((len(cells), len(lookup)), dtype=np.float32)
    present = np.zeros(len(cells), dtype=bool)
    for row, cell in enumerate(cells):
        tags = _split_tags(cell, vocab["delimiter"])
        if tags is None:
            continue
        present[row] = True
        for tag in tags:
            j = lookup.get(tag)
            if j is not None:
                hot[row, j] = 1.0
    return hot, present


# ---------------------------------------------------------------------- labels


def _sorted_classes(cells: pd.Series) -> list:
    """Distinct non-missing label values as JSON-able Python values, sorted.

    Numbers sort numerically, anything else by its string; values that are the same
    category (3 and 3.0) count once.
    """
    seen: dict[str, object] = {}
    for v in cells:
        key = _category_key(v)
        if key is None or key in seen:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, str):
            v = v.strip()
        elif not isinstance(v, bool | int | float):
            v = key
        seen[key] = v
    values = list(seen.values())
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=str)


# ---------------------------------------------------------------------- image / audio ops


def _fit_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Keep the first ``num_samples`` samples, zero-padding a shorter clip at the end."""
    if len(wave) >= num_samples:
        return wave[:num_samples]
    return np.pad(wave, (0, num_samples - len(wave)))


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate (C, H, W) by (dy, dx) pixels, filling with black (-1)."""
    _, h, w = image.shape
    out = torch.full_like(image, -1.0)
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[:, dst_y, dst_x] = image[:, src_y, src_x]
    return out


def _rotate(image: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """Rotate (C, H, W) about its centre, bilinear, filling with black (-1)."""
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    matrix = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)[None]  # (1, 2, 3)
    grid = F.affine_grid(matrix, [1, *image.shape], align_corners=False)
    # Shift to [0, 2] so grid_sample's zero padding lands on -1 after shifting back.
    rotated = F.grid_sample(
        image[None] + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return rotated[0] - 1.0
