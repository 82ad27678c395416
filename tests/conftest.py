"""Shared test fixtures: tiny tables with every modality, one torch thread, the CLI runner.

Test files do not import this module; they ask for its fixtures by name.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from PIL import Image

from polymodal.cli import main

TINY_TABLE_COLUMNS = ["id", "image", "caption", "audio", "price", "color", "tags", "date", "label"]

_COLORS = ["red", "green", "blue", "red", "green", "blue", "red", "green"]
_RGB = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220)}
_LABELS = ["yes", "no", "yes", "no", "yes", "no", "yes", "no"]
_CAPTIONS = [
    "a small red square",
    "a bright green tile",
    "a deep blue patch",
    "red, with a thin border",
    "green on a plain background",
    "blue and slightly noisy",
    "a red block, centred",
    "a pale green square",
]
_PRICES = [9.99, 12.5, math.nan, 3.25, 20.0, 7.75, 15.1, 4.4]
_TAGS = ["a|b", "b", "a|c", "c", "a|b|c", "b|c", "a", "b"]
_DATES = [
    f"2024-0{month}-{day:02d}"
    for month, day in zip([1, 1, 2, 3, 3, 4, 5, 6], range(3, 27, 3), strict=True)
]
_SAMPLE_RATE_HZ = 8000


def _write_table(folder: Path, color_column: list, label_column: list) -> Path:
    """Write the media files and table.csv into ``folder``; return the CSV path."""
    (folder / "images").mkdir()
    (folder / "audio").mkdir()
    rows = []
    for i in range(8):
        # 8x8 RGB image in the row's colour, with a brighter pixel at a per-row spot so no two
        # images are identical (dedup and leakage checks see 8 distinct files).
        pixels = np.zeros((8, 8, 3), dtype=np.uint8)  # (H, W, C)
        pixels[:] = _RGB[_COLORS[i]]
        pixels[i, i] = 255
        image_path = f"images/img_{i}.png"
        Image.fromarray(pixels).save(folder / image_path)
        # 0.1 s mono sine whose pitch rises with the row number.
        duration_s, frequency_hz = 0.1, 220.0 * (1 + i)
        t = np.arange(int(duration_s * _SAMPLE_RATE_HZ)) / _SAMPLE_RATE_HZ
        wave = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
        audio_path = f"audio/clip_{i}.wav"
        soundfile.write(
            folder / audio_path, wave.astype(np.float32), _SAMPLE_RATE_HZ, subtype="PCM_16"
        )
        rows.append(
            {
                "id": i + 1,
                "image": image_path,
                "caption": _CAPTIONS[i],
                "audio": audio_path,
                "price": _PRICES[i],
                "color": color_column[i],
                "tags": _TAGS[i],
                "date": _DATES[i],
                "label": label_column[i],
            }
        )
    path = folder / "table.csv"
    pd.DataFrame(rows, columns=TINY_TABLE_COLUMNS).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_table(tmp_path: Path) -> Path:
    """An 8-row CSV with every modality; returns the path ``tmp_path / "table.csv"``.

    Columns (stable; other tests rely on them), in this order:

    - ``id``: int 1..8, unique (an ID column).
    - ``image``: relative PNG paths ``images/img_{i}.png`` (8x8 RGB, coloured by ``color``,
      with one bright pixel at (i, i) so all eight differ); resolve against the CSV's folder.
    - ``caption``: short English text, all distinct.
    - ``audio``: relative WAV paths ``audio/clip_{i}.wav`` (0.1 s mono sine, 8 kHz, PCM16,
      pitch 220*(i+1) Hz).
    - ``price``: float, one missing value (row 2, 0-based).
    - ``color``: categorical strings ``red``/``green``/``blue``.
    - ``tags``: multilabel, ``|``-separated from {a, b, c}, e.g. ``"a|b"``; never empty.
    - ``date``: ISO dates ``YYYY-MM-DD`` in 2024, increasing.
    - ``label``: ``"yes"``/``"no"``, alternating (4 of each).
    """
    return _write_table(tmp_path, _COLORS, _LABELS)


@pytest.fixture
def tiny_table_coded(tmp_path: Path) -> Path:
    """The same table as ``tiny_table``, but with integer-coded classes.

    ``color`` holds codes 0/1/2 (red/green/blue) and ``label`` holds 1/0 (yes/no): integer
    columns that should still be read as categories, not numbers.
    """
    codes = {"red": 0, "green": 1, "blue": 2}
    return _write_table(
        tmp_path, [codes[c] for c in _COLORS], [1 if v == "yes" else 0 for v in _LABELS]
    )


@pytest.fixture(scope="session")
def write_tiny_table():
    """``write(folder) -> Path``: the ``tiny_table`` files written into an existing, empty
    ``folder`` (for module-scoped fixtures, which cannot use ``tmp_path``)."""
    def write(folder: Path) -> Path:
        return _write_table(Path(folder), _COLORS, _LABELS)
    return write


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests, restored afterwards.

    On a shared 2-core machine two threads spin-waiting on each other are often slower
    than one. AdamW's first construction imports torch._dynamo (seconds), so it is done
    here, outside any test's budget. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")`` (module-scoped fixtures that
    train should also name it, so it is set up before them).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*argv) -> (exit status, stdout, stderr)``: the command line, run in-process.

    Output printed before the call is discarded; arguments may be paths.
    """
    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def tone_clip(frequency_hz: float, *, seconds: float = 0.5, rate_hz: int = 16_000,
              seed: int = 0, file_format: str = "WAV", subtype: str | None = None,
              channels: int = 1) -> bytes:
    """A sine tone with a little noise as the bytes of a WAV, FLAC or OGG file."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    noise = np.random.default_rng(seed).normal(0.0, 0.01, len(t))
    wave = (0.3 * np.sin(2 * np.pi * frequency_hz * t) + noise).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(wave[:, None], (1, channels)), rate_hz, format=file_format,
                    subtype=subtype)
    return buffer.getvalue()


LOW_HZ, HIGH_HZ = 300.0, 900.0  # the two pitches of the tones table


def _write_tones(folder: Path, rows: int = 24) -> Path:
    """clips/{i}.wav, low and high half-second tones (pitch jittered by 5%) alternating,
    and tones.csv with columns ``clip`` and ``pitch`` ("low"/"high")."""
    (folder / "clips").mkdir(parents=True)
    jitter = np.random.default_rng(0).normal(1.0, 0.05, rows)
    table = []
    for i in range(rows):
        pitch = "high" if i % 2 else "low"
        hz = (HIGH_HZ if i % 2 else LOW_HZ) * jitter[i]
        (folder / f"clips/{i}.wav").write_bytes(tone_clip(hz, seed=i, subtype="PCM_16"))
        table.append({"clip": f"clips/{i}.wav", "pitch": pitch})
    path = folder / "tones.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def make_clip():
    """``make_clip(frequency_hz, **options) -> bytes``: a tone as an audio file's bytes
    (see :func:`tone_clip`)."""
    return tone_clip


@pytest.fixture(scope="session")
def write_tones_table():
    """``write(folder, rows=24) -> Path``: the tones table (an audio column ``clip`` of low
    and high half-second tones, label ``pitch``) written into ``folder``."""
    return _write_tones


@pytest.fixture(scope="session")
def tone_hz() -> dict[str, float]:
    """The tones table's pitch classes and their frequencies: ``{"low": 300, "high": 900}``."""
    return {"low": LOW_HZ, "high": HIGH_HZ}


