"""What the cleaning report says of the clips of an audio column that decode: silent clips,
clipped clips, clips longer than the transform keeps, several sample rates, more than two
channels, 8-bit samples — each one line with a count, the first rows and file, and what
training does about it.

Unreadable clips are file problems (:func:`polymodal.data.cleaning.clean_report`); these are
clips that decode but that a speech/audio practitioner would want to hear about.
"""

from __future__ import annotations

import numpy as np

from polymodal.data.audio_encoding import MAX_AUDIO_DURATION_S

# Peak amplitude below which a clip is silent (-80 dBFS).
SILENT_PEAK = 1e-4
# A clip is clipped when at least this share of its samples sit at full scale.
CLIPPED_SHARE = 0.01
FULL_SCALE = 0.999


def clip_stats(wave: np.ndarray, rate: int, channels: int = 1,
               bits: int | None = None) -> tuple[float, float, float, int, int, int | None]:
    """``(peak, share of samples at full scale, seconds, sample rate, channels, bits per
    sample or None)`` of one clip: what :func:`audio_notes` needs, without keeping the
    waveform (``channels`` and ``bits`` as the file has them, see ``load_audio``)."""
    peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
    at_full_scale = float(np.mean(np.abs(wave) >= FULL_SCALE)) if len(wave) else 0.0
    return peak, at_full_scale, len(wave) / rate, int(rate), int(channels), bits


def audio_notes(column: str, clips: list[tuple[int, tuple]], rows_list,
                files: dict[int, str] | None = None) -> list[str]:
    """Notes for ``clips``: ``(row, clip_stats(...))`` of the checked cells that decode.
    ``rows_list`` formats row numbers for a line; ``files`` (row -> file), when given,
    names each finding's first file."""
    silent, clipped, long, rates, many_channels, eight_bit = [], [], [], {}, [], []
    for row, (peak, at_full_scale, seconds, rate, *rest) in clips:
        channels, bits = (rest + [1, None])[:2]
        if channels > 2:
            many_channels.append(row)
        if bits is not None and bits <= 8:
            eight_bit.append(row)
        if peak < SILENT_PEAK:
            silent.append(row)
        elif at_full_scale >= CLIPPED_SHARE:
            clipped.append(row)
        if seconds > MAX_AUDIO_DURATION_S:
            long.append(row)
        rates.setdefault(rate, []).append(row)
    what = f"audio column {column!r}:"
    notes = []

    def first(rows: list[int]) -> str:
        return f"; first {files[rows[0]]}" if files and rows[0] in files else ""

    if silent:
        notes.append(f"{what} {len(silent):,} clip(s) are silent (peak below -80 dBFS; rows "
                     f"{rows_list(silent)}{first(silent)}) → kept; they carry no sound to learn from")
    if clipped:
        notes.append(f"{what} {len(clipped):,} clip(s) are clipped (≥ {CLIPPED_SHARE:.0%} of "
                     f"samples at full scale; rows {rows_list(clipped)}{first(clipped)}) → kept as they are")
    if long:
        notes.append(f"{what} {len(long):,} clip(s) are longer than {MAX_AUDIO_DURATION_S:g} s "
                     f"(rows {rows_list(long)}{first(long)}) → cut to the clip length the "
                     "transform keeps")
    if many_channels:
        notes.append(f"{what} {len(many_channels):,} clip(s) have more than 2 channels (rows "
                     f"{rows_list(many_channels)}{first(many_channels)}) → mixed down to mono")
    if eight_bit:
        notes.append(f"{what} {len(eight_bit):,} clip(s) are 8-bit (rows {rows_list(eight_bit)}"
                     f"{first(eight_bit)}) → used as they are; 8-bit samples carry audible "
                     "quantisation noise (about 48 dB below full scale)")
    if len(rates) > 1:
        counts = ", ".join(f"{len(r):,} at {k / 1000:g} kHz" for k, r in sorted(rates.items()))
        notes.append(f"{what} sample rates differ ({counts}) → all resampled to one rate")
    return notes
