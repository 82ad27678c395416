"""Benchmark: spoken digit words from voices never heard in training, polymodal vs baselines.

1. Data (``bench/out/audio_speakers/``, built once): the ten digit words voiced by
   ``espeak-ng`` (Debian package) with 5 accents x 8 voice variants x 3 speaking rates,
   each clip at a seeded random pitch. Test voices are never heard in training: the test
   clips use 2 accents and 2 variants that no training clip uses (training: the other 3
   accents x 6 variants). A noisy copy of every clip is mixed with Gaussian noise at 10 dB
   SNR. Tables: ``train.csv`` / ``test.csv`` (clean)
   and ``train_noisy.csv`` / ``test_noisy.csv``, columns ``clip`` (a WAV path) and ``word``.
2. Contenders, side by side in one run, for each of ``--seeds`` seeds and both versions:
   - polymodal: ``Predictor(label="word", time_limit=--time-limit, seed=s).fit(train)``;
   - log-mel statistics (mean, standard deviation, min and max of 40 log-mel bands and of
     their time differences over the clip) + a random forest (500 trees);
   - the same features + histogram gradient boosting.
3. Printed: test accuracy per contender, seed and version; the medians; polymodal's margin
   over the best baseline. Target (issue 21): polymodal >= the best baseline + 3 points on
   unseen voices, clean and noisy, and not below it on any seed.

Usage::

    .venv/bin/python bench/audio_speakers.py                       # 3 seeds, 120 s fits
    .venv/bin/python bench/audio_speakers.py --seeds 1 --time-limit 30   # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "audio_speakers"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4")
RATES_WPM = (130, 165, 200)
TEST_ACCENTS, TEST_VARIANTS = ("en-gb-scotland", "en-029"), ("m5", "f3")
SNR_DB = 10.0
SAMPLE_RATE = 16_000


def build(out: Path) -> None:
    """Voice every clip with espeak-ng and write the four tables (skipped when present)."""
    if (out / "test_noisy.csv").is_file():
        return
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install -y espeak-ng")
    import soundfile
    from scipy.signal import resample_poly

    (out / "clean").mkdir(parents=True, exist_ok=True)
    (out / "noisy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = {"train": [], "test": []}
    for accent, variant, rate, word in itertools.product(ACCENTS, VARIANTS, RATES_WPM, WORDS):
        held_out = (accent in TEST_ACCENTS, variant in TEST_VARIANTS)
        if any(held_out) and not all(held_out):
            continue  # a test accent or variant is never heard in training
        name = f"{word}_{accent}_{variant}_{rate}.wav"
        raw = out / "raw.wav"
        pitch = int(rng.integers(25, 76))
        subprocess.run(["espeak-ng", "-v", f"{accent}+{variant}", "-s", str(rate), "-p",
                        str(pitch), "-w", str(raw), word], check=True, capture_output=True)
        wave, sr = soundfile.read(raw, dtype="float32")
        wave = resample_poly(wave, SAMPLE_RATE, sr).astype(np.float32)  # 22,050 -> 16,000 Hz
        soundfile.write(out / "clean" / name, wave, SAMPLE_RATE, subtype="PCM_16")
        power = float(np.mean(wave ** 2)) or 1e-12
        noise = rng.normal(0.0, np.sqrt(power / 10 ** (SNR_DB / 10)), len(wave))
        noisy = np.clip(wave + noise, -1, 1).astype(np.float32)
        soundfile.write(out / "noisy" / name, noisy, SAMPLE_RATE, subtype="PCM_16")
        split = "test" if all(held_out) else "train"
        rows[split].append({"name": name, "word": word, "voice": f"{accent}+{variant}"})
    raw.unlink(missing_ok=True)
    for split, items in rows.items():
        frame = pd.DataFrame(items)
        for version in ("clean", "noisy"):
            suffix = "" if version == "clean" else "_noisy"
            table = pd.DataFrame({"clip": [f"{version}/{n}" for n in frame["name"]],
                                  "word": frame["word"]})
            table.to_csv(out / f"{split}{suffix}.csv", index=False)
    (out / "voices.json").write_text(json.dumps({"test_accents": TEST_ACCENTS,
                                                 "test_variants": TEST_VARIANTS}))


# ------------------------------------------------------------------ the baseline features


def _mel_filters(n_fft: int, n_mels: int = 40) -> np.ndarray:
    """A (n_mels, n_fft // 2 + 1) triangular mel filterbank at SAMPLE_RATE."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    points = hz(np.linspace(mel(0), mel(SAMPLE_RATE / 2), n_mels + 2))
    bins = np.floor((n_fft + 1) * points / SAMPLE_RATE).astype(int)
    filters = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(1, n_mels + 1):
        lo, mid, hi = bins[m - 1], bins[m], bins[m + 1]
        filters[m - 1, lo:mid] = (np.arange(lo, mid) - lo) / max(1, mid - lo)
        filters[m - 1, mid:hi] = (hi - np.arange(mid, hi)) / max(1, hi - mid)
    return filters


def log_mel_statistics(path: Path) -> np.ndarray:
    """Mean, sd, min, max of 40 log-mel bands and of their time differences: (320,)."""
    import soundfile
    from scipy.signal import stft

    wave, _ = soundfile.read(path, dtype="float32")
    _, _, spec = stft(wave, fs=SAMPLE_RATE, nperseg=400, noverlap=240, nfft=512)
    logmel = np.log(_mel_filters(512) @ np.abs(spec) ** 2 + 1e-10)  # (40, T)
    delta = np.diff(logmel, axis=1) if logmel.shape[1] > 1 else np.zeros_like(logmel)
    return np.concatenate([f(x, axis=1) for x in (logmel, delta)
                           for f in (np.mean, np.std, np.min, np.max)])


def baselines(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    x_train = np.stack([log_mel_statistics(OUT / p) for p in train["clip"]])
    x_test = np.stack([log_mel_statistics(OUT / p) for p in test["clip"]])
    out = {}
    for name, model in (("log-mel stats + forest", RandomForestClassifier(
                            500, random_state=seed, n_jobs=-1)),
                        ("log-mel stats + boosting", HistGradientBoostingClassifier(
                            random_state=seed))):
        model.fit(x_train, train["word"])
        out[name] = float((model.predict(x_test) == test["word"].to_numpy()).mean())
    return out


def polymodal_fit(train_csv: Path, test: pd.DataFrame, seed: int, time_limit: float) -> dict:
    from polymodal import Predictor

    start = time.perf_counter()
    model = Predictor(label="word", time_limit=time_limit, seed=seed, verbosity=0)
    model.fit(train_csv)
    wall = time.perf_counter() - start
    table = test.copy()
    table.attrs["base_dir"] = str(OUT)
    accuracy = float((model.predict(table) == test["word"].to_numpy()).mean())
    return {"accuracy": accuracy, "wall_s": wall, "chosen": model.chosen_}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=120.0)
    args = parser.parse_args()
    build(OUT)
    results = []
    for version, suffix in (("clean", ""), ("noisy", "_noisy")):
        train, test = (pd.read_csv(OUT / f"{s}{suffix}.csv") for s in ("train", "test"))
        print(f"== {version}: {len(train):,} training clips, {len(test):,} test clips from "
              "voices never heard in training", flush=True)
        for seed in range(args.seeds):
            row = {"version": version, "seed": seed, **baselines(train, test, seed)}
            fit = polymodal_fit(OUT / f"train{suffix}.csv", test, seed, args.time_limit)
            row.update({"polymodal": fit["accuracy"], "polymodal_wall_s": fit["wall_s"],
                        "polymodal_chosen": fit["chosen"]})
            results.append(row)
            print("   " + json.dumps(row), flush=True)
    contenders = ("polymodal", "log-mel stats + forest", "log-mel stats + boosting")
    print(f"\n{'version':8s} " + " ".join(f"{c:>26s}" for c in contenders)
          + f" {'margin (median)':>16s} {'worst seed margin':>18s}")
    for version in ("clean", "noisy"):
        rows = [r for r in results if r["version"] == version]
        medians = {c: statistics.median(r[c] for r in rows) for c in contenders}
        best = max(medians[c] for c in contenders[1:])
        worst = min(r["polymodal"] - max(r[c] for c in contenders[1:]) for r in rows)
        print(f"{version:8s} " + " ".join(f"{medians[c]:26.3f}" for c in contenders)
              + f" {medians['polymodal'] - best:+16.3f} {worst:+18.3f}")
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {OUT / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
