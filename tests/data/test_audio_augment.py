"""Training-time audio augmentation: seeded, label-preserving, for training batches only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from polymodal.data.audio_augment import (
    AUDIO_AUGMENT_DEFAULTS,
    AUDIO_AUGMENT_DRAWS,
    audio_augment_problems,
    augment_log_mels,
)
from polymodal.data.dataset import TableDataset, make_loader, set_epoch
from polymodal.data.schema import infer_schema
from polymodal.data.transforms import TableTransform

HOP_S = 0.01


def log_mels(batch: int = 4, n_mels: int = 16, n_frames: int = 40) -> torch.Tensor:
    return torch.randn(batch, 1, n_mels, n_frames, generator=torch.Generator().manual_seed(0))


def draws(batch: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, AUDIO_AUGMENT_DRAWS))


def augment(x, u, settings=None, present=None):
    present = torch.ones(len(x), dtype=torch.bool) if present is None else present
    return augment_log_mels(x, present, u, {**AUDIO_AUGMENT_DEFAULTS, **(settings or {})},
                            mean=-6.0, std=3.0, hop_s=HOP_S)


def test_same_draws_same_result_other_draws_another():
    x = log_mels()
    a, b = augment(x, draws(seed=1)), augment(x, draws(seed=1))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(x, draws(seed=2)))
    assert not torch.allclose(a, x)


def test_a_row_is_augmented_the_same_in_any_batch():
    x, u = log_mels(), draws()
    whole = augment(x, u)
    for row in range(len(x)):
        torch.testing.assert_close(augment(x[row:row + 1], u[row:row + 1])[0], whole[row])


def test_absent_rows_and_switched_off_steps_leave_the_input_alone():
    x, u = log_mels(), draws()
    out = augment(x, u, present=torch.tensor([True, False, True, False]))
    assert torch.equal(out[1], x[1]) and torch.equal(out[3], x[3])
    off = {"speed": 0.0, "pitch": 0.0, "shift_s": 0.0, "noise_prob": 0.0, "time_masks": 0,
           "freq_masks": 0}
    assert torch.equal(augment(x, u, off), x)


def test_masks_fill_whole_bands_with_the_clips_band_mean():
    x = log_mels(batch=2)
    only_freq = {"speed": 0.0, "pitch": 0.0, "shift_s": 0.0, "noise_prob": 0.0,
                 "time_masks": 0, "freq_masks": 1, "freq_mask_bands": 4}
    u = draws(batch=2)
    u[:, 5 + 2 * 4 + 1] = 0.99  # the widest mask
    out = augment(x, u, only_freq)
    changed = (out != x).any(dim=3)[:, 0]  # (B, M): bands touched
    assert changed.sum(dim=1).tolist() == [4, 4]
    band_mean = x.mean(dim=3, keepdim=True).expand_as(x)
    torch.testing.assert_close(out[:, :, changed[0]][0], band_mean[:, :, changed[0]][0])


def test_problems_name_the_key_and_value():
    assert audio_augment_problems(None) == [] and audio_augment_problems({}) == []
    problems = audio_augment_problems({"speed": 2.0, "loudness": 1, "noise_snr_db": [30, 5],
                                       "time_masks": 1.5})
    text = " ".join(problems)
    for needle in ("'speed'", "2.0", "loudness", "noise_snr_db", "time_masks"):
        assert needle in text
    assert audio_augment_problems("on")  # not a dict


@pytest.fixture
def clips(tmp_path):
    """Ten one-second tones, two pitches; row 9's file is missing."""
    t = np.arange(8000) / 8000
    rows = []
    for i in range(10):
        freq = 300 if i % 2 else 900
        sf.write(tmp_path / f"{i}.wav", (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32),
                 8000)
        rows.append({"clip": f"{i}.wav" if i < 9 else "gone.wav", "y": "low" if i % 2 else "high"})
    df = pd.DataFrame(rows)
    df.attrs["base_dir"] = str(tmp_path)
    schema = infer_schema(df, label="y")
    return df, TableTransform(schema, n_mels=16, audio_augment={}).fit(df)


def test_training_batches_are_augmented_evaluation_batches_are_not(clips):
    df, transform = clips
    plain = TableTransform(transform.schema, n_mels=16).fit(df)
    evaluation = TableDataset(df, transform).__getitems__(range(10)).audio["clip"]
    reference = TableDataset(df, plain).__getitems__(range(10)).audio["clip"]
    assert torch.equal(evaluation, reference)  # validation and prediction hear the clip as it is
    train = TableDataset(df, transform, train=True, seed=0)
    batch = train.__getitems__(range(10))
    heard = batch.audio["clip"]
    assert not batch.mask["clip"][9] and torch.equal(heard[9], evaluation[9])  # absent: zeros
    assert all(not torch.equal(heard[i], evaluation[i]) for i in range(9))
    # Seeded: the same seed and epoch give the same batch, another epoch another one.
    assert torch.equal(TableDataset(df, transform, train=True, seed=0)
                       .__getitems__(range(10)).audio["clip"], heard)
    train.set_epoch(1)
    assert not torch.equal(train.__getitems__(range(10)).audio["clip"], heard)


def test_a_loader_with_workers_augments_like_one_without(clips):
    df, transform = clips
    dataset = TableDataset(df, transform, train=True, seed=2)
    seen = {}
    for workers in (0, 2):
        loader = make_loader(dataset, batch_size=4, shuffle=True, seed=1, num_workers=workers)
        set_epoch(loader, 1)
        seen[workers] = [b.audio["clip"] for b in loader]
    for a, b in zip(seen[0], seen[2], strict=True):
        assert torch.equal(a, b)


def test_the_setting_is_saved_with_the_transform(clips, tmp_path):
    df, transform = clips
    transform.save(tmp_path / "t")
    loaded = TableTransform.load(tmp_path / "t")
    assert loaded.audio_augment == {} and loaded.audio_augment_ == AUDIO_AUGMENT_DEFAULTS
