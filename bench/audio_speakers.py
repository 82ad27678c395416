"""Benchmark: spoken digit words from voices never heard in training (issue 21).

Side by side, in one run, per seed and per condition (clean, and noisy at 10 dB SNR):

1. **polymodal**: ``Predictor(label="word", time_limit=S, seed=seed).fit(train_csv)`` then
   ``evaluate(test_csv)["accuracy"]`` — the default fit a user runs;
2. **log-mel statistics + RandomForest** (the issue's hand-made baseline);
3. **the same features + HistGradientBoosting**.

The clips are the ten English digit words voiced by ``espeak-ng`` (Debian package) with
several voices and variants, at a few speeds and pitches; the split is speaker-disjoint (the
test voice/variant pairs never occur in training). The noisy copy mixes white noise at
10 dB SNR into every clip. Prints accuracies and margins (polymodal - best baseline).
Target: polymodal >= best baseline + 3 points on unseen voices, clean and noisy, and not
below it on any seed.

Usage::

    .venv/bin/python bench/audio_speakers.py                  # 3 seeds, 120 s fits
    .venv/bin/python bench/audio_speakers.py --time-limit 30 --seeds 1

A benchmark, not a test; results go in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import soundfile as sf

OUT = Path(__file__).resolve().parent / "out" / "audio_speakers"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LANGS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029"]
VARIANTS = ["m1", "m3", "f1", "f2", "f4", "klatt", "croak", "whisper"]
SPEEDS = [140, 175]
PITCHES = [35, 60]
SR = 16000
TEST_VARIANTS = {"f4", "whisper"}  # held-out speakers: voices never heard in training
TEST_LANGS = {"en-029"}


def synth(text: str, lang: str, variant: str, speed: int, pitch: int, path: Path) -> None:
    subprocess.run(["espeak-ng", "-v", f"{lang}+{variant}", "-s", str(speed), "-p", str(pitch),
                    "-w", str(path), text], check=True, capture_output=True)


def build() -> dict[str, tuple[Path, Path]]:
    """Writes the clips (once) and the clean/noisy train/test CSVs."""
    clean, noisy = OUT / "clean", OUT / "noisy"
    clean.mkdir(parents=True, exist_ok=True)
    noisy.mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(1234)
    for lang, variant, speed, pitch, word in itertools.product(LANGS, VARIANTS, SPEEDS, PITCHES, WORDS):
        name = f"{lang}_{variant}_{speed}_{pitch}_{word}.wav"
        cpath, npath = clean / name, noisy / name
        if not cpath.is_file():
            synth(word, lang, variant, speed, pitch, cpath)
        if not npath.is_file():
            audio, sr = sf.read(cpath, dtype="float32")
            power = float(np.mean(audio ** 2)) or 1e-8
            noise = rng.normal(0.0, np.sqrt(power / 10 ** (10 / 10)), size=audio.shape)
            sf.write(npath, np.clip(audio + noise, -1, 1).astype("float32"), sr, subtype="PCM_16")
        # Speaker-disjoint: a clip is in test iff its variant or its accent is held out, so
        # no training clip shares a voice variant or an accent with a test clip.
        test = variant in TEST_VARIANTS or lang in TEST_LANGS
        rows.append({"name": name, "word": word, "split": "test" if test else "train"})
    table = pd.DataFrame(rows)
    out = {}
    for cond, folder in (("clean", clean), ("noisy", noisy)):
        paths = []
        for split in ("train", "test"):
            part = table[table.split == split]
            frame = pd.DataFrame({"clip": [str(folder / n) for n in part.name], "word": part.word})
            path = OUT / f"{cond}_{split}.csv"
            frame.to_csv(path, index=False)
            paths.append(path)
        out[cond] = (paths[0], paths[1])
    return out


def logmel_stats(path: str) -> np.ndarray:
    """Log-mel statistics: mean, std, min, max of 40 log-mel bands, plus deltas' mean/std."""
    from scipy.signal import resample_poly, stft

    from polymodal.data.audio_encoding import mel_filterbank

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    wav = audio.mean(axis=1)
    if sr != SR:
        wav = resample_poly(wav, SR, sr)
    _, _, spec = stft(wav, fs=SR, nperseg=512, noverlap=512 - 160)
    mel = mel_filterbank(SR, 512, 40) @ (np.abs(spec) ** 2)
    logm = np.log(mel + 1e-6)
    delta = np.diff(logm, axis=1) if logm.shape[1] > 1 else np.zeros_like(logm)
    return np.concatenate([logm.mean(1), logm.std(1), logm.min(1), logm.max(1),
                           delta.mean(1), delta.std(1)])


@functools.lru_cache(maxsize=4)
def features(csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """The baselines' features and labels of a table, computed once per condition."""
    table = pd.read_csv(csv)
    return np.stack([logmel_stats(p) for p in table["clip"]]), table["word"].to_numpy()


def baselines(train_csv: Path, test_csv: Path, seed: int) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    (xtr, ytr), (xte, yte) = features(train_csv), features(test_csv)
    tr, te = pd.DataFrame({"word": ytr}), pd.DataFrame({"word": yte})
    rf = RandomForestClassifier(n_estimators=500, random_state=seed, n_jobs=-1).fit(xtr, tr.word)
    hgb = HistGradientBoostingClassifier(random_state=seed).fit(xtr, tr.word)
    return {"rf": float((rf.predict(xte) == te.word).mean()),
            "hgb": float((hgb.predict(xte) == te.word).mean())}


def polymodal_fit(train_csv: Path, test_csv: Path, seed: int, time_limit: float) -> tuple[float, float]:
    from polymodal import Predictor

    start = time.perf_counter()
    pred = Predictor(label="word", time_limit=time_limit, seed=seed, verbosity=0).fit(str(train_csv))
    wall = time.perf_counter() - start
    return float(pred.evaluate(str(test_csv))["accuracy"]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--conditions", default="clean,noisy")
    args = ap.parse_args()
    sets = build()
    for cond in args.conditions.split(","):
        tr, te = sets[cond]
        ntr, nte = len(pd.read_csv(tr)), len(pd.read_csv(te))
        print(f"[{cond}] train {ntr} clips, test {nte} clips (unseen voices)", flush=True)
        margins = []
        for seed in range(args.seeds):
            base = baselines(tr, te, seed)
            acc, wall = polymodal_fit(tr, te, seed, args.time_limit)
            best = max(base.values())
            margins.append(acc - best)
            print(f"  seed {seed}: polymodal {acc:.3f} (fit {wall:.0f} s of {args.time_limit:.0f})"
                  f"  rf {base['rf']:.3f}  hgb {base['hgb']:.3f}  margin {acc - best:+.3f}", flush=True)
        print(f"[{cond}] median margin {statistics.median(margins):+.3f}, min {min(margins):+.3f}"
              f" (target >= +0.030, min >= 0)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
