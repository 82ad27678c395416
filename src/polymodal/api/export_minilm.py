"""MiniLM sentence embeddings with onnxruntime and numpy: BERT's uncased WordPiece tokenizer,
the exported transformer, mean pooling and L2 normalisation.

This file is copied as ``minilm.py`` into an export whose text columns polymodal embedded
with MiniLM (``text_encoder`` ``minilm`` or ``minilm+hashed``), next to ``minilm.onnx`` and
``minilm_vocab.txt``; ``runtime.py`` loads it from there. Like ``runtime.py`` it imports
nothing from polymodal. The tokenizer follows Hugging Face's ``BertTokenizerFast`` with
the model's settings (lowercase, accents stripped, Chinese characters split, punctuation
split, ``##`` continuations, 100 characters at most per word, ``max_length`` tokens with
``[CLS]`` and ``[SEP]``); the export's parity tests hold it to the same token ids.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import onnxruntime as ort

GRAPH_FILE, VOCAB_FILE = "minilm.onnx", "minilm_vocab.txt"
MAX_WORD_CHARS = 100
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class WordPiece:
    """BERT's uncased tokenizer over ``vocab`` (one token per line, the line is its id)."""

    def __init__(self, vocab_path, max_length: int = 256):
        lines = Path(vocab_path).read_text(encoding="utf-8").split("\n")
        self.vocab = {token: i for i, token in enumerate(lines) if token}
        self.max_length = int(max_length)
        self.unk, self.cls, self.sep = (self.vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]"))

    def _normalise(self, text: str) -> str:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if any(lo <= cp <= hi for lo, hi in _CJK):
                out.append(f" {ch} ")
            else:
                out.append(" " if _is_whitespace(ch) else ch)
        text = unicodedata.normalize("NFD", "".join(out))
        return "".join(ch for ch in text if unicodedata.category(ch) != "Mn").lower()

    def _words(self, text: str) -> list[str]:
        words, current = [], []
        for ch in self._normalise(text):
            if _is_whitespace(ch) or _is_punctuation(ch):
                if current:
                    words.append("".join(current))
                    current = []
                if not _is_whitespace(ch):
                    words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
        return words

    def _pieces(self, word: str) -> list[int]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]  # no piece fits: the whole word is unknown
            start = end
        return ids

    def ids(self, text: str) -> list[int]:
        """``[CLS] pieces [SEP]``, cut to ``max_length`` tokens."""
        pieces = [i for word in self._words(text) for i in self._pieces(word)]
        return [self.cls, *pieces[: self.max_length - 2], self.sep]

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids`` (N, L) int64, padded with 0."""
        rows = [self.ids(t) for t in texts]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


class MiniLM:
    """``embed(texts)`` -> (N, 384) float32 L2-normalised sentence vectors, as polymodal's."""

    def __init__(self, folder, max_length: int = 256, threads: int | None = None,
                 batch_size: int = 64):
        folder = Path(folder)
        self.tokenizer = WordPiece(folder / VOCAB_FILE, max_length)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / GRAPH_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        unique = list(dict.fromkeys(texts))  # each distinct text once, as polymodal does
        vectors = {}
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            out = self.session.run(None, self.tokenizer.batch(chunk))[0]
            vectors.update(zip(chunk, out, strict=True))
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([vectors[t] for t in texts]).astype(np.float32)
