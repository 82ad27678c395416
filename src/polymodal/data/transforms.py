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

The per-modality work lives in :mod:`~polymodal.data.number_encoding`,
:mod:`~polymodal.data.category_encoding`, :mod:`~polymodal.data.image_encoding`,
:mod:`~polymodal.data.audio_encoding`, :mod:`~polymodal.data.label_encoding` and
:mod:`~polymodal.data.text`; this module holds the state and its file.

Conventions (see ``batch.py``): categorical index 0 = unknown, 1 = missing; image pixels
in [-1, 1], padding -1 (black); absent or unreadable media give zeros and ``present=False``;
a regression label is standardised with the training mean/std (``inverse_label`` undoes it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polymodal.data import label_encoding
from polymodal.data.audio_augment import (
    AUDIO_AUGMENT_DEFAULTS,
    audio_augment_problems,
    augment_log_mels,
)
from polymodal.data.audio_encoding import (
    AUDIO_HOP_S,
    MIN_AUDIO_DURATION_S,
    LogMelFrontEnd,
    decode_audio,
    fit_audio_stats,
)
from polymodal.data.category_encoding import encode_categories, encode_tags, fit_tags, fit_vocab
from polymodal.data.cells import cell_missing
from polymodal.data.image_encoding import (
    AUGMENT_DEFAULTS,
    AUGMENT_DRAWS,
    MIN_IMAGE_SIZE,
    augment_problems,
    augment_with,
    decode_image,
    fit_image_shape,
    flipped_rows,
)
from polymodal.data.number_encoding import (
    DATETIME_FEATURES,
    encode_datetime,
    encode_numeric,
    fit_datetime,
    fit_numeric,
)
from polymodal.data.schema import MODALITIES, OPTIONAL_MODALITIES, PROBLEM_TYPES, Schema
from polymodal.data.text import TEXT_KINDS, TextEmbedder
from polymodal.errors import ConfigError, DataError, ModelFolderError, NotFittedError, SchemaError
from polymodal.files import read_json, write_text

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TRANSFORM_FILE = "transform.json"

_SUPPORTED = {"numeric", "categorical", "multilabel", "datetime", "text", "image", "audio"}


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

    @staticmethod
    def stack(parts: Sequence[tuple[EncodedTable, np.ndarray]]) -> EncodedTable:
        """One table of the rows ``rows`` (positions) of each ``(table, rows)`` part, in
        order: cross-validation's folds of already encoded rows, without encoding (text
        embeddings, above all) again. The parts share one transform and base folder."""
        def joined(name: str):
            if getattr(parts[0][0], name) is None:
                return None
            return np.concatenate([getattr(t, name)[r] for t, r in parts])

        def columns(name: str) -> dict:
            return {col: np.concatenate([getattr(t, name)[col][r] for t, r in parts])
                    for col in getattr(parts[0][0], name)}

        return EncodedTable(
            n_rows=sum(len(r) for _, r in parts),
            **{name: joined(name) for name in ("numeric", "categorical", "multilabel",
                                               "label", "label_present")},
            **{name: columns(name) for name in ("text", "image", "audio", "mask")},
            base_dir=parts[0][0].base_dir)


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
        audio_augment: ``None`` for no audio augmentation, or a dict of
            :data:`~polymodal.data.audio_augment.AUDIO_AUGMENT_DEFAULTS` keys (missing keys
            take those defaults): speed/pitch perturbation, time shift, background noise
            and SpecAugment masks of training clips (:mod:`polymodal.data.audio_augment`).
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
        audio_augment: dict | None = None,
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
        self.audio_augment = audio_augment
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
        problems += augment_problems(self.augment)
        problems += audio_augment_problems(self.audio_augment)
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
            "audio_augment": self.audio_augment,
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

        self.numeric_stats_ = {c: fit_numeric(df[c]) for c in schema.by_modality("numeric")}
        self.datetime_stats_ = {c: fit_datetime(df[c]) for c in schema.by_modality("datetime")}
        self.vocab_ = {c: fit_vocab(df[c]) for c in schema.by_modality("categorical")}
        self.tag_vocab_ = {
            c: fit_tags(df[c], delimiter=schema.columns[c].delimiter)
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
            c: fit_image_shape(c, df[c], base_dir, channels=self.image_channels,
                               size=self.image_size, notes=self.notes_)
            for c in schema.by_modality("image")
        }
        self.audio_stats_ = {
            c: fit_audio_stats(c, df[c], base_dir, self._audio_front_end(),
                               duration_s=self.audio_duration_s, notes=self.notes_)
            for c in schema.by_modality("audio")
        }
        self.label_ = self._fit_label(df) if schema.label is not None else None
        for note in self.notes_:
            logger.info(note)
        return self

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
        return label_encoding.fit_label(
            df[label], problem, label=label, delimiter=self.schema.columns[label].delimiter
        )

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
            scaled, missing = encode_numeric(cells(c), stats)
            scaled_blocks.append(scaled[:, None])
            if stats["indicator"]:
                indicator_blocks.append(missing[:, None].astype(np.float32))
            out.mask[c] = ~missing
        for c, stats in self.datetime_stats_.items():
            features, missing = encode_datetime(cells(c), stats)
            datetime_blocks.append(features)
            out.mask[c] = ~missing
        blocks = scaled_blocks + indicator_blocks + datetime_blocks
        if blocks:
            out.numeric = np.concatenate(blocks, axis=1).astype(np.float32)  # (N, F_num)

        if self.vocab_:
            columns = []
            for c, vocab in self.vocab_.items():
                index, present = encode_categories(cells(c), vocab)
                columns.append(index)
                out.mask[c] = present
            out.categorical = np.stack(columns, axis=1)  # (N, F_cat)

        if self.tag_vocab_:
            parts = []
            for c, vocab in self.tag_vocab_.items():
                hot, present = encode_tags(cells(c), vocab)
                parts.append(hot)
                out.mask[c] = present
            out.multilabel = np.concatenate(parts, axis=1)  # (N, F_tags)

        for c in self.schema.by_modality("text"):
            present = np.array([not cell_missing(v) for v in cells(c)], dtype=bool)
            embedded = self.text_embedder_.embed(list(cells(c)))  # (N, D)
            embedded[~present] = 0.0  # absent text reads as "nothing", not as the empty string
            out.text[c] = embedded
            out.mask[c] = present
        for modality, target in (("image", out.image), ("audio", out.audio)):
            for c in self.schema.by_modality(modality):
                column = cells(c).to_numpy(dtype=object)
                target[c] = column
                out.mask[c] = np.array([not cell_missing(v) for v in column], dtype=bool)

        label = self.schema.label
        if with_label and self.label_ is not None and label in df.columns:
            out.label, out.label_present = label_encoding.encode_label(
                df[label], self.label_, label=label
            )
        return out

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
        x, present = decode_image(cell, base_dir, self.image_shapes_[column], column)
        if train and present and self.augment is not None:
            x = self.augment_image(x, rng if rng is not None else np.random.default_rng())
        return x, present

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
        return image if aug is None else augment_with(image, draws, aug, flip=flip)

    def flips(self, draws: np.ndarray) -> np.ndarray | None:
        """Which rows of ``draws`` (``(B, AUGMENT_DRAWS)``, as :meth:`augment_with` reads
        them) are mirrored, as a ``(B,)`` bool array; None when mirroring is off."""
        return flipped_rows(draws, self.augment_)

    # ------------------------------------------------------------------ audio

    def _audio_front_end(self) -> LogMelFrontEnd:
        return LogMelFrontEnd(self.audio_sample_rate, self.n_mels)

    def audio_tensor(
        self, cell, base_dir: str | os.PathLike | None = None, *, column: str | None = None
    ) -> tuple[torch.Tensor, bool]:
        """Decode one audio cell to ((1, n_mels, T) standardised log-mel, present).

        The clip is mixed to mono, resampled to ``audio_sample_rate``, cut or zero-padded
        to the fitted length, and turned into a log-mel spectrogram. An absent or
        unreadable cell gives zeros and ``present=False``.
        """
        column = self._media_column("audio", column)
        return decode_audio(
            cell, base_dir, self._audio_front_end(), self.audio_stats_[column], column
        )

    @property
    def audio_augment_(self) -> dict | None:
        """The audio augmentation settings with defaults filled in, or None."""
        if self.audio_augment is None:
            return None
        return {**AUDIO_AUGMENT_DEFAULTS, **self.audio_augment}

    def augment_audio(self, log_mels: torch.Tensor, present: torch.Tensor, draws: np.ndarray,
                      column: str) -> torch.Tensor:
        """Training-time augmentation of a batch of ``column``'s log-mels ``(B, 1, M, T)``
        from ``draws`` ``(B, AUDIO_AUGMENT_DRAWS)`` (:mod:`polymodal.data.audio_augment`);
        unchanged when ``audio_augment`` is None."""
        aug = self.audio_augment_
        if aug is None:
            return log_mels
        stats = self.audio_stats_[column]
        return augment_log_mels(log_mels, present, draws, aug, mean=stats["mean"],
                                std=stats["std"], hop_s=AUDIO_HOP_S,
                                noise_shape=self._audio_front_end().band_widths())

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
            "text_ngram_slices": {c: self.text_embedder_.ngram_slice()
                                  for c in self.schema.by_modality("text")
                                  if self.text_embedder_.ngram_slice()},
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
        return label_encoding.inverse_label(self._label_spec(), values)

    def decode_label(self, outputs, *, threshold: float = 0.5) -> np.ndarray | list:
        """Model outputs back to user labels.

        Classification: (N, K) scores or probabilities -> the argmax class; for binary,
        (N,) or (N, 1) P(class 1) -> the second class where it exceeds ``threshold``;
        a 1-D integer array is taken as class indices already decided. Multilabel:
        (N, K) probabilities -> the tags above ``threshold``. Regression: (N,) or (N, 1)
        standardised predictions -> values in the label's units.
        """
        return label_encoding.decode_label(self._label_spec(), outputs, threshold=threshold)

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
            saved = read_json(path)
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
            if allow_missing_columns and self.schema.modality(c) in OPTIONAL_MODALITIES
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
