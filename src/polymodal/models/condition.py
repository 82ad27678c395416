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

With ``context_dim > 0`` the encoder also emits **tokens** for the UNet's cross-attention,
packed after the vector (``UNet(context_tokens=...)``): one per column (its embedding,
projected), and for a text column with hashed n-grams one per n-gram bucket (a learned
embedding, present where the caption has that n-gram). Each pixel of the lower
resolutions can then look up the words themselves ("star") instead of reading them off
one pooled vector that is the same at every pixel. Absent columns and dropped rows give
all-zero tokens, which the UNet masks out.

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
# Most n-gram tokens kept per caption (its present buckets, lowest bucket first): a
# shapes caption has 29-58, and attending to all 256 buckets, mostly masked, made
# sampling twice as slow.
MAX_NGRAM_TOKENS = 64


def condition_spec(feature_spec: dict, columns: list[str]) -> dict:
    """The parts of a transform's ``feature_spec()`` that the condition ``columns`` use.

    Returns ``{"columns": {col: modality}, "numeric_index": {col: [i, ...]},
    "categorical_index": {col: i}, "categorical_cardinalities": {col: n},
    "multilabel_slices": {col: [start, stop]}, "text_dims": {col: d},
    "image_shapes": {col: [C, H, W]}, "audio_shapes": {col: [1, n_mels, T]},
    "text_ngram_slices": {col: [start, stop]}}`` -- positions into the ``Batch`` tensors,
    so the encoder can read one column out of the shared numeric/categorical/multilabel
    blocks (and a text vector's hashed n-gram part).
    """
    modality_of = feature_spec["columns"]
    spec: dict = {"columns": {}, "numeric_index": {}, "categorical_index": {},
                  "categorical_cardinalities": {}, "multilabel_slices": {}, "text_dims": {},
                  "image_shapes": {}, "audio_shapes": {}, "text_ngram_slices": {}}
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
            ngrams = feature_spec.get("text_ngram_slices", {}).get(col)
            if ngrams:
                spec["text_ngram_slices"][col] = list(ngrams)
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
        context_dim: width of the cross-attention tokens packed after the vector (see the
            module docstring); 0 for none.

    ``forward(batch, column_dropout=0.0)``: in train mode, ``column_dropout`` hides single
    columns per row (never all of a row's present ones) so that sampling with some
    columns left out is in distribution.
    """

    def __init__(self, spec: dict, *, out_dim: int = 64, hidden: int = 128,
                 context_dim: int = 0):
        super().__init__()
        if not spec.get("columns"):
            raise ConfigError("ConditionEncoder needs at least one condition column; an "
                              "unconditional generator has no condition encoder")
        if not isinstance(out_dim, int) or out_dim < 1 or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"ConditionEncoder: out_dim={out_dim!r} and hidden={hidden!r} "
                              "must be positive integers")
        if not isinstance(context_dim, int) or context_dim < 0:
            raise ConfigError(f"ConditionEncoder: context_dim={context_dim!r} must be an "
                              "integer >= 0 (0: no cross-attention tokens)")
        self.spec = json.loads(json.dumps(spec))
        self.out_dim = out_dim
        self.hidden = hidden
        self.context_dim = context_dim
        self.columns = list(self.spec["columns"])
        # Module keys are positions, not column names: a name may hold "." (see predictor_net).
        self.encoders = nn.ModuleDict()
        for i, col in enumerate(self.columns):
            self.encoders[f"c{i}"] = self._build(col)
        self.column_tokens = nn.ModuleDict()
        self.ngram_tokens = nn.ModuleDict()
        if context_dim:
            for i, col in enumerate(self.columns):
                self.column_tokens[f"c{i}"] = nn.Linear(out_dim, context_dim)
                start, stop = self.spec.get("text_ngram_slices", {}).get(col, (0, 0))
                if stop > start:
                    self.ngram_tokens[f"c{i}"] = nn.Embedding(stop - start, context_dim)

    @property
    def num_tokens(self) -> int:
        """Cross-attention tokens packed after the vector (0 without ``context_dim``)."""
        if not self.context_dim:
            return 0
        return len(self.columns) + sum(min(e.num_embeddings, MAX_NGRAM_TOKENS)
                                       for e in self.ngram_tokens.values())

    @property
    def width(self) -> int:
        """Width of what :meth:`forward` returns: the vector plus the packed tokens."""
        return self.out_dim + self.num_tokens * self.context_dim

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
        config = {"spec": json.loads(json.dumps(self.spec)), "out_dim": self.out_dim,
                  "hidden": self.hidden}
        if self.context_dim:  # absent in folders saved before tokens existed
            config["context_dim"] = self.context_dim
        return config

    @classmethod
    def from_config(cls, config: dict) -> ConditionEncoder:
        unknown = sorted(set(config) - {"spec", "out_dim", "hidden", "context_dim"})
        if unknown:
            raise ConfigError(f"ConditionEncoder config has unknown key(s) {unknown}; valid "
                              "keys are ['spec', 'out_dim', 'hidden', 'context_dim']")
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
        """The condition vector ``(B, width)``: ``(B, out_dim)`` then the packed tokens;
        exactly zero for rows with no column present.

        ``present`` overrides the batch's presence masks (e.g. to hide a column at
        sampling time); by default they come from ``batch.mask``.
        """
        present = self.presence(batch) if present is None else present
        if self.training and column_dropout > 0 and len(self.columns) > 1:
            present = modality_dropout(present, column_dropout)
        out, tokens = None, []
        for i, col in enumerate(self.columns):
            inputs = self._column_input(batch, col)
            if len(inputs) == 1:
                x = inputs[0]
                keep = present[col].reshape(-1, *([1] * (x.dim() - 1)))
                # Absent cells hold placeholder zeros already; make sure NaNs cannot leak.
                emb = self.encoders[f"c{i}"](torch.where(keep, x, x.new_zeros(())))
            else:
                emb = self.encoders[f"c{i}"](*inputs)  # (B, out_dim)
            keep = present[col][:, None].to(emb.dtype)  # (B, 1)
            emb = emb * keep  # absent -> adds nothing
            out = emb if out is None else out + emb
            if self.context_dim:
                tokens += self._tokens(i, col, emb, inputs, keep)
        if tokens:  # (B, out_dim + L * context_dim)
            out = torch.cat([out, *(t.flatten(1) for t in tokens)], dim=1)
        return out

    def _tokens(self, i: int, col: str, emb: torch.Tensor, inputs, keep: torch.Tensor):
        """Column ``i``'s cross-attention tokens ``[(B, L_i, context_dim), ...]``, zero where
        absent: its projected embedding, then one per hashed n-gram bucket of its text."""
        out = [(self.column_tokens[f"c{i}"](emb) * keep)[:, None, :]]
        if f"c{i}" in self.ngram_tokens:
            start, stop = self.spec["text_ngram_slices"][col]
            counts = inputs[0][:, start:stop]  # (B, K): the caption's n-gram features
            has = (counts > 0).to(emb.dtype) * keep  # (B, K)
            # The present buckets first, lowest bucket first, at most MAX_NGRAM_TOKENS (a
            # top-k on distinct keys: a stable sort does not export to ONNX).
            k = has.shape[1]
            rank = has.float() * (2 * k) + torch.arange(k, 0, -1, device=has.device)  # fp32
            order = rank.topk(min(k, MAX_NGRAM_TOKENS), dim=1).indices  # (B, T)
            table = self.ngram_tokens[f"c{i}"].weight  # (K, context_dim)
            out.append(table[order] * has.gather(1, order)[:, :, None])  # (B, T, context_dim)
        return out
