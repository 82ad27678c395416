"""Decoding image and audio cells.

A cell of an image or audio column may be a file path (relative to the table's folder,
or absolute), raw bytes, a numpy array, or (images) a ``PIL.Image``. These functions turn
any of them into one canonical form, or raise :class:`MediaError` saying which cell and
why — callers decide whether one bad cell is fatal (it usually is not: the row keeps its
other modalities and the cell is marked absent).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from polymodal.data.file_access import MAX_MEDIA_FILE_BYTES, read_checked_bytes
from polymodal.errors import DataError

# A decompression bomb (a tiny file that decodes to gigapixels) is refused above this.
DEFAULT_MAX_PIXELS = 64_000_000

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"})


class MediaError(DataError):
    """One image/audio cell could not be decoded; the message says why."""


# What a caller that must not stop on one bad cell catches while decoding. Deliberately
# broad: a corrupt file can make Pillow or soundfile raise almost anything (struct.error,
# IndexError, ...), and one bad cell must mark that cell absent rather than stop training.
CELL_DECODE_ERRORS = (Exception,)


def resolve_path(cell: str | os.PathLike, base_dir: str | os.PathLike | None) -> Path:
    """A path cell made absolute against the table's folder (absolute paths pass through)."""
    path = Path(os.path.expanduser(str(cell)))
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def _read_bytes(cell, base_dir) -> tuple[bytes, str]:
    """The raw bytes behind a path or bytes cell, plus a short description for errors."""
    if isinstance(cell, bytes | bytearray | memoryview):
        return bytes(cell), f"{len(cell)} bytes"
    if isinstance(cell, str | os.PathLike):
        # Strings, not pathlib: this runs once per file (bench/RESULTS.md, 'data_throughput').
        path = os.path.expanduser(os.fspath(cell))
        if base_dir is not None and not os.path.isabs(path):
            path = os.path.join(os.fspath(base_dir), path)
        try:
            return read_checked_bytes(path, MAX_MEDIA_FILE_BYTES, error=MediaError), str(path)
        except MediaError:  # a special file or one over the size limit (a ValueError too)
            raise
        except FileNotFoundError:
            raise MediaError(f"file not found: {path}") from None
        except IsADirectoryError:
            raise MediaError(f"is a folder, not a file: {path}") from None
        except OSError as exc:
            raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # e.g. an embedded NUL byte in the path
            raise MediaError(f"not a valid file path {str(cell)[:80]!r}: {exc}") from None
    raise MediaError(f"unsupported cell type {type(cell).__name__}; expected a path, bytes or array")


def _to_mode(img: Image.Image, channels: int | None) -> Image.Image:
    """Convert any Pillow mode explicitly to L (1 channel) or RGB (3 channels).

    Transparency is composited onto white (not dropped to black), 16/32-bit and float
    greyscale is rescaled to 8 bits from its own range, CMYK goes through Pillow's
    conversion, palette images are expanded.
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        img = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
        mode = "L"
    if mode == "P" or mode == "PA" or (mode in ("L", "RGB") and "transparency" in img.info):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
        mode = "RGBA"
    if channels is None:
        channels = 1 if mode in ("1", "L") else 3
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def _array_to_image(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise MediaError(f"array of shape {arr.shape} is not an image; expected (H, W), (H, W, 3|4) or (3, H, W)")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if np.nanmax(arr) <= 1.0 + 1e-6 and np.nanmin(arr) >= 0.0:
            arr = arr * 255.0  # floats in [0, 1]
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def load_image(
    cell,
    base_dir: str | os.PathLike | None = None,
    *,
    channels: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode one image cell to a Pillow image in mode L (channels=1) or RGB (channels=3).

    ``channels=None`` keeps greyscale as L and turns everything else into RGB. EXIF
    orientation is applied. Raises :class:`MediaError` for a missing, corrupt, truncated
    or oversized (decompression bomb) image.
    """
    if isinstance(cell, Image.Image):
        img = cell
    elif isinstance(cell, np.ndarray):
        img = _array_to_image(cell)
    else:
        # One read of the whole file, then decode from memory: faster than letting Pillow
        # issue its many small reads on the path (see bench/RESULTS.md, 'Ad-hoc probes').
        data, what = _read_bytes(cell, base_dir)
        source = io.BytesIO(data)
        img = _open_checked(source, what, max_pixels)
    if img.size[0] * img.size[1] > max_pixels:
        raise MediaError(f"image of {img.size[0]}x{img.size[1]} pixels exceeds the limit of {max_pixels:,}")
    # Only formats that carry EXIF need the (not free) orientation check.
    if img.format in ("JPEG", "MPO", "TIFF", "WEBP") or "exif" in img.info:
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
            pass
    return _to_mode(img, channels)


