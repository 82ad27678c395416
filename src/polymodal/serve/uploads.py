"""Media in and out of the service: checked decoding of uploads, PNG encoding of results.

Uploads are untrusted bytes. Each is checked before a model sees it: its image header is
read first so an oversized image (or a decompression bomb) is refused with 413 before
it is decoded, then it is decoded in full so corrupt or non-image bytes get a 422 that
names the field — never a 5xx from deep inside a model.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np
from PIL import Image

from polymodal.data.media import MediaError, load_audio, load_image
from polymodal.errors import DataError
from polymodal.evaluate.images import make_grid
from polymodal.serve.limits import RequestTooLarge

_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.I)


def decode_base64(text: str, *, field: str) -> bytes:
    """The bytes of a base64 string or ``data:...;base64,`` URL; DataError naming ``field``."""
    payload = _DATA_URL.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise DataError(f"{field}: expected a file as base64 (or a data: URL), got {shown!r}; "
                        "encode the file's bytes with base64, or upload it as multipart") from None


def check_image(data: bytes, *, field: str, max_pixels: int, channels: int | None = None
                ) -> Image.Image:
    """Decode an uploaded image, refusing one over ``max_pixels`` (413) or corrupt (422)."""
    if not data:
        raise DataError(f"{field}: the uploaded file is empty; choose an image file")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except Exception:  # noqa: BLE001 - any failure here means "not an image"; load_image says why
        width = height = 0
    if width * height > max_pixels:
        raise RequestTooLarge(f"{field}: the image is {width}x{height} = {width * height:,} pixels, "
                              f"over this server's limit max_image_pixels={max_pixels:,}; send a "
                              "smaller image", field=field, status=413)
    try:
        return load_image(data, channels=channels, max_pixels=max_pixels)
    except MediaError as exc:
        raise DataError(f"{field}: {exc}; upload a PNG, JPEG or another image Pillow reads") from None


def check_audio(data: bytes, *, field: str) -> None:
    """Refuse (422) uploaded bytes that do not decode as audio."""
    if not data:
        raise DataError(f"{field}: the uploaded file is empty; choose an audio file")
    try:
        load_audio(data)
    except MediaError as exc:
        raise DataError(f"{field}: {exc}; upload a WAV, FLAC or OGG file") from None


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """One uint8 (H, W) or (H, W, C) image, or a Pillow image, encoded as PNG."""
    if not isinstance(image, Image.Image):
        arr = np.asarray(image, dtype=np.uint8)
        image = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_base64(image: np.ndarray) -> str:
    """One image as a base64 PNG string (what a browser puts after ``data:image/png;base64,``)."""
    return base64.b64encode(png_bytes(image)).decode("ascii")


def grid_png(images: np.ndarray) -> bytes:
    """uint8 images (N, H, W, C) tiled into one PNG, small images enlarged so they can be seen."""
    side = max(images.shape[1], images.shape[2])
    scale = max(1, 64 // side)  # an 8x8 digit becomes 64x64 instead of a speck
    return png_bytes(make_grid(images, scale=scale))
