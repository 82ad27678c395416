"""Uploads into the service: base64 text to bytes, and images checked against its limit.

Uploads are untrusted bytes. Each is checked before a model sees it: its image header is
read first so an oversized image (or a decompression bomb) is refused with 413 before
it is decoded, then it is decoded in full so corrupt or non-image bytes get a 422 that
names the field — never a 5xx from deep inside a model. The decoding (and PNG encoding
of results) is :mod:`polymodal.workflows.media`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image

from polymodal.errors import DataError
from polymodal.serve.limits import RequestTooLarge
from polymodal.workflows.media import decode_image

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
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except Exception:  # noqa: BLE001 - any failure here means "not an image"; decoding says why
        width = height = 0
    if width * height > max_pixels:
        raise RequestTooLarge(f"{field}: the image is {width}x{height} = {width * height:,} pixels, "
                              f"over this server's limit max_image_pixels={max_pixels:,}; send a "
                              "smaller image", field=field, status=413)
    return decode_image(data, field=field, max_pixels=max_pixels, channels=channels)
