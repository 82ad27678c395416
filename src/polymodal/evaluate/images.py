"""Image grids for people to look at: samples per class, decoded inputs, edits."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from polymodal.files import write_bytes


def make_grid(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    ncols: int | None = None,
    padding_px: int = 2,
    scale: int = 1,
    row_labels: Sequence[str] | None = None,
    label_width_px: int = 0,
) -> Image.Image:
    """Tile uint8 images (N, H, W) or (N, H, W, C) into one RGB picture.

    ``scale`` enlarges tiny images (8x8 digits) with nearest-neighbour so pixels stay
    crisp; ``row_labels`` writes a caption at the start of each row.
    """
    imgs = [np.asarray(im) for im in images]
    if not imgs:
        raise ValueError("make_grid needs at least one image")
    imgs = [im[..., None] if im.ndim == 2 else im for im in imgs]
    imgs = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im[..., :3] for im in imgs]
    h = max(im.shape[0] for im in imgs) * scale
    w = max(im.shape[1] for im in imgs) * scale
    n = len(imgs)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    if row_labels is not None and not label_width_px:
        label_width_px = 8 + 6 * max((len(s) for s in row_labels), default=0)
    grid = Image.new(
        "RGB",
        (label_width_px + ncols * (w + padding_px) + padding_px, nrows * (h + padding_px) + padding_px),
        (255, 255, 255),
    )
    for i, im in enumerate(imgs):
        tile = Image.fromarray(im.astype(np.uint8))
        if scale != 1:
            tile = tile.resize((im.shape[1] * scale, im.shape[0] * scale), Image.NEAREST)
        r, c = divmod(i, ncols)
        grid.paste(tile, (label_width_px + padding_px + c * (w + padding_px), padding_px + r * (h + padding_px)))
    if row_labels is not None:
        draw = ImageDraw.Draw(grid)
        for r, text in enumerate(row_labels[:nrows]):
            draw.text((4, padding_px + r * (h + padding_px) + h // 2 - 5), str(text), fill=(0, 0, 0))
    return grid


def as_pillow(image: np.ndarray | Image.Image) -> Image.Image:
    """A uint8 (H, W), (H, W, 1) or (H, W, C) array, or a Pillow image, as a Pillow image."""
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image, dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """One image (a uint8 array or a Pillow image) encoded as PNG: the one PNG encoder."""
    buf = io.BytesIO()
    as_pillow(image).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike) -> None:
    """Write a PNG atomically."""
    write_bytes(path, png_bytes(image))
