"""Media across the faces: checked decoding of a client's image/audio bytes, and images
out as PNG bytes, viewable grids and files.

Shared by the CLI (``generate sample/edit`` write PNGs) and the service (uploads in,
PNGs out), so neither reaches into ``polymodal.data`` or ``polymodal.evaluate`` itself.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from polymodal.data.media import MediaError, audio_length_s, image_to_array, load_audio, load_image
from polymodal.errors import ConfigError, DataError
from polymodal.evaluate.images import as_pillow, make_grid, png_bytes, save_png
from polymodal.files import write_bytes, write_folder

__all__ = ["audio_length_s", "check_image_out", "check_images_out", "decode_audio",
           "decode_image", "grid_image", "image_to_array", "png_base64", "png_bytes",
           "write_image", "write_images"]

# The file types an image written for a user may have, by suffix, as Pillow's formats.
IMAGE_FILE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                      ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


# ------------------------------------------------------------------------------ in


def decode_image(data: bytes, *, field: str, max_pixels: int, channels: int | None = None
                 ) -> Image.Image:
    """Decode uploaded bytes in full; DataError naming ``field`` when they are empty,
    corrupt or not an image (``image_to_array`` turns the result into uint8 pixels)."""
    if not data:
        raise DataError(f"{field}: the uploaded file is empty; choose an image file")
    try:
        return load_image(data, channels=channels, max_pixels=max_pixels)
    except MediaError as exc:
        raise DataError(f"{field}: {exc}; upload a PNG, JPEG or another image Pillow reads") from None


def decode_audio(data: bytes, *, field: str) -> tuple[np.ndarray, int]:
    """Decode uploaded bytes to ``(mono float32 waveform, sample_rate)``; DataError naming
    ``field`` when they are empty, corrupt, a video or not audio."""
    if not data:
        raise DataError(f"{field}: the uploaded file is empty; choose an audio file")
    try:
        return load_audio(data)
    except MediaError as exc:
        raise DataError(f"{field}: {exc}; upload a WAV, FLAC or OGG file") from None


# ----------------------------------------------------------------------------- out


def png_base64(image: np.ndarray) -> str:
    """One image as a base64 PNG string (what a browser puts after ``data:image/png;base64,``)."""
    return base64.b64encode(png_bytes(image)).decode("ascii")


def grid_image(images: np.ndarray, *, ncols: int | None = None) -> Image.Image:
    """uint8 images (N, H, W, C) tiled into one picture, small images enlarged so they can
    be seen."""
    side = max(images.shape[1], images.shape[2])
    scale = max(1, 64 // side)  # an 8x8 digit becomes 64x64 instead of a speck
    return make_grid(images, ncols=ncols, scale=scale)


def check_image_out(path: str | os.PathLike) -> None:
    """ConfigError naming ``--out`` unless ``path`` can be written as one image file: not
    a folder, and a suffix of an image type (so a .jpg holds JPEG, not PNG bytes)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; pass an image file in it, e.g. "
                          f"{path / 'edited.png'}")
    if path.suffix.lower() not in IMAGE_FILE_FORMATS:
        what = (f"{path.suffix} is not an image file type" if path.suffix
                else "the name has no image file suffix")
        raise ConfigError(f"--out {path}: {what}; end it with one of "
                          f"{', '.join(IMAGE_FILE_FORMATS)}")


def check_images_out(out: str | os.PathLike) -> None:
    """``write_images``' check of ``out``, to run before the images are made."""
    out = Path(out)
    if out.suffix.lower() in IMAGE_FILE_FORMATS:
        check_image_out(out)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; pass a new folder, or "
                          "a .png path for one grid")


def write_image(image: np.ndarray | Image.Image, path: str | os.PathLike) -> None:
    """One image written atomically, as the type its suffix names (.png, .jpg, .webp, ...)."""
    check_image_out(path)
    file_format = IMAGE_FILE_FORMATS[Path(path).suffix.lower()]
    if file_format == "PNG":
        save_png(as_pillow(image), path)
        return
    picture = as_pillow(image)
    if file_format == "JPEG" and picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")  # JPEG has no alpha channel
    lossy = {"quality": 95} if file_format in ("JPEG", "WEBP") else {}
    buf = io.BytesIO()
    picture.save(buf, format=file_format, **lossy)
    write_bytes(path, buf.getvalue())


def write_images(images: np.ndarray, out: Path, *, ncols: int | None) -> str:
    """An image path (.png, .jpg, ...): one grid; anything else: a new folder of one PNG
    per image (atomic).

    Returns what was written, for a message: ``"a grid of 16 images to grid.png"``.
    """
    check_images_out(out)
    if out.suffix.lower() in IMAGE_FILE_FORMATS:
        write_image(grid_image(images, ncols=ncols), out)
        return f"a grid of {len(images)} images to {out}"

    def write(staging: Path) -> None:
        digits = max(4, len(str(len(images))))
        for i, image in enumerate(images):
            as_pillow(image).save(staging / f"sample_{i:0{digits}d}.png")

    write_folder(out, write)
    return f"{len(images)} images to {out}/"