@pytest.fixture(scope="session")
def served_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Folders ``table`` (the tiny table's files), ``predictor``, ``generator`` and
    ``tones``: small models the serving tests load, trained once per session.

    The predictor learns the 8-row tiny table (image, text, audio, numeric, categorical,
    tags, date); the generator learns 300 digits conditioned on the label; ``tones`` is a
    predictor whose only feature is an audio column, ``clip``, telling low tones from high
    ones (24 clips; its files in ``tones_table``). The fits are bounded by their fast
    preset's epochs, not by seconds.
    """
    from polymodal import Generator, Predictor, datasets

    base = tmp_path_factory.getbasetemp() / "serve-models"
    dirs = {"table": base / "table", "predictor": base / "shop", "generator": base / "digits-gen",
            "tones_table": base / "tones-table", "tones": base / "tones"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine two threads are often slower
    try:
        dirs["table"].mkdir(parents=True)
        _write_table(dirs["table"], _COLORS, _LABELS)
        Predictor("label", time_limit=None, text_encoder="hashed", verbosity=0
                  ).fit(str(dirs["table"] / "table.csv")).save(dirs["predictor"])
        Predictor("pitch", time_limit=None, verbosity=0
                  ).fit(str(_write_tones(dirs["tones_table"]))).save(dirs["tones"])
        train, _ = datasets.load("digits", split=True, seed=0)
        Generator(condition=["label"], time_limit=None, num_steps=4, verbosity=0
                  ).fit(train.iloc[:300]).save(dirs["generator"])
    finally:
        torch.set_num_threads(threads)
    return dirs
