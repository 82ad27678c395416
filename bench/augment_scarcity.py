"""Benchmark: when labels are scarce, what lifts a predictor? Rows without a label, generated rows.

For each dataset and fraction of its training labels (a stratified subset per seed; the
other training rows stay in the table with their label emptied) it fits ``Predictor``s
with the same time limit (``--predictor-s``, the CPU budget of each arm), side by side
in one worker, and scores each on the dataset's whole real test split (accuracy):

- ``labelled_only``: ``unlabelled="ignore"`` (the rows without a label are left out);
- ``unlabelled``: ``unlabelled="auto"``, the default (the network self-trains on them,
  kept only where validation on labelled rows improves: :mod:`polymodal.api.self_training`);
- ``generated``: labelled rows plus images a class-conditional ``Generator`` made,
  trained on the labelled subset for ``--generator-s`` (outside the predictor's limit),
  optionally judge-filtered (``--filter``); its CAS (Ravuri & Vinyals 2019) next to it;
- ``both``: the generated rows and the rows without a label.

Datasets: ``fashion-mnist`` (60,000 training rows, 10,000 test) at ``--fractions``, and
``shapes`` (``--shapes-rows`` rendered rows, 80/20 split; its captions embedded with hashed
n-grams so the budget goes to learning) at ``--shapes-fractions``.

Results go to ``bench/out/augment_scarcity.json`` after every configuration; a rerun skips
configurations already there with the same settings. ``--jobs 2`` runs two configurations
at once (one torch thread each). At the end it prints, per dataset and fraction, each
arm's mean accuracy ± standard error over seeds and its paired lift over
``labelled_only`` with a verdict (beyond two standard errors or not).

Usage::

    .venv/bin/python bench/augment_scarcity.py --quick     # 1 seed
    .venv/bin/python bench/augment_scarcity.py --jobs 2    # 3 seeds; see bench/RESULTS.md
    .venv/bin/python bench/augment_scarcity.py --arms labelled_only generated --filter
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "out" / "augment_scarcity.json"
FRACTIONS = (0.01, 0.05, 0.20)
SHAPES_FRACTIONS = (0.05,)
SEEDS = (0, 1, 2)
ARMS = ("labelled_only", "unlabelled", "generated", "both")
# A lift counts as real when the mean over seeds exceeds this many standard errors.
SIGNIFICANCE_SE = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed (0) instead of three")
    parser.add_argument("--fractions", type=float, nargs="*", default=list(FRACTIONS),
                        help="Fashion-MNIST label fractions")
    parser.add_argument("--shapes-fractions", type=float, nargs="*",
                        default=list(SHAPES_FRACTIONS))
    parser.add_argument("--shapes-rows", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=["labelled_only", "unlabelled"])
    parser.add_argument("--generator-s", type=float, default=120.0,
                        help="generator training seconds per configuration")
    parser.add_argument("--predictor-s", type=float, default=120.0,
                        help="time_limit of each predictor: the CPU budget of every arm")
    parser.add_argument("--ratio", type=float, default=1.0, help="synthetic rows per real row")
    parser.add_argument("--max-synthetic", type=int, default=1000,
                        help="at most this many synthetic rows per configuration")
    parser.add_argument("--filter", action="store_true", help="apply the judge filter")
    parser.add_argument("--cas-s", type=float, default=20.0,
                        help="training seconds of each CAS classifier")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--jobs", type=int, default=1, help="configurations run at once")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else list(SEEDS)
    return args


def settings_key(args: argparse.Namespace) -> dict:
    """The settings a stored result must match to be reused."""
    key = {"predictor_s": args.predictor_s, "arms": sorted(args.arms)}
    if {"generated", "both"} & set(args.arms):
        key.update({"generator_s": args.generator_s, "ratio": args.ratio,
                    "max_synthetic": args.max_synthetic, "filter": args.filter,
                    "cas_s": args.cas_s})
    return key


def load_dataset(name: str, args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    from polymodal import datasets

    if name == "shapes":
        return datasets.load("shapes", split=True, n=args.shapes_rows, seed=0)
    train, test = datasets.load("fashion-mnist", split=True)
    return train[["image", "label"]], test[["image", "label"]]


def stratified_subset(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    rows, _ = train_test_split(np.arange(len(train)), train_size=fraction, random_state=seed,
                               stratify=train["label"].to_numpy())
    subset = train.iloc[np.sort(rows)].reset_index(drop=True)
    subset.attrs = dict(train.attrs)
    return subset


def images_of(table: pd.DataFrame) -> np.ndarray:
    images = np.stack(table["image"].to_list())
    return images if images.ndim == 4 else images[..., None]  # (N, H, W, C) uint8


def scarce_table(train: pd.DataFrame, subset_rows: np.ndarray) -> pd.DataFrame:
    """The training table with every label outside ``subset_rows`` emptied."""
    table = train.copy()
    table["label"] = table["label"].astype(object)
    unlabelled = np.ones(len(table), dtype=bool)
    unlabelled[subset_rows] = False
    table.loc[unlabelled, "label"] = None
    table.attrs = dict(train.attrs)
    return table


def fit_arm(table: pd.DataFrame, test: pd.DataFrame, *, unlabelled: str, seed: int,
            args: argparse.Namespace, text_encoder: str) -> dict:
    from polymodal.api.predictor import Predictor

    start = time.perf_counter()
    predictor = Predictor("label", time_limit=args.predictor_s, seed=seed, verbosity=0,
                          unlabelled=unlabelled, text_encoder=text_encoder).fit(table)
    fit_s = time.perf_counter() - start
    summary = predictor.unlabelled_
    return {"accuracy": predictor.evaluate(test)["accuracy"], "chosen": predictor.chosen_,
            "fit_s": round(fit_s, 1), "self_training_used": summary["used"],
            "num_pseudo_labelled": summary.get("num_pseudo_labelled", 0),
            "val_metric": predictor.val_metric_}


def generated_rows(subset: pd.DataFrame, test: pd.DataFrame, seed: int,
                   args: argparse.Namespace, result: dict) -> pd.DataFrame:
    """The labelled subset plus generated rows (marked), and the generator's CAS in
    ``result``."""
    from polymodal.api.generator import Generator
    from polymodal.data.synthetic import SYNTHETIC_COLUMN
    from polymodal.workflows.augment import augment_table
    from polymodal.workflows.judge import Judge

    start = time.perf_counter()
    generator = Generator(image="image", condition=["label"], time_limit=args.generator_s,
                          seed=seed, verbosity=0).fit(subset[["image", "label"]])
    result["generator"] = {k: generator.train_result_[k]
                           for k in ("steps", "epochs", "images_per_s", "stop_reason")}
    num_synthetic = min(args.max_synthetic, round(args.ratio * len(subset)))
    augmented, summary = augment_table(subset, label="label", generator=generator,
                                       ratio=num_synthetic / len(subset), filter=args.filter,
                                       seed=seed, verbosity=0)
    result["num_synthetic"] = summary["num_synthetic"]
    result["generation_s"] = round(time.perf_counter() - start, 1)
    synthetic = augmented[augmented[SYNTHETIC_COLUMN]]
    classes = sorted(subset["label"].unique().tolist())
    cas_judge = Judge.train(images_of(synthetic), synthetic["label"].tolist(), classes=classes,
                            time_limit_s=args.cas_s, seed=seed)
    result["cas"] = cas_judge.accuracy(images_of(test), test["label"].tolist())
    return augmented


def run_config(dataset: str, fraction: float, seed: int, args: argparse.Namespace) -> dict:
    """One (dataset, fraction, seed): every arm with the same time limit."""
    import torch
    from sklearn.model_selection import train_test_split

    from polymodal.api.predictor import Predictor

    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(args.threads)
    train, test = load_dataset(dataset, args)
    rows, _ = train_test_split(np.arange(len(train)), train_size=fraction, random_state=seed,
                               stratify=train["label"].to_numpy())
    rows = np.sort(rows)
    table = scarce_table(train, rows)
    text_encoder = "hashed" if dataset == "shapes" else "auto"
    result: dict = {"dataset": dataset, "fraction": fraction, "seed": seed,
                    "num_labelled": len(rows), "num_unlabelled": len(train) - len(rows),
                    "settings": settings_key(args)}
    # A throwaway fit first: the worker's one-time costs (imports, first optimiser) would
    # otherwise count against the first arm's time limit alone.
    warm = train.iloc[rows[:200]].reset_index(drop=True)
    Predictor("label", time_limit=10, seed=seed, verbosity=0, text_encoder=text_encoder,
              recipe={"training.max_epochs": 1}).fit(warm)
    start = time.perf_counter()
    # The arms alternate their order by seed, so neither always meets the busier minutes.
    plain = [("labelled_only", "ignore"), ("unlabelled", "auto")]
    for arm, unlabelled in plain if seed % 2 == 0 else plain[::-1]:
        if arm in args.arms:
            result[arm] = fit_arm(table, test, unlabelled=unlabelled, seed=seed, args=args,
                                  text_encoder=text_encoder)
    if {"generated", "both"} & set(args.arms):
        subset = table.iloc[rows].reset_index(drop=True)
        subset["label"] = train["label"].iloc[rows].to_numpy()
        augmented = generated_rows(subset, test, seed, args, result)
        if "generated" in args.arms:
            result["generated"] = fit_arm(augmented, test, unlabelled="ignore", seed=seed,
                                          args=args, text_encoder=text_encoder)
        if "both" in args.arms:
            rest = table.drop(index=rows).assign(is_synthetic=False)
            both = pd.concat([augmented, rest], ignore_index=True)
            result["both"] = fit_arm(both, test, unlabelled="auto", seed=seed, args=args,
                                     text_encoder=text_encoder)
    result["total_s"] = round(time.perf_counter() - start, 1)
    return result


def load_results(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"] if path.is_file() else []


def save_results(path: Path, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"results": results}, indent=2) + "\n")
    os.replace(tmp, path)


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
    return float(a.mean()), se


def verdict(mean: float, se: float, runs: int) -> str:
    if runs == 1:
        return "helps (1 seed)" if mean > 0 else "does not help (1 seed)"
    if mean > SIGNIFICANCE_SE * se:
        return "helps"
    if mean < -SIGNIFICANCE_SE * se:
        return "hurts"
    return "no clear effect"


def report(results: list[dict], arms: list[str]) -> str:
    """Per run, then per (dataset, fraction): each arm's mean ± SE and its paired lift."""
    lines = ["dataset        fraction  seed  labelled  " + "  ".join(f"{a:>13}" for a in arms)
             + "  pseudo rows"]
    order = sorted(results, key=lambda r: (r["dataset"], r["fraction"], r["seed"]))
    for r in order:
        accs = "  ".join(f"{r[a]['accuracy']:>13.4f}" if a in r else f"{'-':>13}" for a in arms)
        pseudo = r.get("unlabelled", {}).get("num_pseudo_labelled", "-")
        lines.append(f"{r['dataset']:<13}  {r['fraction']:>8.0%}  {r['seed']:>4}  "
                     f"{r['num_labelled']:>8}  {accs}  {pseudo:>11}")
    lines += ["", "dataset        fraction  runs  arm              accuracy (mean ± SE)  "
              "lift vs labelled_only (mean ± SE)  verdict   fit s (mean)"]
    for dataset, fraction in sorted({(r["dataset"], r["fraction"]) for r in results}):
        runs = [r for r in order if r["dataset"] == dataset and r["fraction"] == fraction]
        for arm in arms:
            have = [r for r in runs if arm in r]
            if not have:
                continue
            mean, se = mean_se([r[arm]["accuracy"] for r in have])
            fit_s = np.mean([r[arm]["fit_s"] for r in have])
            lift_text, word = "", ""
            if arm != "labelled_only" and all("labelled_only" in r for r in have):
                lift, lift_se = mean_se([r[arm]["accuracy"] - r["labelled_only"]["accuracy"]
                                         for r in have])
                lift_text = f"{100 * lift:+.2f} ± {100 * lift_se:.2f} points"
                word = verdict(lift, lift_se, len(have))
            lines.append(f"{dataset:<13}  {fraction:>8.0%}  {len(have):>4}  {arm:<15}  "
                         f"{mean:.4f} ± {se:.4f}       {lift_text:<33}  {word:<16}  "
                         f"{fit_s:.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    results = load_results(args.out)
    key = settings_key(args)
    configs = [(d, f, s) for s in args.seeds  # seed-major: every configuration of seed 0 first
               for d, fractions in (("fashion-mnist", args.fractions),
                                    ("shapes", args.shapes_fractions)) for f in fractions]

    def done(config) -> bool:
        d, f, s = config
        return any(r["dataset"] == d and r["fraction"] == f and r["seed"] == s
                   and r.get("settings") == key for r in results)

    todo = [c for c in configs if not done(c)]
    for d, f, s in configs:
        if (d, f, s) not in todo:
            print(f"[{d} {f:.0%} seed {s}] already in {args.out}; skipped", flush=True)
    context = multiprocessing.get_context("spawn")  # fresh torch state per worker
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_config, d, f, s, args): (d, f, s) for d, f, s in todo}
        for future in futures:
            d, f, s = futures[future]
            result = future.result()
            results = [r for r in results if not (r["dataset"] == d and r["fraction"] == f
                                                  and r["seed"] == s)] + [result]
            save_results(args.out, results)
            accs = ", ".join(f"{a} {result[a]['accuracy']:.4f}" for a in args.arms if a in result)
            print(f"[{d} {f:.0%} seed {s}] {accs} ({result['total_s']:.0f} s)", flush=True)
    chosen = [r for r in results if r.get("settings") == key and (r["dataset"], r["fraction"],
                                                                 r["seed"]) in configs]
    print()
    print(f"predictors {args.predictor_s:g} s each (the CPU budget of every arm), "
          f"{args.threads} torch thread(s), {args.jobs} job(s); test accuracy on each "
          "dataset's real test split")
    print(report(chosen, list(args.arms)))


if __name__ == "__main__":
    sys.exit(main())
