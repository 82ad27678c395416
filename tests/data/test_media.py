"""Decoding image and audio cells: every Pillow mode, EXIF, bombs, corruption, WAV."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile
from PIL import Image

from polymodal.data.media import MediaError, load_audio, load_image
from polymodal.errors import DataError
from polymodal.files import atomic_path, write_text


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_greyscale_stays_single_channel_and_rgb_converts():
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    assert load_image(_png_bytes(grey)).mode == "L"
    assert load_image(_png_bytes(grey), channels=3).mode == "RGB"
    rgb = Image.new("RGB", (5, 3), (10, 200, 30))
    out = load_image(_png_bytes(rgb), channels=1)
    assert out.mode == "L" and out.size == (5, 3)


def test_rgba_is_composited_on_white_not_black():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    out = np.asarray(load_image(_png_bytes(rgba)))
    assert out.shape == (4, 4, 3)
    assert (out == 255).all()


def test_palette_cmyk_and_16bit_modes_convert_explicitly():
    pal = Image.new("P", (4, 4))
    pal.putpalette([0, 0, 255] * 256)
    assert np.asarray(load_image(_png_bytes(pal)))[0, 0].tolist() == [0, 0, 255]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red in CMYK
    rgb = np.asarray(load_image(_png_bytes(cmyk, "JPEG")))
    assert rgb.shape == (4, 4, 3) and rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60
    deep = Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16))
    assert deep.mode.startswith("I")
    out = np.asarray(load_image(_png_bytes(deep)))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _png_bytes(img, "JPEG", exif=exif.tobytes())
    assert load_image(data).size == (2, 6)


def test_paths_resolve_against_base_dir(tmp_path):
    Image.new("L", (3, 3), 7).save(tmp_path / "a.png")
    assert load_image("a.png", tmp_path).size == (3, 3)
    assert load_image(str(tmp_path / "a.png")).size == (3, 3)
    with pytest.raises(MediaError, match="file not found"):
        load_image("missing.png", tmp_path)


def test_corrupt_truncated_and_bomb_images_raise_clear_errors(tmp_path):
    with pytest.raises(MediaError, match="not an image"):
        load_image(b"this is not an image at all")
    full = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)))
    with pytest.raises(MediaError, match="corrupt or truncated"):
        load_image(full[: len(full) // 2])
    big = _png_bytes(Image.new("L", (300, 300)))
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(big, max_pixels=10_000)
    assert issubclass(MediaError, DataError)


def test_array_cells_in_chw_hwc_and_float_forms():
    chw = np.zeros((3, 5, 7), dtype=np.uint8)
    assert load_image(chw).size == (7, 5)
    floats = np.full((4, 4), 0.5)
    assert np.asarray(load_image(floats))[0, 0] == 128


def test_audio_wav_from_path_and_bytes_is_mono_float(tmp_path):
    t = np.linspace(0, 1, 8000, endpoint=False)
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    soundfile.write(tmp_path / "s.wav", stereo, 8000, subtype="PCM_16")
    wave, rate = load_audio("s.wav", tmp_path)
    assert rate == 8000 and wave.shape == (8000,) and wave.dtype == np.float32
    assert 0.4 < np.abs(wave).max() <= 0.51  # the mean of a full-scale and a silent channel
    wave2, _ = load_audio((tmp_path / "s.wav").read_bytes())
    assert np.array_equal(wave, wave2)
    with pytest.raises(MediaError, match="not decodable audio"):
        load_audio(b"RIFF0000garbage")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "model.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


@pytest.mark.parametrize("kind", ["fifo", "device", "oversized"])
def test_special_and_oversized_files_are_refused_before_reading(tmp_path, kind):
    """A FIFO would block forever and /dev/zero never ends: both are refused unopened, as
    is a file above the size limit (a sparse one here: no disk is used)."""
    from polymodal.data.file_access import MAX_MEDIA_FILE_BYTES

    if kind == "fifo":
        path, words = tmp_path / "pipe.png", "FIFO"
        os.mkfifo(path)
    elif kind == "device":
        path, words = "/dev/zero", "character device"
    else:
        path, words = tmp_path / "huge.png", "over the limit"
        with open(path, "wb") as handle:
            handle.truncate(MAX_MEDIA_FILE_BYTES + 1)
    with pytest.raises(MediaError, match=words):
        load_image(str(path))
    with pytest.raises(MediaError, match=words):
        load_audio(str(path))


def test_a_fifo_table_is_refused(tmp_path):
    from polymodal.data.readers import read_table

    os.mkfifo(tmp_path / "table.csv")
    with pytest.raises(DataError, match="FIFO"):
        read_table(tmp_path / "table.csv")


def test_audio_that_is_not_a_clip_says_what_it_is(tmp_path):
    """An empty clip, a video and a text file each raise one MediaError naming the file."""
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "talk.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(500))
    (tmp_path / "notes.wav").write_text("not audio")
    for name, words in (("empty.wav", "empty clip"), ("talk.mp4", "video file"),
                        ("notes.wav", "not decodable audio")):
        with pytest.raises(MediaError, match=words) as caught:
            load_audio(name, tmp_path)
        assert name in str(caught.value) and "BytesIO" not in str(caught.value)


def test_audio_details_give_the_files_channels_and_bits(tmp_path):
    t = np.arange(1600) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(tmp_path / "u8.wav", tone, 16000, subtype="PCM_U8")
    soundfile.write(tmp_path / "eight.wav", np.tile(tone[:, None], (1, 8)), 16000,
                    subtype="PCM_16")
    wave, rate, details = load_audio("u8.wav", tmp_path, details=True)
    assert details == {"channels": 1, "bits": 8} and rate == 16000 and wave.ndim == 1
    wave, _, details = load_audio("eight.wav", tmp_path, details=True)
    assert details == {"channels": 8, "bits": 16} and wave.shape == (1600,)
    np.testing.assert_allclose(wave, tone, atol=1e-3)  # eight equal channels mix to the tone
