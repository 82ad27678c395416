"""Benchmark: fusion vs single-modality predictors on ``shapes``, with the per-modality ablation.

``shapes`` (see :mod:`polymodal.data.builtin.shapes`) labels a row premium iff
(shape is circle or star) == (material is metal), with 5% label noise. The material is
only in the table; the shape kind is in the image, the caption and the ``shape`` column.
The ``shape`` column is dropped from every configuration here: with it the table alone
would hold the whole rule and no other modality could add anything. (The ``area``
column still hints at the shape — a circle covers more of its box than a star of the
same size — so table-only models land above 50%.)

Configurations, each a Predictor with the same budget on the same rows:

- ``fused: image+caption+table``   vs ``image only``, ``caption only``, ``table only``;
- ``fused: image+table``           (no caption, no shape column): the image must carry
  the shape, so fusion must beat ``image only`` and ``table only`` clearly and the
  ablation must show the image contributing.

Each fit runs in its own subprocess (this file with ``--worker``): the peak RSS printed
(``ru_maxrss``) is that fit's alone. Torch and OpenMP threads default to 1: on a 2-core
machine shared with other work, more threads are often slower.

    .venv/bin/python bench/predictor_multimodal.py [--n 3000] [--time-limit 120] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

IMAGE, CAPTION = ["image"], ["caption"]
TABLE = ["color", "size", "position", "area", "hue", "material", "price"]  # no "shape"
CONFIGS = {  # name -> feature columns
    "fused: image+caption+table": IMAGE + CAPTION + TABLE,
    "fused: image+table": IMAGE + TABLE,
    "image only": IMAGE,
    "caption only": CAPTION,
    "table only": TABLE,
}
FUSED_VS_SINGLE = {  # each fused configuration against the single modalities it combines
    "fused: image+caption+table": ["image only", "caption only", "table only"],
    "fused: image+table": ["image only", "table only"],
}
CLEAR_MARGIN = 0.05  # accuracy points a fused model must win by
DATA_SEED = 0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_config(config: str, n: int, seed: int, time_limit_s: float) -> dict:
    """Fit one configuration on the shapes train split; score it (and ablate it) on the test split."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from polymodal import Predictor, datasets
    from polymodal.evaluate.explain import modality_ablation

    train, test = datasets.load("shapes", n=n, split=True, seed=DATA_SEED)
    keep = CONFIGS[config] + ["label"]
    train, test = train[keep], test[keep]
    start = time.perf_counter()
    predictor = Predictor("label", time_limit=time_limit_s, seed=seed, verbosity=0).fit(train)
    fit_s = time.perf_counter() - start
    accuracy = float(predictor.evaluate(test)["accuracy"])
    board = predictor.leaderboard().drop(columns=["predict_time_s"])
    prepared_s = next(e["time_s"] for e in predictor.train_log_ if e["event"] == "prepared")
    result = {"accuracy": accuracy, "fit_s": fit_s, "prepare_s": prepared_s, "chosen": predictor.chosen_,
              "ensemble": predictor.ensemble_weights_,
              "leaderboard": board.to_dict(orient="records")}
    if config.startswith("fused"):
        ablation = modality_ablation(predictor, test)
        result["ablation"] = ablation[["masked", "value", "contribution"]].to_dict(orient="records")
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def _spawn(config: str, n: int, seed: int, time_limit_s: float, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    command = [sys.executable, __file__, "--worker", config, "--n", str(n), "--seed", str(seed),
               "--time-limit", str(time_limit_s), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{config} fit failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _print_run(config: str, seed: int, r: dict) -> None:
    print(f"{config:<28} seed {seed}  test acc {r['accuracy']:.4f}  fit {r['fit_s']:6.1f} s "
          f"(read+transform {r['prepare_s']:.1f} s)  "
          f"peak RSS {r['peak_rss_mb']:6.0f} MB  chosen={r['chosen']}"
          + (f" {r['ensemble']}" if r["ensemble"] else ""), flush=True)
    for row in r["leaderboard"]:
        print(f"      {row['model']:<24} val_acc {row['val_accuracy']:.4f}  "
              f"fit {row['fit_time_s']:6.1f} s{'  *' if row['chosen'] else ''}")
    for row in r.get("ablation", []):
        print(f"      ablation: masked {row['masked']:<12} test acc {row['value']:.4f}  "
              f"contribution {row['contribution']:+.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="rows of shapes (80/20 split)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="budget per fit, seconds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per fit")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print("RESULT " + json.dumps(run_config(args.worker, args.n, args.seed, args.time_limit)))
        return

    print(f"shapes n={args.n} (data seed {DATA_SEED}), time_limit={args.time_limit:g} s per fit, "
          f"seeds {args.seeds}, threads {args.threads}")
    results: dict[str, list[dict]] = {c: [] for c in args.configs}
    for seed in args.seeds:
        for config in args.configs:
            result = _spawn(config, args.n, seed, args.time_limit, args.threads)
            results[config].append(result)
            _print_run(config, seed, result)

    median = {c: statistics.median(r["accuracy"] for r in rs) for c, rs in results.items()}
    print()
    print(f"{'configuration':<28}{'test acc (median; all)':<32}{'fit s':>8}{'peak RSS MB':>13}")
    for config, rs in results.items():
        accs = "; ".join([f"{median[config]:.4f}", " ".join(f"{r['accuracy']:.4f}" for r in rs)])
        print(f"{config:<28}{accs:<32}{statistics.median(r['fit_s'] for r in rs):>8.1f}"
              f"{max(r['peak_rss_mb'] for r in rs):>13.0f}")
    print()
    for fused, singles in FUSED_VS_SINGLE.items():
        singles = [s for s in singles if s in median]
        if fused not in median or not singles:
            continue
        best = max(singles, key=median.get)
        margin = median[fused] - median[best]
        verdict = "met" if margin >= CLEAR_MARGIN else "MISSED"
        print(f"{fused}: {median[fused]:.4f} vs best single ({best}) {median[best]:.4f}: "
              f"margin {margin:+.4f}, ratio {median[fused] / median[best]:.3f}  "
              f"(target: margin >= {CLEAR_MARGIN}) {verdict}")
        contributions = {}
        for r in results[fused]:
            for row in r["ablation"][1:]:
                contributions.setdefault(row["masked"], []).append(row["contribution"])
        print("    ablation, median contribution (test acc lost when masked): "
              + ", ".join(f"{m} {statistics.median(v):+.4f}" for m, v in contributions.items()))


if __name__ == "__main__":
    main()
