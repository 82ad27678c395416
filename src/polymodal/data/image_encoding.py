"""Image cells as (C, H, W) tensors in [-1, 1], and their training-time augmentation.

:func:`fit_image_shape` chooses a column's channels and square side from a sample of its
images; :func:`decode_image` turns one cell (a path, bytes, an array or a PIL image) into a
tensor of that shape, keeping the aspect ratio and padding with black (-1); an absent or
unreadable cell gives zeros and ``present=False``. :func:`augment_with` applies a random
rotation, shift and (if asked) horizontal flip drawn from :data:`AUGMENT_DRAWS` uniforms.
:func:`tensor_to_uint8` goes back from tensors to pixels, e.g. to save generated images.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from polymodal.data.cells import cell_missing, sample_present
from polymodal.data.media import CELL_DECODE_ERRORS, image_to_array, load_image
from polymodal.errors import DataError

logger = logging.getLogger(__name__)

# Image size inference: small enough for a 2-core CPU, large enough to see something.
MAX_IMAGE_SIZE = 64
MIN_IMAGE_SIZE = 8
IMAGE_SAMPLE = 64  # images decoded at fit time to choose size and channels
AUGMENT_DEFAULTS = {"hflip": False, "shift_px": 2, "rotate_deg": 0.0}
AUGMENT_DRAWS = 4  # uniforms one image's augmentation reads (see augment_with)


def fit_image_shape(
    column: str,
    cells: pd.Series,
    base_dir,
    *,
    channels: int | None,
    size: int | None,
    notes: list[str],
) -> list[int]:
    """Choose [C, H, W] for one image column from a sample of its cells.

    ``channels``/``size`` given (not None) are kept; the ones chosen here are explained
    in a line appended to ``notes``.
    """
    sides, greys = [], []
    for cell in sample_present(cells, IMAGE_SAMPLE):
        try:
            img = load_image(cell, base_dir)
        except CELL_DECODE_ERRORS:
            continue
        sides.append(max(img.size))
        greys.append(_is_grey(img))
    if channels is None:
        channels = 1 if greys and 2 * sum(greys) > len(greys) else 3
        notes.append(
            f"image column {column!r}: {channels} channel(s) ({sum(greys)} of {len(greys)} sampled images grey)"
        )
    if size is None:
        if sides:
            median = float(np.median(sides))
            size = int(min(MAX_IMAGE_SIZE, max(MIN_IMAGE_SIZE, 4 * math.floor(median / 4 + 0.5))))
            notes.append(
                f"image column {column!r}: size {size}x{size} (median longer side {median:g} px of "
                f"{len(sides)} sampled images, rounded to a multiple of 4, kept within "
                f"{MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}; set image_size to change it)"
            )
        else:
            size = 32
            notes.append(f"image column {column!r}: no sampled image decoded; using size 32x32")
    return [channels, size, size]


def decode_image_pixels(cell, base_dir, shape: Sequence[int], column: str
                        ) -> tuple[np.ndarray, bool]:
    """One image cell as ((C, H, W) uint8, present), for ``shape`` [C, H, W]: resized so
    its longer side fits (keeping its aspect ratio), padded to a square with 0, centred.
    An absent or unreadable cell gives zeros and ``present=False`` (``column`` names it in
    the debug log). :func:`pixels_to_float` makes the network's input of it."""
    channels, height, width = shape
    if cell_missing(cell):
        return np.zeros((channels, height, width), dtype=np.uint8), False
    try:
        img = load_image(cell, base_dir, channels=channels)
    except CELL_DECODE_ERRORS as exc:
        logger.debug("image column %r: cell not decoded (%s)", column, exc)
        return np.zeros((channels, height, width), dtype=np.uint8), False
    w, h = img.size
    scale = min(width / w, height / h)
    new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    if (new_w, new_h) != (w, h):
        # Pillow's resize widens its kernel when shrinking, so this is antialiased.
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    pixels = np.moveaxis(image_to_array(img), -1, 0)  # (C, h, w) uint8
    if (new_w, new_h) == (width, height):
        return np.ascontiguousarray(pixels), True
    out = np.zeros((channels, height, width), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[:, top : top + new_h, left : left + new_w] = pixels
    return out, True


def pixels_to_float(pixels: np.ndarray, present) -> np.ndarray:
    """uint8 pixels (..., C, H, W) -> float32 in [-1, 1] (padding 0 -> -1); rows not
    ``present`` (a bool, or (N,) for a batch) -> 0. In numpy, not torch: this runs once per
    image (bench/RESULTS.md, 'data_throughput')."""
    out = np.divide(pixels, np.float32(127.5), dtype=np.float32)
    out -= np.float32(1.0)
    absent = ~np.asarray(present, dtype=bool)
    if absent.ndim == 0:
        return out if not absent else np.zeros_like(out)
    out[absent] = 0.0
    return out


def decode_image(cell, base_dir, shape: Sequence[int], column: str) -> tuple[torch.Tensor, bool]:
    """One image cell as ((C, H, W) float32 in [-1, 1], present), for ``shape`` [C, H, W]:
    :func:`decode_image_pixels` then :func:`pixels_to_float` (padding is black, -1; an
    absent or unreadable cell is zeros)."""
    pixels, present = decode_image_pixels(cell, base_dir, shape, column)
    return torch.from_numpy(pixels_to_float(pixels, present)), present


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (B, C, H, W) in [-1, 1] -> uint8 array (B, H, W, C), e.g. to save generations."""
    if images.ndim != 4:
        raise DataError(f"tensor_to_uint8 expects (B, C, H, W), got shape {tuple(images.shape)}")
    pixels = ((images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (B, H, W, C)


def _is_grey(img: Image.Image) -> bool:
    """True for greyscale images, including RGB files whose three channels are equal."""
    if img.mode == "L":
        return True
    arr = np.asarray(img)
    return arr.ndim == 3 and bool(
        np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    )


# ---------------------------------------------------------------------- augmentation


def augment_problems(augment) -> list[str]:
    """What is wrong with an ``augment`` setting (None or a dict of AUGMENT_DEFAULTS keys)."""
    if augment is None:
        return []
    if not isinstance(augment, dict):
        return [f"augment must be None or a dict like {AUGMENT_DEFAULTS}, got {augment!r}"]
    problems = []
    unknown = sorted(set(augment) - set(AUGMENT_DEFAULTS))
    if unknown:
        problems.append(
            f"unknown augment keys {unknown}; known keys are {sorted(AUGMENT_DEFAULTS)}"
        )
    shift = augment.get("shift_px", 0)
    if not isinstance(shift, int) or shift < 0:
        problems.append(f"augment['shift_px']={shift!r} must be a non-negative integer")
    angle = augment.get("rotate_deg", 0.0)
    if not isinstance(angle, int | float) or not 0 <= angle <= 180:
        problems.append(f"augment['rotate_deg']={angle!r} must be between 0 and 180")
    return problems


def augment_with(
    image: torch.Tensor, draws: Sequence[float], augment: dict, *, flip: bool = True
) -> torch.Tensor:
    """Rotate, shift and (if ``augment["hflip"]``) mirror a (C, H, W) image as ``draws`` say.

    ``draws`` are :data:`AUGMENT_DRAWS` uniforms in [0, 1) (angle, vertical shift,
    horizontal shift, flip); ``augment`` has every key of :data:`AUGMENT_DEFAULTS`.
    Uncovered pixels become black (-1), the same as the padding. With ``flip=False`` the
    mirroring is left to the caller (:func:`flipped_rows`).
    """
    angle = (2.0 * float(draws[0]) - 1.0) * float(augment["rotate_deg"])
    dy, dx = (int(d) for d in _shifts(np.asarray(draws[1:3], dtype=np.float64),
                                      int(augment["shift_px"])))
    flip = flip and bool(augment["hflip"]) and float(draws[3]) < 0.5
    if angle != 0.0:
        image = _rotate(image, angle)
    if dy or dx:
        image = _shift(image, dy, dx)
    if flip:
        image = image.flip(-1)
    return image


def _shifts(uniforms: np.ndarray, shift_px: int) -> np.ndarray:
    """Uniforms in [0, 1) -> integer shifts in [-shift_px, shift_px], elementwise."""
    span = 2 * shift_px + 1
    return np.minimum(span - 1, (uniforms * span).astype(np.int64)) - shift_px


def shift_pixels(pixels: np.ndarray, draws: np.ndarray, augment: dict) -> np.ndarray:
    """A batch of uint8 images (B, C, H, W) shifted as :func:`augment_with` shifts each one
    from its line of ``draws`` (B, AUGMENT_DRAWS), uncovered pixels 0 (black once
    :func:`pixels_to_float` maps them to -1); for settings that only shift
    (``augment["rotate_deg"] == 0``; mirroring is the caller's, :func:`flipped_rows`).
    One gather for the batch: image by image, building a Fashion-MNIST batch took about a
    fifth of a training step (bench/RESULTS.md, 'predictor_fashion')."""
    if float(augment["rotate_deg"]) != 0.0:
        raise ValueError("shift_pixels does not rotate; use augment_with")
    s = int(augment["shift_px"])
    if s == 0:
        return pixels
    b, c, h, w = pixels.shape
    padded = np.zeros((b, c, h + 2 * s, w + 2 * s), dtype=pixels.dtype)
    padded[:, :, s:s + h, s:s + w] = pixels
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    uniforms = np.asarray(draws, dtype=np.float64)
    dy, dx = _shifts(uniforms[:, 1], s), _shifts(uniforms[:, 2], s)
    # Output pixel y of a row shifted by dy is input pixel y - dy: window start s - dy.
    return np.ascontiguousarray(windows[np.arange(b), :, s - dy, s - dx])  # (B, C, H, W)


def flipped_rows(draws: np.ndarray, augment: dict | None) -> np.ndarray | None:
    """Which rows of ``draws`` (``(B, AUGMENT_DRAWS)``, as :func:`augment_with` reads them)
    are mirrored, as a ``(B,)`` bool array; None when mirroring is off."""
    if augment is None or not augment["hflip"]:
        return None
    return np.asarray(draws)[:, 3] < 0.5


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate (C, H, W) by (dy, dx) pixels, filling with black (-1)."""
    _, h, w = image.shape
    out = torch.full_like(image, -1.0)
    if abs(dy) >= h or abs(dx) >= w:  # shifted out of the frame
        return out
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[:, dst_y, dst_x] = image[:, src_y, src_x]
    return out


def _rotate(image: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """Rotate (C, H, W) about its centre, bilinear, filling with black (-1)."""
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    matrix = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)[None]  # (1, 2, 3)
    grid = F.affine_grid(matrix, [1, *image.shape], align_corners=False)
    # Shift to [0, 2] so grid_sample's zero padding lands on -1 after shifting back.
    rotated = F.grid_sample(
        image[None] + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return rotated[0] - 1.0
