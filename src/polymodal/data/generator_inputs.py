"""What a caller gives a fitted Generator, as tensors: the conditions asked for (as a
:class:`Batch`), the images to edit and the inpainting keep-masks.

Each function checks its input and names what is wrong in one error.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
import torch
from PIL import Image

from polymodal.data.batch import Batch
from polymodal.data.category_encoding import UNKNOWN_INDEX
from polymodal.data.dataset import TableDataset, collate
from polymodal.data.media import MediaError, load_audio, load_image
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, DataError


def condition_frame(info: dict, n: int, conditions: dict | None, prompts
                    ) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """A table of ``n`` rows holding the requested condition values, and the columns not
    given (they hold None: the null condition). ``info`` is the generator's ``conditions_``.
    """
    known = list(info)
    if conditions is not None and not isinstance(conditions, dict):
        raise ConfigError(f"conditions={conditions!r} must be a dict {{column: value or "
                          "list of n values}}")
    conditions = dict(conditions or {})
    if (conditions or prompts is not None) and not known:
        raise ConfigError("this generator is unconditional (trained with condition=None); "
                          "sample it without conditions= or prompts=")
    if prompts is not None:
        text = [c for c in known if info[c]["modality"] == "text"]
        if len(text) != 1:
            described = ", ".join(f"{c} ({info[c]['modality']})" for c in known)
            raise ConfigError(
                f"prompts= needs exactly one text condition column, but this generator is "
                f"conditioned on {described}" + (
                    "; pass the texts through conditions={column: [...]} instead"
                    if text else "; it takes no text prompts"))
        if isinstance(prompts, str):
            prompts = [prompts]
        if text[0] in conditions:
            raise ConfigError(f"pass the text for {text[0]!r} once: as prompts= or in "
                              "conditions=, not both")
        conditions[text[0]] = list(prompts)
    unknown = [c for c in conditions if c not in known]
    if unknown:
        raise ConfigError(f"conditions for {unknown}, which this generator does not know; "
                          f"its condition columns are {known}")
    frame = {}
    for col in known:
        if col not in conditions:
            frame[col] = [None] * n
            continue
        value = conditions[col]
        if isinstance(value, list | tuple | np.ndarray | pd.Series):
            values = list(value)
            if not values or n % len(values):
                raise ConfigError(
                    f"conditions[{col!r}] has {len(values)} values for n={n} images; pass "
                    f"one value, {n} values, or k values with k dividing {n} (each value "
                    f"then gets n/k consecutive images)")
            # k < n values: n/k consecutive images each, e.g. [3, 7] -> 3 3 ... 7 7.
            values = [v for v in values for _ in range(n // len(values))]
        else:
            values = [value] * n
        frame[col] = values
    df = pd.DataFrame(frame, dtype=object)
    df.attrs["base_dir"] = os.getcwd()
    _check_numeric(df, info, conditions)
    _check_media(info, conditions, df.attrs["base_dir"])
    return df, tuple(c for c in known if c not in conditions)


def _check_numeric(df: pd.DataFrame, info: dict, given: dict) -> None:
    for col in given:
        if info[col]["modality"] != "numeric":
            continue
        for v in df[col]:
            if v is None:
                continue
            try:
                ok = math.isfinite(float(v))
            except (TypeError, ValueError, OverflowError):  # Overflow: an int of 400 digits
                ok = False
            if not ok:
                raise ConfigError(f"conditions[{col!r}] holds {v!r:.80}; this numeric condition "
                                  f"needs finite numbers (seen in training: "
                                  f"{info[col].get('min')}..{info[col].get('max')})")


def _check_media(info: dict, given: dict, base_dir: str) -> None:
    """Each clip or image given for an audio/image condition must decode: training reads
    an unreadable cell as "absent", but a caller who names a file means that file."""
    for col, value in given.items():
        modality = info[col]["modality"]
        if modality not in ("audio", "image"):
            continue
        # Read as condition_frame reads it: a sequence holds one value per group of images.
        many = isinstance(value, list | tuple | np.ndarray | pd.Series)
        for v in (list(value) if many else [value]):
            if v is None:
                continue
            try:
                load_audio(v, base_dir) if modality == "audio" else load_image(v, base_dir)
            except MediaError as exc:
                kind = ("a WAV, FLAC or OGG clip (a path, bytes, or (waveform, sample_rate))"
                        if modality == "audio" else "an image (a path, bytes or pixels)")
                raise DataError(f"conditions[{col!r}]: {exc}; pass {kind}") from None


def condition_batch(df: pd.DataFrame, transform: TableTransform, info: dict) -> Batch:
    """The condition columns of ``df`` as a Batch (the target image marked absent); a
    class the model never saw is an error listing the known ones."""
    dataset = TableDataset(df, transform, with_label=False, allow_missing_columns=True)
    enc = dataset.encoded
    for col, entry in info.items():
        if entry["modality"] != "categorical":
            continue
        i = list(transform.vocab_).index(col)
        unseen = (enc.categorical[:, i] == UNKNOWN_INDEX) & enc.mask[col]
        if unseen.any():
            value = df[col].iloc[int(np.flatnonzero(unseen)[0])]
            raise ConfigError(f"condition {col}={value!r:.80} is a class the model never saw; "
                              f"known classes: {entry['classes']}")
    return collate([dataset[i] for i in range(len(dataset))])


def edit_images(images, transform: TableTransform, column: str,
                image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Edit inputs (uint8 arrays, PIL images or paths; one or a list) -> (N, C, H, W) in
    [-1, 1], converted like training images; a warning names each converted one."""
    if isinstance(images, np.ndarray):
        single = images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4))
        items = [images] if single else list(images)
    elif isinstance(images, list | tuple):
        items = list(images)
    else:
        items = [images]
    if not items:
        raise DataError("edit got no images; pass an image or a list of them")
    channels, height, width = image_shape
    converted, out = [], []
    for i, item in enumerate(items):
        try:
            img = load_image(item, os.getcwd())
        except DataError as exc:
            raise DataError(f"image {i}: {exc}") from None
        img_channels = 1 if img.mode in ("L", "1", "I", "F") else 3
        if img.size != (width, height) or img_channels != channels:
            converted.append(f"image {i} ({img.size[0]}x{img.size[1]}, {img_channels} "
                             "channel(s))")
        x, _ = transform.image_tensor(img, column=column)  # (C, H, W)
        out.append(x)
    if converted:
        warnings.warn(f"{', '.join(converted)} converted to the model's {width}x{height}, "
                      f"{channels} channel(s)", UserWarning, stacklevel=3)
    return torch.stack(out)


