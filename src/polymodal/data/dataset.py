"""A table as a torch ``Dataset`` of rows, and the ``collate`` that makes a ``Batch``.

:class:`TableDataset` runs :meth:`TableTransform.encode` once, so numbers, categories,
tags and text embeddings are small arrays in memory; image and audio cells are decoded
only when their row is read, so memory is O(batch), not O(table). Training-time image
augmentation draws its numbers from a counter-based hash of ``(seed, epoch, row)``
(:func:`row_uniforms`): the same row in the same epoch is augmented the same way whatever
the batch, worker count or order, so resumed training repeats the original run.

Typical use::

    ds = TableDataset(train_df, transform, train=True, seed=0)
    loader = make_loader(ds, batch_size=32, shuffle=True, seed=0)
    for epoch in range(num_epochs):
        set_epoch(loader, epoch)
        for batch in loader:  # polymodal.data.batch.Batch
            ...
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from polymodal.data.audio_augment import AUDIO_AUGMENT_DRAWS
from polymodal.data.batch import Batch
from polymodal.data.image_encoding import (
    AUGMENT_DRAWS,
    decode_image_pixels,
    pixels_to_float,
    shift_pixels,
)
from polymodal.data.transforms import EncodedTable, TableTransform
from polymodal.errors import ConfigError, DataError

Sample = dict  # one row: see TableDataset.__getitem__
PRELOAD_BATCH_SIZE = 256  # rows per worker batch in TableDataset.preload_media

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def row_uniforms(seed: int, epoch: int, rows: np.ndarray, count: int) -> np.ndarray:
    """``(len(rows), count)`` uniforms in [0, 1), each row's a pure function of
    ``(seed, epoch, row)``: SplitMix64 (Steele et al. 2014) over a key hashed from the three.

    What per-row augmentation draws from. A numpy ``Generator`` per row gave the same
    property but cost ~40 us to build, ~5 ms of a 128-row batch (a quarter of a training
    step on Fashion-MNIST); this is vectorised over the batch.
    """
    with np.errstate(over="ignore"):
        def mix(z: np.ndarray) -> np.ndarray:
            z = (z ^ (z >> np.uint64(30))) * _MIX1
            z = (z ^ (z >> np.uint64(27))) * _MIX2
            return z ^ (z >> np.uint64(31))

        key = mix(np.uint64(int(seed) % 2**64) + _GOLDEN)
        key = mix(key ^ (np.uint64(int(epoch) % 2**64) * _MIX1))
        state = mix(key ^ np.asarray(rows, dtype=np.int64).astype(np.uint64) * _MIX2)  # (B,)
        out = np.empty((len(state), count), dtype=np.float64)
        for j in range(count):
            state = state + _GOLDEN
            out[:, j] = (mix(state) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


class TableDataset(Dataset):
    """Rows of a table as per-modality tensors, ready for :func:`collate`.

    Args:
        df: the table (its ``attrs["base_dir"]`` is where relative media paths resolve).
        transform: a fitted :class:`TableTransform`.
        train: apply the transform's image and audio augmentation (if it has them).
        cache_media: keep decoded (un-augmented) images (as uint8 pixels) and audio in memory after the
            first read — for small tables that are read many times. With worker processes
            each worker fills its own copy, which ends with the epoch.
        with_label: include the label when the table has it.
        seed: base seed of the augmentation randomness.
        allow_missing_columns: treat absent image/audio/text columns as absent cells.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        transform: TableTransform,
        *,
        train: bool = False,
        cache_media: bool = False,
        with_label: bool = True,
        seed: int = 0,
        allow_missing_columns: bool = False,
    ):
        self.transform = transform
        self.train = train
        self.cache_media = cache_media
        self.seed = seed
        self.epoch = 0
        self.encoded: EncodedTable = transform.encode(
            df, with_label=with_label, allow_missing_columns=allow_missing_columns
        )
        self._media_cache: dict[str, _ColumnCache] = {}

    def __len__(self) -> int:
        return self.encoded.n_rows

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation randomness of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Sample:
        """Row ``index`` as a dict of tensors (one row of each ``Batch`` field)."""
        enc = self.encoded
        index = int(index)  # samplers may hand out numpy or tensor integers
        if not 0 <= index < enc.n_rows:
            raise IndexError(f"row {index} out of range for a table of {enc.n_rows} rows")
        sample: Sample = {"index": index, "text": {}, "image": {}, "audio": {}, "mask": {}}
        for name in ("numeric", "categorical", "multilabel"):
            values = getattr(enc, name)
            sample[name] = None if values is None else torch.from_numpy(values[index])
        for col, vectors in enc.text.items():
            sample["text"][col] = torch.from_numpy(vectors[index])  # (D,)
        for col, present in enc.mask.items():
            sample["mask"][col] = bool(present[index])
        sample["image"], sample["audio"], media_present = self._media_row(index)
        sample["mask"].update(media_present)
        audio_draws = self._audio_draws(np.array([index]))
        for k, col in enumerate(sample["audio"] if audio_draws is not None else ()):
            sample["audio"][col] = self.transform.augment_audio(
                sample["audio"][col][None], torch.tensor([media_present[col]]),
                audio_draws[:, k * AUDIO_AUGMENT_DRAWS:(k + 1) * AUDIO_AUGMENT_DRAWS], col)[0]
        sample["label"] = (
            None if enc.label is None else torch.from_numpy(np.asarray(enc.label[index]))
        )
        return sample

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """Rows ``indices`` as one :class:`Batch`, equal to ``collate([self[i] for i in
        indices])`` but built by slicing the encoded arrays (PyTorch's DataLoader calls
        this for a whole batch; :func:`collate` passes the Batch through).

        On image tables the per-row dicts were a noticeable share of a training step (see
        bench/RESULTS.md, 'Ad-hoc probes'). Media cells go through :meth:`_media_row`, as in
        the row path, so a row is augmented the same whichever path reads it.
        """
        enc = self.encoded
        idx = np.fromiter((int(i) for i in indices), dtype=np.int64, count=len(indices))
        if len(idx) == 0:
            raise DataError("collate got an empty list of rows")
        bad = idx[(idx < 0) | (idx >= enc.n_rows)]
        if len(bad):
            raise IndexError(f"row {int(bad[0])} out of range for a table of {enc.n_rows} rows")

        def rows(values: np.ndarray | None) -> torch.Tensor | None:
            return None if values is None else torch.from_numpy(values[idx])

        mask = {c: torch.from_numpy(np.asarray(present[idx], dtype=bool))
                for c, present in enc.mask.items()}
        draws = self._augment_draws(idx)
        augment = self.transform.augment_
        if self._cached(idx) and (draws is None or float(augment["rotate_deg"]) == 0.0):
            # One gather per column from the cache, shifted (when training) as one batch.
            image, audio = {}, {}
            for k, col in enumerate(enc.image):
                cache = self._media_cache[col]
                pixels, present = cache.values[idx], cache.present[idx]
                if draws is not None:
                    pixels = shift_pixels(pixels, draws[:, k * AUGMENT_DRAWS:
                                                        (k + 1) * AUGMENT_DRAWS], augment)
                image[col] = torch.from_numpy(pixels_to_float(pixels, present))
                mask[col] = torch.from_numpy(present)
            for col in enc.audio:
                audio[col], present = self._from_cache(col, idx)
                mask[col] = torch.from_numpy(present)
        else:
            # Mirroring is done below on the stacked batch (the same pixels, fewer calls).
            media = [self._media_row(index, None if draws is None else draws[k], flip=False)
                     for k, index in enumerate(idx.tolist())] if enc.image or enc.audio else []
            image = {c: torch.stack([m[0][c] for m in media]) for c in enc.image}  # (B, C, H, W)
            audio = {c: torch.stack([m[1][c] for m in media]) for c in enc.audio}  # (B, 1, M, T)
            for col in (*enc.image, *enc.audio):
                mask[col] = torch.tensor([m[2][col] for m in media], dtype=torch.bool)
        for k, col in enumerate(enc.image if draws is not None else ()):
            flip = self.transform.flips(draws[:, k * AUGMENT_DRAWS:(k + 1) * AUGMENT_DRAWS])
            if flip is not None and (flip & mask[col].numpy()).any():
                mirrored = torch.from_numpy(np.flatnonzero(flip & mask[col].numpy()))
                image[col][mirrored] = image[col][mirrored].flip(-1)
        audio_draws = self._audio_draws(idx)
        for k, col in enumerate(enc.audio if audio_draws is not None else ()):
            audio[col] = self.transform.augment_audio(
                audio[col], mask[col],
                audio_draws[:, k * AUDIO_AUGMENT_DRAWS:(k + 1) * AUDIO_AUGMENT_DRAWS], col)
        label = None
        if enc.label is not None:
            label = torch.from_numpy(np.asarray(enc.label)[idx])  # (B,) or (B, K)
        return Batch(index=torch.from_numpy(idx), numeric=rows(enc.numeric),
                     categorical=rows(enc.categorical), multilabel=rows(enc.multilabel),
                     text={c: torch.from_numpy(v[idx]) for c, v in enc.text.items()},
                     image=image, audio=audio, mask=mask, label=label)

    def _augment_draws(self, rows: np.ndarray) -> np.ndarray | None:
        """The rows' augmentation uniforms ``(B, AUGMENT_DRAWS x image columns)``, or None
        when nothing is augmented."""
        if not (self.train and self.encoded.image and self.transform.augment is not None):
            return None
        return row_uniforms(self.seed, self.epoch, rows, AUGMENT_DRAWS * len(self.encoded.image))

    def _audio_draws(self, rows: np.ndarray) -> np.ndarray | None:
        """The rows' audio augmentation uniforms ``(B, AUDIO_AUGMENT_DRAWS x audio
        columns)``, or None when audio is not augmented. They follow the image columns'
        draws in the same stream, so adding audio leaves an image's augmentation as it was."""
        enc = self.encoded
        if not (self.train and enc.audio and self.transform.audio_augment is not None):
            return None
        first = AUGMENT_DRAWS * len(enc.image)
        return row_uniforms(self.seed, self.epoch, rows,
                            first + AUDIO_AUGMENT_DRAWS * len(enc.audio))[:, first:]

    def _media_row(self, index: int, draws: np.ndarray | None = None, *,
                   flip: bool = True) -> tuple[dict, dict, dict]:
        """Row ``index``'s images ``{column: (C, H, W)}`` (augmented when training, from
        ``draws``, the row's line of :meth:`_augment_draws`: each image column reads its
        own :data:`AUGMENT_DRAWS`; ``flip=False`` leaves out the mirroring), audio
        ``{column: (1, n_mels, T)}`` and ``{column: present}`` for both."""
        enc = self.encoded
        images, audio, present = {}, {}, {}
        if draws is None:
            row_draws = self._augment_draws(np.array([index]))
            draws = None if row_draws is None else row_draws[0]
        for k, (col, cells) in enumerate(enc.image.items()):
            image, present[col] = self._media("image", col, index, cells[index])
            if draws is not None and present[col]:
                image = self.transform.augment_with(
                    image, draws[k * AUGMENT_DRAWS:(k + 1) * AUGMENT_DRAWS], flip=flip)
            images[col] = image
        for col, cells in enc.audio.items():
            audio[col], present[col] = self._media("audio", col, index, cells[index])
        return images, audio, present

    def _media(self, modality: str, column: str, index: int, cell) -> tuple[torch.Tensor, bool]:
        """Decode one image/audio cell (un-augmented), through the cache if enabled."""
        if not self.cache_media:
            decode = (self.transform.image_tensor if modality == "image"
                      else self.transform.audio_tensor)
            return decode(cell, self.encoded.base_dir, column=column)
        rows = np.array([index])
        if not self._cached(rows, [column]):
            values, present = decode_cell(self.transform, self.encoded.base_dir, modality,
                                          column, cell)
            self._cache_of(column).put(rows, values[None], np.array([present]))
        values, present = self._from_cache(column, rows)
        return values[0], bool(present[0])

    def _cache_of(self, column: str) -> _ColumnCache:
        if column not in self._media_cache:
            self._media_cache[column] = _ColumnCache(self.encoded.n_rows)
        return self._media_cache[column]

    def _cached(self, rows: np.ndarray, columns=None) -> bool:
        """Whether every media cell of ``rows`` (in ``columns``, default all) is cached."""
        if not self.cache_media:
            return False
        enc = self.encoded
        for column in (columns if columns is not None else (*enc.image, *enc.audio)):
            cache = self._media_cache.get(column)
            if cache is None or not cache.filled[rows].all():
                return False
        return True

    def _from_cache(self, column: str, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Cached cells of ``rows``: float tensors (B, ...) as the network takes them, and
        (B,) presence."""
        cache = self._media_cache[column]
        present = cache.present[rows]
        values = cache.values[rows]
        if column in self.encoded.image:
            return torch.from_numpy(pixels_to_float(values, present)), present
        return torch.from_numpy(values), present

    def preload_media(self, *, num_workers: int = 0, batch_size: int = PRELOAD_BATCH_SIZE) -> int:
        """Decode every image/audio cell into the cache now; returns the cells decoded.

        With ``num_workers > 0`` the files are decoded by that many worker processes (a
        DataLoader's), which on a table of many small files is nearly ``num_workers`` times
        faster than decoding them one by one inside the first epoch. Needs
        ``cache_media=True``; cells already cached are skipped.
        """
        if not self.cache_media:
            raise ConfigError("preload_media needs a dataset built with cache_media=True")
        enc = self.encoded
        columns = [("image", c) for c in enc.image] + [("audio", c) for c in enc.audio]
        filled = np.ones(enc.n_rows, dtype=bool)
        for _, column in columns:
            filled &= self._cache_of(column).filled
        todo = np.flatnonzero(~filled).tolist()
        if not columns or not todo:
            return 0
        # Forked workers share the table and transform as they are; spawned ones (where
        # fork does not exist) would get pickled copies, text embedder and all.
        context = ("fork" if num_workers and "fork" in multiprocessing.get_all_start_methods()
                   else None)
        loader = DataLoader(_MediaCells(self, columns), batch_size=batch_size, shuffle=False,
                            sampler=todo, num_workers=num_workers, collate_fn=_built,
                            persistent_workers=False, multiprocessing_context=context)
        for indices, decoded in loader:
            for column, (values, present) in decoded.items():
                # Copied out of the workers' shared memory: no file handles kept.
                self._cache_of(column).put(indices.numpy(), values.numpy(), present.numpy())
        return len(todo) * len(columns)

    @staticmethod
    def collate(samples: Sequence[Sample]) -> Batch:
        return collate(samples)


class _MediaCells(Dataset):
    """The media cells of a :class:`TableDataset`'s rows, decoded uncached and un-augmented
    (what :meth:`TableDataset.preload_media`'s workers run)."""

    def __init__(self, parent: TableDataset, columns: list[tuple[str, str]]):
        self.encoded, self.transform, self.columns = parent.encoded, parent.transform, columns

    def __len__(self) -> int:
        return self.encoded.n_rows

    def __getitem__(self, index: int) -> tuple[int, dict[str, tuple[torch.Tensor, bool]]]:
        _, out = self.__getitems__([index])
        return int(index), {c: (values[0], bool(present[0])) for c, (values, present) in out.items()}

    def __getitems__(self, indices: Sequence[int]
                     ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """A batch's ``(indices (B,), {column: (values (B, ...), present (B,) bool)})``,
        built in the worker (the DataLoader's fetcher calls this for a whole batch): one
        array per column crosses to the parent, not one per cell."""
        enc, out = self.encoded, {}
        for modality, column in self.columns:
            cells = enc.image[column] if modality == "image" else enc.audio[column]
            decoded = [decode_cell(self.transform, enc.base_dir, modality, column, cells[i])
                       for i in indices]
            # (np.stack copies: a decoded cell may be a read-only view.)
            out[column] = (torch.from_numpy(np.stack([values for values, _ in decoded])),
                           torch.tensor([present for _, present in decoded], dtype=torch.bool))
        return torch.tensor([int(i) for i in indices], dtype=torch.int64), out


class _ColumnCache:
    """One media column's decoded cells, as one array: images as uint8 pixels (a quarter of
    the float32 the network takes; converted per batch), audio as float32; ``filled`` says
    which rows are in. Allocated at the first cell put."""

    def __init__(self, num_rows: int):
        self.values: np.ndarray | None = None
        self.present = np.zeros(num_rows, dtype=bool)
        self.filled = np.zeros(num_rows, dtype=bool)

    def put(self, rows: np.ndarray, values: np.ndarray, present: np.ndarray) -> None:
        if self.values is None:
            self.values = np.zeros((len(self.filled), *values.shape[1:]), dtype=values.dtype)
        self.values[rows] = values
        self.present[rows] = present
        self.filled[rows] = True


def decode_cell(transform: TableTransform, base_dir, modality: str, column: str,
                cell) -> tuple[np.ndarray, bool]:
    """One media cell, un-augmented, as the cache keeps it: an image's uint8 (C, H, W)
    pixels, or the float32 log-mel of an audio clip; and whether it is present."""
    if modality == "image":
        return decode_image_pixels(cell, base_dir, transform.image_shapes_[column], column)
    values, present = transform.audio_tensor(cell, base_dir, column=column)
    return values.numpy(), bool(present)


def _built(batch):
    """The DataLoader's collate step for :class:`_MediaCells`, whose batches arrive built."""
    return batch


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack rows from :class:`TableDataset` into one :class:`Batch` (shapes in batch.py).

    A :class:`Batch` (what :meth:`TableDataset.__getitems__` builds) is returned as is.
    """
    if isinstance(samples, Batch):
        return samples
    if not samples:
        raise DataError("collate got an empty list of rows")
    first = samples[0]

    def stack(name: str) -> torch.Tensor | None:
        if first[name] is None:
            return None
        return torch.stack([s[name] for s in samples])

    label = None
    if all(s["label"] is not None for s in samples):
        label = torch.stack([s["label"] for s in samples])  # (B,) or (B, K)
    return Batch(
        index=torch.tensor([s["index"] for s in samples], dtype=torch.int64),  # (B,)
        numeric=stack("numeric"),  # (B, F_num)
        categorical=stack("categorical"),  # (B, F_cat)
        multilabel=stack("multilabel"),  # (B, F_tags)
        text={c: torch.stack([s["text"][c] for s in samples]) for c in first["text"]},  # (B, D)
        image={
            c: torch.stack([s["image"][c] for s in samples]) for c in first["image"]
        },  # (B, C, H, W)
        audio={
            c: torch.stack([s["audio"][c] for s in samples]) for c in first["audio"]
        },  # (B, 1, M, T)
        mask={
            c: torch.tensor([s["mask"][c] for s in samples], dtype=torch.bool)
            for c in first["mask"]
        },
        label=label,
    )


class SeededShuffleSampler(Sampler[int]):
    """A random permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Unlike a shuffling DataLoader with one long-lived generator, the order of epoch ``e``
    does not depend on how many epochs ran before in this process, so a resumed run
    visits rows in the same order as an uninterrupted one.
    """

    def __init__(self, n: int, *, seed: int = 0):
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(
    dataset: TableDataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of :class:`Batch` whose order is fixed by ``seed`` (and the epoch).

    With ``shuffle=True`` and no ``sampler``, rows are drawn by a
    :class:`SeededShuffleSampler`; call :func:`set_epoch` before each epoch.
    ``pin_memory``: page-locked batches, for a CUDA consumer
    (:func:`polymodal.train.devices.pins_memory` decides).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer, e.g. 32")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers={num_workers!r} must be a non-negative integer")
    if sampler is None and shuffle:
        sampler = SeededShuffleSampler(len(dataset), seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,  # order comes from the sampler, never from global RNG state
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,  # workers re-copy the dataset, so they see set_epoch
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's sampler and dataset which epoch starts (order and augmentation)."""
    for part in (loader.sampler, loader.dataset):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
