"""Label-preserving augmentation of standardised log-mel spectrograms, a batch at a time.

It runs on the decoded (and cached) spectrograms, so a clip is decoded once however many
epochs see it. Per training row, in order:

1. **speed, pitch and time shift** — one bilinear resampling of the (mel, time) grid:
   time stretched by a factor in ``[1 - speed, 1 + speed]`` (a faster or slower speaker),
   mel axis stretched by one in ``[1 - pitch, 1 + pitch]`` (a higher or lower voice: the
   vocal-tract length perturbation of Jaitly & Hinton 2013, on mel bands), and shifted in
   time by up to ``shift_s`` seconds either way; what comes in from outside is silence.
2. **background noise** — with probability ``noise_prob``, a steady noise floor (white
   noise's spectrum through the mel filters) at an SNR drawn uniformly from
   ``noise_snr_db`` is added in the power domain (the log-mel is
   un-standardised with the column's mean/std, ``log(exp(L) + noise)``, standardised again).
3. **SpecAugment masks** (Park et al. 2019, Sec. 2): ``time_masks`` blocks of up to
   ``time_mask_s`` seconds and ``freq_masks`` blocks of up to ``freq_mask_bands`` mel
   bands, each set to the clip's mean of that band (what the encoder's per-band
   normalisation maps to 0).

Every random number comes from ``draws``, :data:`AUDIO_AUGMENT_DRAWS` uniforms per row
(:func:`polymodal.data.dataset.row_uniforms`), and each row is transformed on its own, so a
row is augmented the same in any batch.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F

AUDIO_AUGMENT_DEFAULTS = {
    "speed": 0.15,
    "pitch": 0.1,
    "shift_s": 0.1,
    "noise_prob": 0.5,
    "noise_snr_db": [5.0, 30.0],
    "time_masks": 2,
    "time_mask_s": 0.08,
    "freq_masks": 2,
    "freq_mask_bands": 8,
}
MAX_MASKS = 4  # of each kind; fixes how many uniforms a row reads
# speed, pitch, shift, noise on/off, noise SNR, then (start, width) per mask of each kind
AUDIO_AUGMENT_DRAWS = 5 + 4 * MAX_MASKS
_FRACTIONS = ("speed", "pitch", "noise_prob")


def audio_augment_problems(augment) -> list[str]:
    """What is wrong with an audio ``augment`` setting (None or a dict of
    :data:`AUDIO_AUGMENT_DEFAULTS` keys), each naming the key, the value and the range."""
    if augment is None:
        return []
    if not isinstance(augment, dict):
        return [f"audio_augment must be None or a dict like {AUDIO_AUGMENT_DEFAULTS}, "
                f"got {augment!r}"]
    problems = []
    unknown = sorted(set(augment) - set(AUDIO_AUGMENT_DEFAULTS))
    if unknown:
        problems.append(f"audio_augment has unknown key(s) {unknown}; the keys are "
                        f"{sorted(AUDIO_AUGMENT_DEFAULTS)}")
    for key in _FRACTIONS:
        value = augment.get(key, 0.0)
        if not _real(value) or not 0.0 <= value < 1.0:
            problems.append(f"audio_augment[{key!r}]={value!r} must be a number in [0, 1)")
    for key in ("shift_s", "time_mask_s"):
        value = augment.get(key, 0.0)
        if not _real(value) or value < 0:
            problems.append(f"audio_augment[{key!r}]={value!r} must be a number of seconds >= 0")
    for key in ("time_masks", "freq_masks", "freq_mask_bands"):
        value = augment.get(key, 0)
        limit = MAX_MASKS if key != "freq_mask_bands" else 10_000
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            problems.append(f"audio_augment[{key!r}]={value!r} must be an integer in "
                            f"[0, {limit}]")
    snr = augment.get("noise_snr_db", [0.0, 0.0])
    if (not isinstance(snr, list | tuple) or len(snr) != 2 or not all(map(_real, snr))
            or snr[0] > snr[1]):
        problems.append(f"audio_augment['noise_snr_db']={snr!r} must be [low, high] in dB, "
                        "e.g. [5, 30]")
    return problems


def augment_log_mels(log_mels: torch.Tensor, present: torch.Tensor, draws: np.ndarray,
                     augment: dict, *, mean: float, std: float, hop_s: float,
                     noise_shape: torch.Tensor | None = None) -> torch.Tensor:
    """Augmented copies of standardised log-mels ``(B, 1, M, T)``: rows not ``present``
    (``(B,)`` bool) stay as they are. ``augment`` has every key of
    :data:`AUDIO_AUGMENT_DEFAULTS`; ``mean``/``std`` are the column's standardisation;
    ``hop_s`` the seconds per frame; ``draws`` ``(B, AUDIO_AUGMENT_DRAWS)``;
    ``noise_shape`` ``(M,)`` the noise's relative power per band, mean 1 (white noise
    through the mel filters: each band's filter area), default flat."""
    x = log_mels.float()
    batch, _, n_mels, n_frames = x.shape
    u = torch.from_numpy(np.asarray(draws, dtype=np.float64)).float()  # (B, D)
    silence = (float(np.log(1e-6)) - mean) / std  # a zero wave's standardised log-mel

    # 1. speed, pitch and time shift: output (mel, frame) reads input (p * mel, r * frame + s).
    speed = 1.0 + (2 * u[:, 0] - 1) * augment["speed"]  # (B,)
    pitch = 1.0 + (2 * u[:, 1] - 1) * augment["pitch"]
    shift = (2 * u[:, 2] - 1) * augment["shift_s"] / max(hop_s * (n_frames - 1), 1e-9) * 2
    if augment["speed"] or augment["pitch"] or augment["shift_s"]:
        theta = torch.zeros(batch, 2, 3)
        # affine_grid's x is time, y is mel, both in [-1, 1]; scaling about -1 keeps the
        # start of the clip and the lowest band in place.
        theta[:, 0, 0], theta[:, 0, 2] = speed, speed - 1.0 + shift
        theta[:, 1, 1], theta[:, 1, 2] = pitch, pitch - 1.0
        grid = F.affine_grid(theta, (batch, 1, n_mels, n_frames), align_corners=True)
        x = F.grid_sample(x - silence, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=True) + silence  # (B, 1, M, T)

    # 2. background noise, added in the power domain.
    if augment["noise_prob"]:
        low, high = augment["noise_snr_db"]
        noisy = u[:, 3] < augment["noise_prob"]  # (B,)
        snr_db = low + u[:, 4] * (high - low)
        power = torch.exp(x * std + mean)  # (B, 1, M, T)
        floor = power.mean(dim=(1, 2, 3)) * 10.0 ** (-snr_db / 10.0)  # (B,)
        shape = torch.ones(n_mels) if noise_shape is None else noise_shape.float()
        noise = floor[:, None, None, None] * shape[None, None, :, None]  # (B, 1, M, 1)
        mixed = (torch.log(power + noise) - mean) / std
        x = torch.where(noisy[:, None, None, None], mixed, x)

    # 3. SpecAugment masks, each filled with the clip's mean of the band.
    band_mean = x.mean(dim=3, keepdim=True).expand_as(x)  # (B, 1, M, T)
    frames = torch.arange(n_frames)[None]  # (1, T)
    bands = torch.arange(n_mels)[None]  # (1, M)
    time_width = int(round(augment["time_mask_s"] / hop_s))
    mask = torch.zeros(batch, 1, n_mels, n_frames, dtype=torch.bool)
    for k in range(augment["time_masks"]):
        mask |= _block(u[:, 5 + 2 * k], u[:, 6 + 2 * k], time_width, n_frames, frames)[
            :, None, None, :]
    base = 5 + 2 * MAX_MASKS
    for k in range(augment["freq_masks"]):
        mask |= _block(u[:, base + 2 * k], u[:, base + 1 + 2 * k], augment["freq_mask_bands"],
                       n_mels, bands)[:, None, :, None]
    x = torch.where(mask, band_mean, x)

    keep = ~present.bool()[:, None, None, None]
    return torch.where(keep, log_mels.float(), x)


def _block(u_start: torch.Tensor, u_width: torch.Tensor, max_width: int, size: int,
           positions: torch.Tensor) -> torch.Tensor:
    """``(B, size)`` bool: a block of ``floor(u_width * (max_width + 1))`` positions (at
    most ``size``) starting uniformly where it fits."""
    width = torch.clamp((u_width * (max_width + 1)).long(), max=min(max_width, size))  # (B,)
    start = (u_start * (size - width + 1).float()).long()  # (B,)
    return (positions >= start[:, None]) & (positions < (start + width)[:, None])


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and bool(np.isfinite(value))