def keep_mask(mask, num_images: int, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """A keep-mask (H, W) / (N, H, W), array, PIL image or path -> (N, 1, H, W) bool."""
    _, height, width = image_shape
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        mask = np.asarray(load_image(mask, os.getcwd(), channels=1))
    masks = mask[None] if mask.ndim == 2 else mask
    if masks.ndim != 3 or masks.shape[0] not in (1, num_images):
        raise DataError(f"mask has shape {mask.shape}; pass (H, W) or ({num_images}, H, W), "
                        "True/255 where the pixel is kept")
    if masks.dtype == bool:
        keep = masks
    else:
        values = masks.astype(np.float64)
        keep = values > (127.5 if values.max(initial=0) > 1 else 0.5)
    h, w = keep.shape[1:]
    if (h, w) != (height, width):
        if h * width != w * height:
            raise DataError(f"mask is {w}x{h} but the images are {width}x{height}, another "
                            "aspect ratio; pass a mask of the image's size")
        keep = np.stack([np.asarray(Image.fromarray(m).resize((width, height),
                                                              Image.Resampling.NEAREST))
                         for m in keep])
    keep_t = torch.from_numpy(np.ascontiguousarray(keep))[:, None]  # (N|1, 1, H, W)
    return keep_t.expand(num_images, -1, -1, -1)
