"""Benchmark: does generative augmentation help when labels are scarce? (Fashion-MNIST)

For each fraction of the 60,000 training labels (1%, 5%, 20%; stratified subsets, one
per seed) this script:

1. trains a class-conditional ``Generator`` on that subset only (``--generator-s``);
2. samples synthetic images per class with :func:`polymodal.workflows.augment.augment_table`
   (``--ratio`` synthetic rows per real row, at most ``--max-synthetic`` in all, rarest
   classes first -- the subsets are stratified, so in practice evenly);
3. trains two ``Predictor``s with the same budget (``--predictor-s``): real rows only,
   and real + synthetic (the synthetic rows train, never validate);
4. scores both on the full 10,000-image real test set (accuracy), and the generator's
   CAS (Ravuri & Vinyals 2019): a judge-architecture classifier
   (:class:`polymodal.workflows.judge.Judge`, as ``evaluate_generator``'s CAS uses)
   trained on the synthetic images only, tested on the 10,000 real test images, next to
   the same classifier trained on the real subset.

Results go to ``bench/out/augment_scarcity.json`` after every configuration; a rerun
skips configurations already there with the same settings, so ``--quick`` (seed 0) and
then the full run (seeds 0, 1, 2) share work. At the end it prints a table of the lift
per fraction and a plain statement of where augmentation helps.

Usage::

    .venv/bin/python bench/augment_scarcity.py --quick     # 1 seed, ~20 min on 2 busy cores
    .venv/bin/python bench/augment_scarcity.py             # 3 seeds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "out" / "augment_scarcity.json"
FRACTIONS = (0.01, 0.05, 0.20)
SEEDS = (0, 1, 2)
# A lift counts as real when the mean over seeds exceeds this many standard errors.
SIGNIFICANCE_SE = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed (0) instead of three")
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--generator-s", type=float, default=120.0,
                        help="generator training seconds per configuration")
    parser.add_argument("--predictor-s", type=float, default=60.0,
                        help="time_limit of each predictor (real-only and augmented alike)")
    parser.add_argument("--ratio", type=float, default=1.0, help="synthetic rows per real row")
    parser.add_argument("--max-synthetic", type=int, default=1000,
                        help="at most this many synthetic rows per configuration (sampling "
                             "costs ~20 images/s on 2 busy cores)")
    parser.add_argument("--filter", action="store_true", help="apply the judge filter")
    parser.add_argument("--cas-s", type=float, default=20.0,
                        help="training seconds of each CAS classifier")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else list(SEEDS)
    return args


def settings_key(args: argparse.Namespace) -> dict:
    """The settings a stored result must match to be reused."""
    return {"generator_s": args.generator_s, "predictor_s": args.predictor_s,
            "ratio": args.ratio, "max_synthetic": args.max_synthetic, "filter": args.filter,
            "cas_s": args.cas_s}


def stratified_subset(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    rows, _ = train_test_split(np.arange(len(train)), train_size=fraction, random_state=seed,
                               stratify=train["label"].to_numpy())
    subset = train.iloc[np.sort(rows)].reset_index(drop=True)
    subset.attrs = dict(train.attrs)
    return subset


def images_of(table: pd.DataFrame) -> np.ndarray:
    return np.stack(table["image"].to_list())[..., None]  # (N, 28, 28, 1) uint8


def run_config(train: pd.DataFrame, test: pd.DataFrame, fraction: float, seed: int,
               args: argparse.Namespace) -> dict:
    """One (fraction, seed): generator, augmentation, two predictors, CAS."""
    from polymodal.api.generator import Generator
    from polymodal.api.predictor import Predictor
    from polymodal.data.synthetic import SYNTHETIC_COLUMN
    from polymodal.workflows.augment import augment_table
    from polymodal.workflows.judge import Judge

    subset = stratified_subset(train, fraction, seed)[["image", "label"]]
    result: dict = {"fraction": fraction, "seed": seed, "num_real": len(subset),
                    "settings": settings_key(args)}
    start = time.perf_counter()
    generator = Generator(image="image", condition=["label"], time_limit=args.generator_s,
                          seed=seed, verbosity=0).fit(subset)
    result["generator"] = {k: generator.train_result_[k]
                           for k in ("steps", "epochs", "images_per_s", "stop_reason")}
    result["generator_fit_s"] = round(time.perf_counter() - start, 1)

    num_synthetic = min(args.max_synthetic, round(args.ratio * len(subset)))
    augmented, summary = augment_table(subset, label="label", generator=generator,
                                       ratio=num_synthetic / len(subset), filter=args.filter,
                                       seed=seed, verbosity=0)
    result["num_synthetic"] = summary["num_synthetic"]
    result["sampling_s"] = summary["time_s"].get("sampling")
    if summary.get("filter"):
        result["filter_dropped"] = summary["filter"]["dropped"]

    for name, table in (("real_only", subset), ("augmented", augmented)):
        fit_start = time.perf_counter()
        predictor = Predictor("label", time_limit=args.predictor_s, seed=seed,
                              verbosity=0).fit(table)
        fit_s = time.perf_counter() - fit_start
        result[name] = {"accuracy": predictor.evaluate(test)["accuracy"],
                        "chosen": predictor.chosen_, "fit_s": round(fit_s, 1)}
    result["lift"] = result["augmented"]["accuracy"] - result["real_only"]["accuracy"]

    # CAS: trained on synthetic images only, tested on all real test images.
    synthetic = augmented[augmented[SYNTHETIC_COLUMN]]
    test_images, test_labels = images_of(test), test["label"].tolist()
    classes = sorted(subset["label"].unique().tolist())
    cas_judge = Judge.train(images_of(synthetic), synthetic["label"].tolist(), classes=classes,
                            time_limit_s=args.cas_s, seed=seed)
    real_judge = Judge.train(images_of(subset), subset["label"].tolist(), classes=classes,
                             time_limit_s=args.cas_s, seed=seed)
    result["cas"] = cas_judge.accuracy(test_images, test_labels)
    result["cas_real"] = real_judge.accuracy(test_images, test_labels)
    result["total_s"] = round(time.perf_counter() - start, 1)
    return result


def load_results(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"] if path.is_file() else []


def save_results(path: Path, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"results": results}, indent=2) + "\n")
    os.replace(tmp, path)


def report(results: list[dict], fractions: list[float]) -> str:
    """The per-run table, the per-fraction summary and the plain statement."""
    lines = ["fraction  seed   real  synth  real-only acc  augmented acc    lift     CAS  "
             "CAS(real)  gen steps"]
    for r in sorted(results, key=lambda r: (r["fraction"], r["seed"])):
        lines.append(f"{r['fraction']:>8.0%}  {r['seed']:>4}  {r['num_real']:>5}  "
                     f"{r['num_synthetic']:>5}  {r['real_only']['accuracy']:>13.4f}  "
                     f"{r['augmented']['accuracy']:>13.4f}  {r['lift']:>+6.4f}  "
                     f"{r['cas']:>6.4f}  {r['cas_real']:>9.4f}  {r['generator']['steps']:>9}")
    lines += ["", "fraction  runs  mean lift  std err  mean CAS  verdict"]
    verdicts = []
    for fraction in fractions:
        runs = [r for r in results if r["fraction"] == fraction]
        if not runs:
            continue
        lifts = np.array([r["lift"] for r in runs])
        mean = float(lifts.mean())
        se = float(lifts.std(ddof=1) / np.sqrt(len(lifts))) if len(lifts) > 1 else float("nan")
        if len(lifts) == 1:
            verdict = "helps (1 seed)" if mean > 0 else "does not help (1 seed)"
        elif mean > SIGNIFICANCE_SE * se:
            verdict = "helps"
        elif mean < -SIGNIFICANCE_SE * se:
            verdict = "hurts"
        else:
            verdict = "no clear effect"
        verdicts.append((fraction, verdict, mean))
        cas = np.mean([r["cas"] for r in runs])
        lines.append(f"{fraction:>8.0%}  {len(runs):>4}  {mean:>+9.4f}  {se:>7.4f}  {cas:>8.4f}  "
                     f"{verdict}")
    helps = [f"{f:.0%}" for f, v, _ in verdicts if v.startswith("helps")]
    other = [f"{f:.0%} ({v}, {m:+.4f})" for f, v, m in verdicts if not v.startswith("helps")]
    lines.append("")
    lines.append("Augmentation helps at: " + (", ".join(helps) or "none of the fractions") + ".")
    if other:
        lines.append("It does not help at: " + ", ".join(other) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Library notes (e.g. sklearn's "y_prob values do not sum to one" on float32) would bury
    # the progress lines; the results do not depend on them.
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch

    torch.set_num_threads(args.threads)
    from polymodal import datasets

    train, test = datasets.load("fashion-mnist", split=True)
    results = load_results(args.out)
    key = settings_key(args)
    for seed in args.seeds:  # seed-major: every fraction of seed 0 first, as --quick runs
        for fraction in args.fractions:
            done = [r for r in results if r["fraction"] == fraction and r["seed"] == seed
                    and r.get("settings") == key]
            if done:
                print(f"[{fraction:.0%} seed {seed}] already in {args.out}; skipped", flush=True)
                continue
            print(f"[{fraction:.0%} seed {seed}] running ...", flush=True)
            result = run_config(train, test, fraction, seed, args)
            results = [r for r in results if not (r["fraction"] == fraction and r["seed"] == seed)]
            results.append(result)
            save_results(args.out, results)
            print(f"[{fraction:.0%} seed {seed}] real-only {result['real_only']['accuracy']:.4f} "
                  f"augmented {result['augmented']['accuracy']:.4f} lift {result['lift']:+.4f} "
                  f"CAS {result['cas']:.4f} ({result['total_s']:.0f} s)", flush=True)
    chosen = [r for r in results if r["seed"] in args.seeds and r["fraction"] in args.fractions
              and r.get("settings") == key]
    print()
    print(f"Fashion-MNIST, generator {args.generator_s:g} s, predictors {args.predictor_s:g} s "
          f"each, synthetic = min({args.ratio:g} x real, {args.max_synthetic}); test accuracy on "
          "the 10,000 real test images")
    print(report(chosen, args.fractions))


if __name__ == "__main__":
    sys.exit(main())
