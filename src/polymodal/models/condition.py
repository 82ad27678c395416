"""The generator's condition encoder: the condition columns of a row -> one vector ``(B, D)``.

A conditional image generator (:mod:`polymodal.api.generator`) is conditioned on any
other columns of a row. Each condition column gets the per-modality encoder a predictor
would use (:mod:`polymodal.models.encoders`):

- categorical / numeric / datetime / multilabel: a :class:`TabularEncoder` over that
  column alone (embedding or MLP);
- text: a :class:`TextEncoder` MLP over the frozen sentence embedding (MiniLM or hashed);
- image: a compact :class:`ImageEncoder` ResNet;
- audio: an :class:`AudioEncoder` CNN over the clip's log-mel spectrogram (e.g. an image
  generated from a spoken caption).

The condition vector is the **sum of the present columns' embeddings**. Summing (rather
than concatenating into an MLP) makes "column absent" mean exactly "adds nothing", so:

- a row with no condition present encodes to the all-zero vector -- the same null
  condition that :func:`polymodal.models.flow.drop_conditions` trains and that
  :func:`polymodal.models.samplers.guided_velocity` uses for the unconditional pass;
- a column left out at sampling time (presence False) is sampled unconditionally for
  that column, which training teaches by hiding single columns per row
  (:func:`polymodal.models.fusion.modality_dropout`).

Interactions between columns (a *red* *circle*) are left to the UNet, which receives the
vector through its time embedding and every residual block's FiLM scale/shift.

The spec is the fitted transform's ``feature_spec()`` restricted to the condition
columns by :func:`condition_spec`.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from polymodal.data.batch import Batch
from polymodal.errors import ConfigError, DataError, SchemaError
from polymodal.models.encoders import AudioEncoder, ImageEncoder, TabularEncoder, TextEncoder
from polymodal.models.fusion import modality_dropout

__all__ = ["CONDITION_MODALITIES", "ConditionEncoder", "condition_spec"]

# Modalities a condition column may have ("tabular" ones share TabularEncoder).
TABULAR_MODALITIES = ("categorical", "numeric", "datetime", "multilabel")
CONDITION_MODALITIES = (*TABULAR_MODALITIES, "text", "image", "audio")


def condition_spec(feature_spec: dict, columns: list[str]) -> dict:
    """The parts of a transform's ``feature_spec()`` that the condition ``columns`` use.

    Returns ``{"columns": {col: modality}, "numeric_index": {col: [i, ...]},
    "categorical_index": {col: i}, "categorical_cardinalities": {col: n},
    "multilabel_slices": {col: [start, stop]}, "text_dims": {col: d},
    "image_shapes": {col: [C, H, W]}, "audio_shapes": {col: [1, n_mels, T]}}`` -- positions into the ``Batch`` tensors, so the
    encoder can read one column out of the shared numeric/categorical/multilabel blocks.
    """
    modality_of = feature_spec["columns"]
    spec: dict = {"columns": {}, "numeric_index": {}, "categorical_index": {},
                  "categorical_cardinalities": {}, "multilabel_slices": {}, "text_dims": {},
                  "image_shapes": {}, "audio_shapes": {}}
    numeric_names = feature_spec.get("numeric_names", [])
    multilabel_offsets, offset = {}, 0
    for col, width in feature_spec.get("multilabel_columns", {}).items():
        multilabel_offsets[col] = [offset, offset + width]
        offset += width
    for col in columns:
        if col not in modality_of:
            raise SchemaError(
                f"condition column {col!r} is not a feature of the fitted transform; its "
                f"feature columns are {list(modality_of)}"
            )
        modality = modality_of[col]
        if modality not in CONDITION_MODALITIES:
            raise SchemaError(
                f"condition column {col!r} is {modality}; a generator can be conditioned on "
                f"{', '.join(CONDITION_MODALITIES)} columns. Leave it out of the conditions"
            )
        spec["columns"][col] = modality
        if modality in ("numeric", "datetime"):
            # The column's own value plus its derived features (missing indicator,
            # datetime parts), all named "<col>" or "<col>__<feature>".
            index = [i for i, name in enumerate(numeric_names)
                     if name == col or name.startswith(f"{col}__")]
            assert index, f"numeric column {col!r} has no features in the spec"
            spec["numeric_index"][col] = index
        elif modality == "categorical":
            i = feature_spec["categorical_columns"].index(col)
            spec["categorical_index"][col] = i
            spec["categorical_cardinalities"][col] = feature_spec["categorical_cardinalities"][i]
        elif modality == "multilabel":
            spec["multilabel_slices"][col] = multilabel_offsets[col]
        elif modality == "text":
            spec["text_dims"][col] = feature_spec["text_dims"][col]
        elif modality == "audio":
            spec["audio_shapes"][col] = list(feature_spec["audio_shapes"][col])
        else:
            spec["image_shapes"][col] = list(feature_spec["image_shapes"][col])
    return json.loads(json.dumps(spec))


class ConditionEncoder(nn.Module):
    """Condition columns of a :class:`Batch` -> ``(B, out_dim)``, zero where none is present.

    Args:
        spec: from :func:`condition_spec`.
        out_dim: width of the condition vector (the UNet's ``cond_dim``).
        hidden: hidden width of the per-column MLPs.

    ``forward(batch, column_dropout=0.0)``: in train mode, ``column_dropout`` hides single
    columns per row (never all of a row's present ones) so that sampling with some
    columns left out is in distribution.
    """

    def __init__(self, spec: dict, *, out_dim: int = 64, hidden: int = 128):
        super().__init__()
        if not spec.get("columns"):
            raise ConfigError("ConditionEncoder needs at least one condition column; an "
                              "unconditional generator has no condition encoder")
        if not isinstance(out_dim, int) or out_dim < 1 or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"ConditionEncoder: out_dim={out_dim!r} and hidden={hidden!r} "
                              "must be positive integers")
        self.spec = json.loads(json.dumps(spec))
        self.out_dim = out_dim
        self.hidden = hidden
        self.columns = list(self.spec["columns"])
        # Module keys are positions, not column names: a name may hold "." (see predictor_net).
        self.encoders = nn.ModuleDict()
        for i, col in enumerate(self.columns):
            self.encoders[f"c{i}"] = self._build(col)

    def _build(self, col: str) -> nn.Module:
        s, modality = self.spec, self.spec["columns"][col]
        if modality in ("numeric", "datetime"):
            return TabularEncoder(len(s["numeric_index"][col]), [], 0, out_dim=self.out_dim,
                                  hidden=self.hidden, dropout=0.0)
        if modality == "categorical":
            return TabularEncoder(0, [s["categorical_cardinalities"][col]], 0,
                                  out_dim=self.out_dim, hidden=self.hidden, dropout=0.0)
        if modality == "multilabel":
            start, stop = s["multilabel_slices"][col]
            return TabularEncoder(0, [], stop - start, out_dim=self.out_dim, hidden=self.hidden,
                                  dropout=0.0)
        if modality == "text":
            return TextEncoder(s["text_dims"][col], out_dim=self.out_dim, hidden=self.hidden,
                               dropout=0.0)
        if modality == "audio":
            _, n_mels, n_frames = s["audio_shapes"][col]
            return AudioEncoder(n_mels, n_frames, out_dim=self.out_dim, width=16)
        channels, height, width = s["image_shapes"][col]
        return ImageEncoder(channels, [height, width], width=16, out_dim=self.out_dim)

    # --- config -----------------------------------------------------------------------

    def config(self) -> dict:
        """JSON-able constructor arguments: ``ConditionEncoder(**enc.config())`` rebuilds it."""
        return {"spec": json.loads(json.dumps(self.spec)), "out_dim": self.out_dim,
                "hidden": self.hidden}

    @classmethod
    def from_config(cls, config: dict) -> ConditionEncoder:
        unknown = sorted(set(config) - {"spec", "out_dim", "hidden"})
        if unknown:
            raise ConfigError(f"ConditionEncoder config has unknown key(s) {unknown}; valid "
                              "keys are ['spec', 'out_dim', 'hidden']")
        return cls(**config)

    # --- forward ----------------------------------------------------------------------

    def _column_input(self, batch: Batch, col: str) -> tuple[torch.Tensor | None, ...]:
        """The encoder's input(s) for one column, read out of the batch."""
        s, modality = self.spec, self.spec["columns"][col]
        if modality in ("numeric", "datetime"):
            return (batch.numeric[:, s["numeric_index"][col]], None, None)  # (B, F_col)
        if modality == "categorical":
            i = s["categorical_index"][col]
            return (None, batch.categorical[:, i : i + 1], None)  # (B, 1)
        if modality == "multilabel":
            start, stop = s["multilabel_slices"][col]
            return (None, None, batch.multilabel[:, start:stop])  # (B, K_col)
        tensors = {"text": batch.text, "image": batch.image, "audio": batch.audio}[modality]
        if col not in tensors:
            raise DataError(f"the batch has no {modality} tensor for condition column {col!r}; "
                            "encode the rows with the generator's fitted transform")
        return (tensors[col],)  # (B, D) or (B, C, H, W)

    def presence(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``{column: (B,) bool}``: True where the row's condition cell is present."""
        rows = batch.rows
        present = {}
        for col in self.columns:
            mask = batch.mask.get(col)
            present[col] = (torch.ones(rows, dtype=torch.bool, device=batch.index.device)
                            if mask is None else mask.bool())
        return present

    def forward(self, batch: Batch, column_dropout: float = 0.0,
                present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The condition vector ``(B, out_dim)``; exactly zero for rows with no column present.

        ``present`` overrides the batch's presence masks (e.g. to hide a column at
        sampling time); by default they come from ``batch.mask``.
        """
        present = self.presence(batch) if present is None else present
        if self.training and column_dropout > 0 and len(self.columns) > 1:
            present = modality_dropout(present, column_dropout)
        out = None
        for i, col in enumerate(self.columns):
            inputs = self._column_input(batch, col)
            if len(inputs) == 1:
                x = inputs[0]
                keep = present[col].reshape(-1, *([1] * (x.dim() - 1)))
                # Absent cells hold placeholder zeros already; make sure NaNs cannot leak.
                emb = self.encoders[f"c{i}"](torch.where(keep, x, x.new_zeros(())))
            else:
                emb = self.encoders[f"c{i}"](*inputs)  # (B, out_dim)
            emb = emb * present[col][:, None].to(emb.dtype)  # absent -> adds nothing
            out = emb if out is None else out + emb
        return out  # (B, out_dim)
