"""Audio cells as standardised log-mel spectrograms (1, n_mels, T).

A clip is mixed to mono, resampled to the transform's rate, cut or zero-padded to the
length chosen at fit time, and turned into a natural-log mel power spectrogram (25 ms
window, 10 ms hop: the usual speech front end), standardised with the training mean/std.
:func:`fit_audio_stats` chooses the length and statistics from a sample of a column's
clips; :func:`decode_audio` encodes one cell (absent or unreadable: zeros, ``present=False``).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from polymodal.data.cells import cell_missing, sample_present
from polymodal.data.media import CELL_DECODE_ERRORS, load_audio

logger = logging.getLogger(__name__)

MAX_AUDIO_DURATION_S = 5.0
MIN_AUDIO_DURATION_S = 0.1
AUDIO_SAMPLE = 32  # clips decoded at fit time to choose the length and log-mel statistics
AUDIO_WINDOW_S = 0.025  # 25 ms analysis window, 10 ms hop: the usual speech front end
AUDIO_HOP_S = 0.010
LOG_MEL_EPS = 1e-6


@dataclass(frozen=True)
class LogMelFrontEnd:
    """Resampling and the log-mel spectrogram at one sample rate and number of mel bands."""

    sample_rate: int
    n_mels: int

    @property
    def win_length(self) -> int:
        return int(round(AUDIO_WINDOW_S * self.sample_rate))

    @property
    def hop_length(self) -> int:
        return int(round(AUDIO_HOP_S * self.sample_rate))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()  # next power of two >= window

    def resample(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """A mono wave at ``rate`` Hz as float32 at :attr:`sample_rate`."""
        if rate == self.sample_rate:
            return wave.astype(np.float32)
        g = math.gcd(int(rate), self.sample_rate)
        # Polyphase resampling applies an anti-aliasing low-pass filter.
        # Imported here, not with the module: only audio at another sample rate needs
        # scipy.signal, a large import (most of scipy is loaded by scikit-learn anyway).
        from scipy.signal import resample_poly

        return resample_poly(wave, self.sample_rate // g, int(rate) // g).astype(np.float32)

    def band_widths(self) -> torch.Tensor:
        """(n_mels,) each mel filter's area over the linear bins, mean 1: the relative power
        white noise puts in each band."""
        _, bank = _stft_constants(self.sample_rate, self.win_length, self.n_fft, self.n_mels)
        area = bank.sum(dim=1)
        return area / area.mean()

    def log_mel(self, wave: np.ndarray) -> torch.Tensor:
        """Natural-log mel power spectrogram of a fixed-length mono wave: (n_mels, T)."""
        window, bank = _stft_constants(self.sample_rate, self.win_length, self.n_fft, self.n_mels)
        spec = torch.stft(
            torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (n_fft // 2 + 1, T)
        mel = bank @ (spec.abs() ** 2)  # (n_mels, T)
        return torch.log(mel + LOG_MEL_EPS)


def fit_audio_stats(
    column: str,
    cells: pd.Series,
    base_dir,
    front: LogMelFrontEnd,
    *,
    duration_s: float | None,
    notes: list[str],
) -> dict:
    """Choose the clip length and log-mel mean/std for one audio column.

    ``duration_s`` None: the median of the sampled clips (at most
    :data:`MAX_AUDIO_DURATION_S`), explained in a line appended to ``notes``.
    """
    waves, durations = [], []
    for cell in sample_present(cells, AUDIO_SAMPLE):
        try:
            wave, rate = load_audio(cell, base_dir)
        except CELL_DECODE_ERRORS:
            continue
        if len(wave) == 0:
            continue
        waves.append(front.resample(wave, rate))
        durations.append(len(wave) / rate)
    if duration_s is None:
        median = float(np.median(durations)) if durations else 1.0
        duration_s = min(MAX_AUDIO_DURATION_S, max(MIN_AUDIO_DURATION_S, median))
        notes.append(
            f"audio column {column!r}: clips cut/padded to {duration_s:.3g} s (median of "
            f"{len(durations)} sampled clips, at most {MAX_AUDIO_DURATION_S:g} s)"
        )
    num_samples = int(round(duration_s * front.sample_rate))
    stats = {"num_samples": num_samples, "mean": 0.0, "std": 1.0}
    if waves:
        log_mels = torch.stack([front.log_mel(_fit_length(w, num_samples)) for w in waves])
        std = float(log_mels.std())
        stats["mean"] = float(log_mels.mean())
        stats["std"] = std if std > 1e-6 else 1.0
    stats["num_frames"] = 1 + num_samples // front.hop_length
    return stats


def decode_audio(
    cell, base_dir, front: LogMelFrontEnd, stats: dict, column: str
) -> tuple[torch.Tensor, bool]:
    """One audio cell as ((1, n_mels, T) standardised log-mel, present), with ``stats``
    from :func:`fit_audio_stats`. An absent or unreadable cell gives zeros and
    ``present=False`` (``column`` names it in the debug log)."""
    shape = (1, front.n_mels, stats["num_frames"])
    if cell_missing(cell):
        return torch.zeros(shape), False
    try:
        wave, rate = load_audio(cell, base_dir)
    except CELL_DECODE_ERRORS as exc:
        logger.debug("audio column %r: cell not decoded (%s)", column, exc)
        return torch.zeros(shape), False
    if len(wave) == 0 or not np.all(np.isfinite(wave)):
        return torch.zeros(shape), False
    log_mel = front.log_mel(_fit_length(front.resample(wave, rate), stats["num_samples"]))
    out = ((log_mel - stats["mean"]) / stats["std"])[None]  # (1, n_mels, T)
    assert out.shape == shape, (out.shape, shape)
    return out, True


def _fit_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Keep the first ``num_samples`` samples, zero-padding a shorter clip at the end."""
    if len(wave) >= num_samples:
        return wave[:num_samples]
    return np.pad(wave, (0, num_samples - len(wave)))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), float64, from 0 Hz to Nyquist.

    HTK mel scale, mel = 2595 * log10(1 + f / 700) (O'Shaughnessy 1987). Each filter rises
    from the previous band's centre to its own and falls to the next one's.
    """
    nyquist = sample_rate / 2.0
    mel_max = 2595.0 * math.log10(1.0 + nyquist / 700.0)
    edges_hz = 700.0 * (
        10.0 ** (np.linspace(0.0, mel_max, n_mels + 2) / 2595.0) - 1.0
    )  # (n_mels + 2,)
    bins_hz = np.linspace(0.0, nyquist, n_fft // 2 + 1)  # (F,)
    left, centre, right = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None] - left) / (centre - left)
    falling = (right - bins_hz[None]) / (right - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)  # (n_mels, F)


@functools.lru_cache(maxsize=8)
def _stft_constants(
    sample_rate: int, win_length: int, n_fft: int, n_mels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hann window (win_length,) and mel filterbank (n_mels, F), float32, built once
    per setting: they are read-only and rebuilding them costs more than the STFT."""
    window = torch.hann_window(win_length, dtype=torch.float32)
    bank = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float32))
    return window, bank
