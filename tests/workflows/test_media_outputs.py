"""The faces' media helpers: checked decoding of uploaded bytes, PNGs out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from polymodal.errors import ConfigError, DataError
from polymodal.workflows.media import (
    decode_audio,
    decode_image,
    image_to_array,
    png_bytes,
    write_images,
)


def _images(n: int = 4, side: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side, 1), dtype=np.uint8)


def test_decode_image_round_trips_and_names_the_field_of_bad_bytes():
    image = _images(1)[0]
    decoded = decode_image(png_bytes(image), field="image", max_pixels=1000)
    assert (image_to_array(decoded) == image).all()
    with pytest.raises(DataError, match=r"^image: the uploaded file is empty"):
        decode_image(b"", field="image", max_pixels=1000)
    with pytest.raises(DataError, match=r"^rows\[2\]\.photo: .*upload a PNG, JPEG"):
        decode_image(b"not an image", field="rows[2].photo", max_pixels=1000)
    with pytest.raises(DataError, match=r"^clip: .*upload a WAV, FLAC or OGG"):
        decode_audio(b"not audio", field="clip")


def test_write_images_writes_a_grid_or_a_folder_and_refuses_a_used_folder(tmp_path):
    images = _images()
    assert write_images(images, tmp_path / "grid.png", ncols=2) == \
        f"a grid of 4 images to {tmp_path / 'grid.png'}"
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (2 * (64 + 2) + 2,) * 2  # 8x8 tiles enlarged to 64x64
    write_images(images, tmp_path / "folder", ncols=None)
    files = sorted((tmp_path / "folder").iterdir())
    assert [f.name for f in files] == [f"sample_{i:04d}.png" for i in range(4)]
    assert (np.asarray(Image.open(io.BytesIO(files[1].read_bytes()))) == images[1, ..., 0]).all()
    with pytest.raises(ConfigError, match="exists and is not an empty folder"):
        write_images(images, tmp_path / "folder", ncols=None)
