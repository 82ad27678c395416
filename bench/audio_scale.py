"""Benchmark: a table of 10,000 one-second spoken clips fits within its time limit (issue 21).

The ten English digit words voiced by ``espeak-ng`` (Debian package) with 5 accents x 8
voice variants x 5 speeds x 5 pitches = 10,000 clips, each padded or cut to exactly one
second at 16 kHz. Test rows are the clips of two held-out variants (unseen voices); the
fit sees the other 7,500.

Side by side, in one run: ``polymodal fit TRAIN --label word --time-limit S`` (the
installed script, in a subprocess, so the wall time is what a user waits: imports, reading,
decoding, every candidate, saving) then its accuracy on the test rows; and the issue's hand-made
baseline, log-mel statistics + RandomForest (feature extraction included in its time).
Prints wall vs limit and the accuracies.

Usage::

    .venv/bin/python bench/audio_scale.py                  # 300 s limit
    .venv/bin/python bench/audio_scale.py --time-limit 120

A benchmark, not a test; results go in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_speakers import LANGS, SR, VARIANTS, WORDS, logmel_stats  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "audio_scale"
SPEEDS = [120, 145, 170, 195, 220]
PITCHES = [20, 35, 50, 65, 80]
TEST_VARIANTS = {"f4", "whisper"}


def synth(job: tuple) -> None:
    lang, variant, speed, pitch, word, path = job
    if path.is_file():
        return
    raw = subprocess.run(["espeak-ng", "-v", f"{lang}+{variant}", "-s", str(speed), "-p",
                          str(pitch), "--stdout", word], check=True, capture_output=True).stdout
    import io

    wave, rate = sf.read(io.BytesIO(raw), dtype="float32")
    if rate != SR:
        from scipy.signal import resample_poly

        wave = resample_poly(wave, SR, rate).astype("float32")
    wave = np.pad(wave, (0, max(0, SR - len(wave))))[:SR]  # exactly one second
    sf.write(path, wave, SR, subtype="PCM_16")


def build() -> tuple[Path, Path]:
    clips = OUT / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    jobs, rows = [], []
    for lang, variant, speed, pitch, word in itertools.product(LANGS, VARIANTS, SPEEDS,
                                                               PITCHES, WORDS):
        path = clips / f"{lang}_{variant}_{speed}_{pitch}_{word}.wav"
        jobs.append((lang, variant, speed, pitch, word, path))
        rows.append({"clip": f"clips/{path.name}", "word": word,
                     "split": "test" if variant in TEST_VARIANTS else "train"})
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(synth, jobs))
    table = pd.DataFrame(rows)
    paths = []
    for split in ("train", "test"):
        path = OUT / f"{split}.csv"
        table[table.split == split][["clip", "word"]].to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def baseline(train_csv: Path, test_csv: Path) -> tuple[float, float]:
    from sklearn.ensemble import RandomForestClassifier

    start = time.perf_counter()
    tr, te = pd.read_csv(train_csv), pd.read_csv(test_csv)
    xtr = np.stack([logmel_stats(str(OUT / p)) for p in tr["clip"]])
    xte = np.stack([logmel_stats(str(OUT / p)) for p in te["clip"]])
    rf = RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=-1).fit(xtr, tr.word)
    accuracy = float((rf.predict(xte) == te.word).mean())
    return accuracy, time.perf_counter() - start


def polymodal(train_csv: Path, test_csv: Path, time_limit: float) -> tuple[float, float]:
    exe = Path(sys.executable).with_name("polymodal")
    model = OUT / "model"
    if model.exists():
        import shutil

        shutil.rmtree(model)
    start = time.perf_counter()
    subprocess.run([str(exe), "fit", str(train_csv), "--label", "word", "--time-limit",
                    str(time_limit), "--out", str(model), "--quiet"], check=True)
    wall = time.perf_counter() - start
    from polymodal import Predictor

    return float(Predictor.load(model).evaluate(str(test_csv))["accuracy"]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=300.0)
    args = ap.parse_args()
    start = time.perf_counter()
    train_csv, test_csv = build()
    ntr, nte = len(pd.read_csv(train_csv)), len(pd.read_csv(test_csv))
    print(f"{ntr + nte:,} one-second clips ({ntr:,} train, {nte:,} test, unseen voices); "
          f"built in {time.perf_counter() - start:.0f} s", flush=True)
    acc, wall = polymodal(train_csv, test_csv, args.time_limit)
    print(f"polymodal fit: {wall:.1f} s wall for a {args.time_limit:.0f} s limit "
          f"(ratio {wall / args.time_limit:.2f}); test accuracy {acc:.3f}", flush=True)
    base_acc, base_s = baseline(train_csv, test_csv)
    print(f"log-mel statistics + RandomForest: {base_s:.1f} s; test accuracy {base_acc:.3f}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
