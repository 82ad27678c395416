"""The predictor network: one encoder per modality, a fusion module and a task head.

Built from a transform's feature spec (``TableTransform.feature_spec()``)::

    {"n_numeric": 3, "categorical_cardinalities": [5, 12], "multilabel_dim": 4,
     "text_dims": {"title": 384}, "image_shapes": {"photo": [3, 32, 32]},
     "audio_shapes": {"clip": [1, 32, 64]},
     "problem_type": "multiclass", "n_outputs": 10}

Modalities (the fusion's tokens) are named after their column — one per text, image and
audio column — plus ``"tabular"``, the numbers, categories and tags of a row encoded
together (their missing values are already encoded in the values: category index 1,
missing-indicator columns). Presence masks from ``Batch.mask`` hide absent cells: their
inputs are zeroed before encoding and their tokens cannot reach the output.

``forward(batch, drop={"photo"})`` hides the named modalities for every row — the
per-modality ablation; the kinds ``"image"``, ``"text"``, ``"audio"`` hide all columns of
that kind. ``encode(batch)`` is the fused ``(B, width)`` embedding, the same one that
conditions image generators; a spec without ``problem_type`` builds an encoder-only network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import torch
from torch import nn

from polymodal.data.batch import Batch
from polymodal.errors import ConfigError, DataError, SchemaError
from polymodal.models.encoders import AudioEncoder, ImageEncoder, TabularEncoder, TextEncoder
from polymodal.models.fusion import AttentionFusion, ConcatFusion, SingleFusion
from polymodal.models.heads import TaskHead

TABULAR = "tabular"
FUSIONS = ("concat", "attention", "single")
_SPEC_DEFAULTS: dict = {
    "n_numeric": 0,
    "categorical_cardinalities": [],
    "multilabel_dim": 0,
    "text_dims": {},
    "image_shapes": {},
    "audio_shapes": {},
    "problem_type": None,
    "n_outputs": None,
}


def _normalise_spec(spec: dict) -> dict:
    """The spec with defaults filled in, JSON-normalised, and its shapes checked."""
    if not isinstance(spec, dict):
        raise ConfigError(f"feature spec must be a dict, got {type(spec).__name__}")
    full = json.loads(json.dumps({**_SPEC_DEFAULTS, **spec}))
    for col, shape in full["image_shapes"].items():
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"feature spec: image column {col!r} has shape {shape}; expected [C, H, W]")
    for col, shape in full["audio_shapes"].items():
        if len(shape) != 3 or shape[0] != 1 or min(shape) < 1:
            raise ConfigError(f"feature spec: audio column {col!r} has shape {shape}; "
                              "expected [1, n_mels, n_frames]")
    for col, dim in full["text_dims"].items():
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"feature spec: text column {col!r} has dimension {dim!r}; "
                              "expected a positive integer")
    if full["problem_type"] is not None and full["n_outputs"] is None:
        raise ConfigError(f"feature spec has problem_type {full['problem_type']!r} but no n_outputs")
    return full


class FusionPredictor(nn.Module):
    """Encoders per modality -> fusion -> task head, consuming a :class:`Batch`.

    Args:
        spec: the feature spec (see the module docstring); stored as ``self.spec``.
        fusion: ``"concat"`` (:class:`ConcatFusion`), ``"attention"`` (:class:`AttentionFusion`)
            or, for a spec with exactly one modality, ``"single"`` (:class:`SingleFusion`).
        width: every encoder's output size and the fused embedding's size. Internal
            widths follow it (image CNN base width ``max(8, width // 4)``, audio CNN
            ``max(8, width // 8)``, MLP hidden ``2 * width``), so one number sizes the model.
        modality_dropout: probability of hiding a whole modality per row in train mode.
        dropout: dropout inside the encoders' MLPs, the fusion and before the head.
        audio_norm: the audio encoders' ``norm`` (:class:`AudioEncoder`): ``"clip"`` or
            ``"band"`` (per-band normalisation over each clip, a CNN of width
            ``max(8, width // 4)``).
    """

    def __init__(
        self,
        spec: dict,
        *,
        fusion: str = "concat",
        width: int = 128,
        modality_dropout: float = 0.1,
        dropout: float = 0.1,
        audio_norm: str = "clip",
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion={fusion!r} is not one of {list(FUSIONS)}")
        if not isinstance(width, int) or width < 4:
            raise ConfigError(f"width must be an integer >= 4, got {width!r}")
        self.spec = _normalise_spec(spec)
        config = {"fusion": fusion, "width": width, "modality_dropout": modality_dropout,
                  "dropout": dropout}
        if audio_norm != "clip":  # models saved before the option load as they were
            config["audio_norm"] = audio_norm
        self._config = json.loads(json.dumps(config))
        self.width = width
        s = self.spec

        # Module keys are positional ("image_0"), not column names: a column name may hold
        # characters a state-dict key cannot ("."), and positions follow the spec's order.
        self._names: list[str] = []
        self._kind: dict[str, str] = {}
        self._key: dict[str, str] = {}
        self.encoders = nn.ModuleDict()
        if s["n_numeric"] or s["categorical_cardinalities"] or s["multilabel_dim"]:
            self._add(TABULAR, "tabular", "tabular", TabularEncoder(
                s["n_numeric"], s["categorical_cardinalities"], s["multilabel_dim"],
                out_dim=width, hidden=2 * width, dropout=dropout))
        for i, (col, dim) in enumerate(s["text_dims"].items()):
            self._add(col, "text", f"text_{i}", TextEncoder(
                dim, out_dim=width, hidden=2 * width, dropout=dropout))
        for i, (col, (channels, height, width_px)) in enumerate(s["image_shapes"].items()):
            self._add(col, "image", f"image_{i}", ImageEncoder(
                channels, [height, width_px], width=max(8, width // 4), out_dim=width))
        for i, (col, (_, n_mels, n_frames)) in enumerate(s["audio_shapes"].items()):
            self._add(col, "audio", f"audio_{i}", AudioEncoder(
                n_mels, n_frames, out_dim=width, norm=audio_norm,
                width=max(8, width // (8 if audio_norm == "clip" else 4))))
        if not self._names:
            raise ConfigError("feature spec has no features (no numeric, categorical, multilabel, "
                              "text, image or audio columns); a model needs at least one")

        if fusion == "single":
            if len(self._names) != 1:
                raise ConfigError(f"fusion='single' needs a spec with exactly one modality; this "
                                  f"one has {len(self._names)}: {self._names}. Use 'concat' or "
                                  "'attention'")
            self.fusion = SingleFusion(self._names, width, modality_dropout=modality_dropout)
        elif fusion == "concat":
            self.fusion = ConcatFusion(self._names, width, out_dim=width, hidden=2 * width,
                                       dropout=dropout, modality_dropout=modality_dropout)
        else:
            self.fusion = AttentionFusion(self._names, width, out_dim=width,
                                          num_heads=4 if width % 4 == 0 else 1,
                                          dropout=dropout, modality_dropout=modality_dropout)
        self.problem_type = s["problem_type"]
        self.head = (None if self.problem_type is None
                     else TaskHead(width, self.problem_type, s["n_outputs"], dropout=dropout))

    def _add(self, name: str, kind: str, key: str, encoder: nn.Module) -> None:
        if name in self._kind:
            raise SchemaError(f"column name {name!r} is used twice in the feature spec (the name "
                              f"{TABULAR!r} is reserved for the numeric/categorical/tag group); "
                              "rename the column")
        self._names.append(name)
        self._kind[name] = kind
        self._key[name] = key
        self.encoders[key] = encoder

    # --- config -----------------------------------------------------------------------

    def config(self) -> dict:
        """The keyword arguments (not the spec), JSON-able; see :meth:`from_config`."""
        return dict(self._config)

    @classmethod
    def from_config(cls, spec: dict, config: dict) -> FusionPredictor:
        """Rebuild from a spec and :meth:`config`'s dict; an unknown key raises ConfigError."""
        unknown = sorted(set(config) - {"fusion", "width", "modality_dropout", "dropout"})
        if unknown:
            raise ConfigError(f"FusionPredictor config has unknown key(s) {unknown}; valid keys "
                              "are ['fusion', 'width', 'modality_dropout', 'dropout']")
        return cls(spec, **config)

    # --- modalities -------------------------------------------------------------------

    def modalities(self) -> list[str]:
        """Modality names in token order: ``"tabular"`` (if any) then text, image, audio columns."""
        return list(self._names)

    def _resolve_drop(self, drop: Iterable[str] | None) -> set[str]:
        """Modality names to hide, from column names and/or the kinds image/text/audio."""
        if not drop:
            return set()
        if isinstance(drop, str):
            drop = [drop]
        hidden: set[str] = set()
        for item in drop:
            if item in self._kind:
                hidden.add(item)
            elif item in ("image", "text", "audio"):
                hidden.update(n for n, k in self._kind.items() if k == item)
            else:
                raise ConfigError(f"drop: {item!r} is not a modality of this model; choose among "
                                  f"{self._names} or the kinds 'image', 'text', 'audio'")
        return hidden

    # --- forward ----------------------------------------------------------------------

    def _modality_input(self, batch: Batch, name: str) -> torch.Tensor:
        """The column's tensor from the batch, checked against the spec's shape."""
        kind = self._kind[name]
        tensors = getattr(batch, kind)
        if name not in tensors:
            raise DataError(f"the batch has no {kind} tensor for column {name!r} (it has "
                            f"{sorted(tensors)}); transform the table with the model's fitted transform")
        x = tensors[name]
        if kind == "text":
            expected = (batch.rows, self.spec["text_dims"][name])
        else:
            expected = (batch.rows, *self.spec[f"{kind}_shapes"][name])
        if tuple(x.shape) != expected:
            raise DataError(f"{kind} column {name!r} has shape {tuple(x.shape)}; expected "
                            f"{expected} as at fit time")
        return x

    def _tokens(self, batch: Batch, drop: Iterable[str] | None
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each modality's embedding (B, width) and presence (B,) bool."""
        hidden = self._resolve_drop(drop)
        rows = batch.rows
        device = batch.index.device
        tokens: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        for name in self._names:
            encoder = self.encoders[self._key[name]]
            if name in hidden:
                is_present = torch.zeros(rows, dtype=torch.bool, device=device)
            elif name == TABULAR:
                # Tabular missing values live in the values themselves (index 1, indicators).
                is_present = torch.ones(rows, dtype=torch.bool, device=device)
            else:
                # A column without a mask entry counts as present in every row.
                mask = batch.mask.get(name)
                if mask is not None and tuple(mask.shape) != (rows,):
                    raise DataError(f"mask for column {name!r} has shape {tuple(mask.shape)}; "
                                    f"expected ({rows},), one flag per row")
                is_present = (torch.ones(rows, dtype=torch.bool, device=device) if mask is None
                              else mask.bool())
            present[name] = is_present
            if name == TABULAR:
                tokens[name] = encoder(batch.numeric, batch.categorical, batch.multilabel)
                continue
            x = self._modality_input(batch, name)
            # Absent cells should hold zeros already; enforce it so no placeholder value,
            # NaN included, reaches the encoder or its gradients.
            keep = is_present.reshape(rows, *([1] * (x.dim() - 1)))
            x = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
            tokens[name] = encoder(x)  # (B, width)
        return tokens, present

    def encode(self, batch: Batch, drop: Iterable[str] | None = None) -> torch.Tensor:
        """The fused embedding ``(B, width)`` of the batch's rows.

        In train mode modality dropout applies here too; call ``.eval()`` for a
        deterministic embedding (e.g. when conditioning a generator on a frozen encoder).
        """
        tokens, present = self._tokens(batch, drop)
        return self.fusion(tokens, present)  # (B, width)

    def forward(self, batch: Batch, drop: Iterable[str] | None = None) -> torch.Tensor:
        """Raw outputs (logits or standardised values; see ``heads.py``) for the batch's rows."""
        if self.head is None:
            raise ConfigError("this network was built from a spec without problem_type, so it has "
                              "no head; call encode() for embeddings, or add problem_type to the spec")
        return self.head(self.encode(batch, drop))
