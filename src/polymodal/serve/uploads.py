"""Uploads into the service: base64 text to bytes, and images and audio clips checked
against its limits.

Uploads are untrusted bytes. Each is checked before a model sees it: its header is read
first so an oversized image or an over-long clip (or a decompression bomb, such as hours
of compressed silence) is refused with 413 before it is decoded, then it is decoded in
full so corrupt, non-image or non-audio bytes (a video, say) get a 422 that names the
field — never a 5xx from deep inside a model. The decoding (and PNG encoding
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
from polymodal.workflows.media import audio_length_s, decode_audio, decode_image

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


def check_audio(data: bytes, *, field: str, max_seconds: int) -> None:
    """Decode an uploaded clip, refusing one over ``max_seconds`` (413) or not audio (422)."""
    seconds = audio_length_s(data)  # from the header: a long clip is refused undecoded
    if seconds is None or seconds <= max_seconds:
        wave, rate = decode_audio(data, field=field)
        seconds = len(wave) / rate  # a file only the fallback decoder reads has no header length
    if seconds > max_seconds:
        raise RequestTooLarge(f"{field}: the clip is {seconds:,.1f} s long, over this server's "
                              f"limit max_audio_s={max_seconds:,}; send a shorter clip (the model "
                              "hears only its first seconds)", field=field, status=413)