def _open_checked(source, what: str, max_pixels: int) -> Image.Image:
    """Open and fully decode an image, refusing bombs and reporting corruption clearly."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            width, height = img.size
            if width * height > max_pixels:
                raise MediaError(
                    f"{what}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (a possible decompression bomb); raise max_pixels if it is genuine"
                )
            img.load()  # decode now so truncation errors surface here
            return img
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"{what}: refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise MediaError(f"{what}: not an image Pillow can identify (corrupt or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{what}: corrupt or truncated image ({exc})") from None


def image_to_array(img: Image.Image) -> np.ndarray:
    """A decoded image as uint8 (H, W, C)."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def load_audio(cell, base_dir: str | os.PathLike | None = None, *, details: bool = False):
    """Decode one audio cell to ``(mono float32 waveform in [-1, 1], sample_rate)``.

    Array cells are taken as mono waveforms; a ``(samples, rate)`` tuple is accepted too.
    Files and bytes go through soundfile (WAV, FLAC, OGG, AIFF, ...), with scipy's WAV
    reader as a fallback. A clip of no samples, a video file and anything else that is
    not audio raise :class:`MediaError` saying so. With ``details`` a third item is
    ``{"channels": ..., "bits": ...}`` as the file stores them (``bits`` None for
    compressed or float audio), for the cleaning report.
    """
    info = {"channels": 1, "bits": None}
    if isinstance(cell, tuple) and len(cell) == 2:
        wave, rate = cell
        wave = np.asarray(wave, dtype=np.float32)
        info["channels"] = 1 if wave.ndim == 1 else min(wave.shape)
        return _checked(_mono(wave), int(rate), info, "the clip", details)
    if isinstance(cell, np.ndarray):
        raise MediaError("an audio array needs its sample rate: pass (waveform, sample_rate) as the cell")
    data, what = _read_bytes(cell, base_dir)
    try:
        import soundfile

        with soundfile.SoundFile(io.BytesIO(data)) as handle:
            info = {"channels": handle.channels, "bits": _PCM_BITS.get(handle.subtype)}
            wave = handle.read(dtype="float32", always_2d=True)  # (frames, channels)
            rate = handle.samplerate
        return _checked(np.ascontiguousarray(wave.mean(axis=1)), int(rate), info, what, details)
    except MediaError:
        raise
    except Exception as sf_exc:  # noqa: BLE001 - fall back to scipy, then report both
        try:
            from scipy.io import wavfile

            rate, wave = wavfile.read(io.BytesIO(data))
        except Exception:  # noqa: BLE001
            if _is_video(data, what):
                raise MediaError(f"{what}: a video file, not audio; extract its sound track "
                                 "(e.g. ffmpeg -i VIDEO -vn -ac 1 CLIP.wav) and point the "
                                 "cell at the clip") from None
            reason = re.sub(r"Error opening <_io\.BytesIO object at 0x[0-9a-f]+>:?\s*", "",
                            str(sf_exc))
            raise MediaError(f"{what}: not decodable audio ({reason.strip() or 'unknown format'})"
                             ) from None
        wave = np.asarray(wave)
        info = {"channels": 1 if wave.ndim == 1 else wave.shape[1],
                "bits": 8 * wave.dtype.itemsize if wave.dtype.kind in "iu" else None}
        if wave.dtype.kind in "iu":
            limits = np.iinfo(wave.dtype)
            wave = (wave.astype(np.float32) - (limits.max + limits.min + 1) / 2) / ((limits.max - limits.min + 1) / 2)
        if wave.ndim == 2:
            wave = wave.mean(axis=1)  # wavfile gives (frames, channels) too
        return _checked(_mono(wave.astype(np.float32)), int(rate), info, what, details)


def audio_length_s(data: bytes) -> float | None:
    """A clip's length in seconds from its header, without decoding its samples; None when
    soundfile cannot read the header (:func:`load_audio` then says what is wrong)."""
    try:
        import soundfile

        header = soundfile.info(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - an unreadable header is the decoder's to explain
        return None
    return header.frames / header.samplerate if header.samplerate > 0 else None


# soundfile's PCM subtypes and their bits per sample (8-bit audio is worth a note).
_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv",
                              ".mpg", ".mpeg", ".3gp"})


def _is_video(data: bytes, what: str) -> bool:
    """A video container by its name or its first bytes (ISO media 'ftyp' box, Matroska /
    WebM EBML header, RIFF AVI)."""
    return (Path(what).suffix.lower() in VIDEO_EXTENSIONS or data[4:8] == b"ftyp"
            or data[:4] == b"\x1a\x45\xdf\xa3" or (data[:4] == b"RIFF" and data[8:12] == b"AVI "))


def _checked(wave: np.ndarray, rate: int, info: dict, what: str, details: bool):
    if len(wave) == 0:
        raise MediaError(f"{what}: an empty clip (0 samples)")
    if rate <= 0:
        raise MediaError(f"{what}: sample rate {rate} Hz is not a rate")
    return (wave, rate, info) if details else (wave, rate)


def _mono(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        # soundfile gives (frames, channels); a (channels, frames) array has few rows.
        wave = wave.mean(axis=1) if wave.shape[1] <= 8 else wave.mean(axis=0)
    if wave.ndim != 1:
        raise MediaError(f"audio of shape {wave.shape} is not a waveform")
    return np.ascontiguousarray(wave)


def looks_like_media_path(value: str, extensions: frozenset[str]) -> bool:
    """True when a string ends in one of the given file extensions."""
    return Path(value.strip()).suffix.lower() in extensions
