"""Benchmark: the seed's tabular example vs ``polymodal fit`` with a 60 s budget.

The seed pipeline (``StandardScaler`` + default ``RandomForestClassifier``) and the
Predictor are fitted on the same 80/20 split (``random_state=42``) of scikit-learn's
``breast_cancer``, ``wine`` and ``digits`` (64 numeric pixel columns), each written as a
CSV with a ``label`` column. Three seeds vary the forest's ``random_state`` and the
Predictor's ``seed``; the split stays fixed. Target: polymodal's median test accuracy
>= the seed pipeline's on every dataset.

Every fit runs in its own subprocess (this file with ``--worker``), so the peak RSS it
reports (``ru_maxrss``) belongs to that fit alone. Torch and OpenMP threads default to 1:
on a 2-core machine shared with other work, more threads are often slower.

    .venv/bin/python bench/predictor_tabular.py [--time-limit 60] [--seeds 0 1 2] [--threads 1]
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
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out" / "tabular"
DATASETS = ("breast_cancer", "wine", "digits")
SPLIT_RANDOM_STATE = 42
TEST_FRACTION = 0.2


def write_dataset(name: str, out_dir: Path) -> tuple[Path, Path]:
    """``train.csv`` and ``test.csv`` of one scikit-learn dataset, label in column ``label``."""
    import pandas as pd
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
              "digits": datasets.load_digits}[name]
    bunch = loader()
    names = [str(f) for f in bunch.feature_names]
    table = pd.DataFrame(bunch.data, columns=names)
    table["label"] = bunch.target
    train, test = train_test_split(table, test_size=TEST_FRACTION, random_state=SPLIT_RANDOM_STATE)
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.csv", folder / "test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_seed_pipeline(train_csv: str, test_csv: str, seed: int) -> dict:
    """The seed's pipeline: scale, then a default random forest."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)
    start = time.perf_counter()
    model = make_pipeline(StandardScaler(), RandomForestClassifier(random_state=seed))
    model.fit(train.drop(columns="label"), train["label"])
    fit_s = time.perf_counter() - start
    accuracy = float((model.predict(test.drop(columns="label")) == test["label"]).mean())
    return {"accuracy": accuracy, "fit_s": fit_s, "peak_rss_mb": _peak_rss_mb()}


def run_polymodal(train_csv: str, test_csv: str, seed: int, time_limit_s: float) -> dict:
    """``Predictor(label="label", time_limit=...)`` fitted on the CSV, scored on the test CSV."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from polymodal import Predictor

    start = time.perf_counter()
    predictor = Predictor("label", time_limit=time_limit_s, seed=seed, verbosity=0).fit(train_csv)
    fit_s = time.perf_counter() - start
    accuracy = predictor.evaluate(test_csv)["accuracy"]
    board = predictor.leaderboard()
    return {"accuracy": float(accuracy), "fit_s": fit_s, "peak_rss_mb": _peak_rss_mb(),
            "chosen": predictor.chosen_,
            "leaderboard": board.drop(columns=["predict_time_s"]).to_dict(orient="records")}


def _worker(args: argparse.Namespace) -> None:
    if args.system == "seed":  # no torch import: its memory is not the seed pipeline's
        result = run_seed_pipeline(args.train, args.test, args.seed)
    else:
        import torch

        torch.set_num_threads(args.threads)
        result = run_polymodal(args.train, args.test, args.seed, args.time_limit)
    print("RESULT " + json.dumps(result))


def _spawn(system: str, train: Path, test: Path, seed: int, time_limit_s: float, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    command = [sys.executable, __file__, "--worker", system, "--train", str(train), "--test", str(test),
               "--seed", str(seed), "--time-limit", str(time_limit_s), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{system} fit failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0, help="polymodal's budget, seconds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per fit")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--worker", choices=("seed", "polymodal"), help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.system = args.worker
        _worker(args)
        return

    print(f"polymodal time_limit={args.time_limit:g} s, seeds {args.seeds}, threads {args.threads}, "
          f"split random_state={SPLIT_RANDOM_STATE}")
    summary = []
    for name in args.datasets:
        train, test = write_dataset(name, OUT_DIR)
        runs = {"seed": [], "polymodal": []}
        for seed in args.seeds:
            for system in runs:
                result = _spawn(system, train, test, seed, args.time_limit, args.threads)
                runs[system].append(result)
                extra = f"  chosen={result['chosen']}" if system == "polymodal" else ""
                print(f"  {name:<13} seed {seed} {system:<9} acc {result['accuracy']:.4f}  "
                      f"fit {result['fit_s']:6.1f} s  peak RSS {result['peak_rss_mb']:6.0f} MB{extra}",
                      flush=True)
                if system == "polymodal":
                    for row in result["leaderboard"]:
                        print(f"      {row['model']:<24} val_acc {row['val_accuracy']:.4f}  "
                              f"fit {row['fit_time_s']:6.1f} s{'  *' if row['chosen'] else ''}")
        row = {"dataset": name}
        for system, results in runs.items():
            accs = [r["accuracy"] for r in results]
            row[system] = {"median_acc": statistics.median(accs), "accs": accs,
                           "median_fit_s": statistics.median(r["fit_s"] for r in results),
                           "max_rss_mb": max(r["peak_rss_mb"] for r in results)}
        summary.append(row)

    print()
    print(f"{'dataset':<14}{'seed acc (median; all)':<34}{'polymodal acc (median; all)':<34}"
          f"{'acc ratio':>10}{'seed fit s':>12}{'poly fit s':>12}{'time ratio':>11}"
          f"{'seed RSS MB':>12}{'poly RSS MB':>12}{'RSS ratio':>10}  target")
    for row in summary:
        s, p = row["seed"], row["polymodal"]

        def accs(r: dict) -> str:
            return f"{r['median_acc']:.4f}; " + " ".join(f"{a:.4f}" for a in r["accs"])

        verdict = "met" if p["median_acc"] >= s["median_acc"] else "MISSED"
        print(f"{row['dataset']:<14}{accs(s):<34}{accs(p):<34}"
              f"{p['median_acc'] / s['median_acc']:>10.3f}{s['median_fit_s']:>12.2f}"
              f"{p['median_fit_s']:>12.1f}{p['median_fit_s'] / s['median_fit_s']:>11.1f}"
              f"{s['max_rss_mb']:>12.0f}{p['max_rss_mb']:>12.0f}"
              f"{p['max_rss_mb'] / s['max_rss_mb']:>10.2f}  {verdict}")
    (OUT_DIR / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
