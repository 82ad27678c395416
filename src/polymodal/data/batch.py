"""The ``Batch``: per-modality tensors for a set of rows, plus presence masks.

This is the one contract between ``data`` and ``models``. Every model consumes a
``Batch``; every dataset yields one (through :func:`collate`). Shapes:

- ``numeric``:      (B, F_num) float32 — scaled numbers, then one 0/1 missing indicator
                     per numeric column that had missing values at fit time, then
                     datetime features. ``None`` when the table has none.
- ``categorical``:  (B, F_cat) int64 — vocabulary indices; 0 is "unknown", 1 is "missing".
- ``multilabel``:   (B, F_tags) float32 multi-hot over all multilabel feature columns.
- ``text``:         {column: (B, D_text) float32} — sentence embeddings (frozen).
- ``image``:        {column: (B, C, H, W) float32} — normalised pixels; zeros where absent.
- ``audio``:        {column: (B, 1, n_mels, T) float32} — log-mel; zeros where absent.
- ``mask``:         {column: (B,) bool} — True where the cell is present and decoded.
                     Every feature column of every modality has an entry.
- ``label``:        (B,) int64 for classification, (B,) float32 regression,
                     (B, K) float32 multilabel; ``None`` when the rows have no label.
- ``index``:        (B,) int64 — the rows' positions in the source table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    index: torch.Tensor
    numeric: torch.Tensor | None = None
    categorical: torch.Tensor | None = None
    multilabel: torch.Tensor | None = None
    text: dict[str, torch.Tensor] = field(default_factory=dict)
    image: dict[str, torch.Tensor] = field(default_factory=dict)
    audio: dict[str, torch.Tensor] = field(default_factory=dict)
    mask: dict[str, torch.Tensor] = field(default_factory=dict)
    label: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def rows(self):
        """The number of rows as the index's size: symbolic while ``torch.export`` traces a
        model (an ONNX export with a dynamic batch), where ``len()`` would fix it."""
        return self.index.shape[0]

    def _map(self, fn) -> Batch:
        """A copy with ``fn`` applied to every tensor (those in the dicts too)."""

        def move(v):
            if isinstance(v, torch.Tensor):
                return fn(v)
            if isinstance(v, dict):
                return {k: fn(t) for k, t in v.items()}
            return v

        return Batch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory: a ``DataLoader(pin_memory=True)`` calls this (it
        leaves objects without the method unpinned), so ``to(cuda, non_blocking=True)``
        copies asynchronously."""
        return self._map(lambda t: t.pin_memory())
