"""Benchmark: ``torch.compile`` (``recipe training.compile``) against eager PyTorch on this CPU.

Side by side in one run, each fit in a fresh subprocess with an empty inductor cache (so
every compiled run pays its compilation, as a user's first fit does):

- predictor: ``Predictor`` on the 8x8 ``digits`` (1,437 training rows), the fusion network
  for ``--predictor-epochs`` epochs (the linear model as the only classic candidate);
- generator: ``Generator(condition="label")`` on ``digits`` for ``--generator-steps`` steps.

Printed per part and mode: the fit's wall time, the network's training throughput
(images/s, from the training log, compilation included in the first steps), the test
accuracy (predictor) and, per part, the ratios compiled / eager. Medians of ``--repeats``.

Usage::

    .venv/bin/python bench/compile_probe.py                 # ~5 minutes on 2 cores
    .venv/bin/python bench/compile_probe.py --repeats 1     # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child(part: str, compiled: bool, epochs: int, steps: int) -> dict:
    """One fit in this process; its figures as a dict."""
    from polymodal import Generator, Predictor, datasets

    train, test = datasets.load("digits", split=True, seed=0)
    start = time.perf_counter()
    if part == "predictor":
        model = Predictor(label="label", verbosity=0, seed=0, recipe={
            "candidates.classic": ["linear"], "training.max_epochs": epochs,
            "training.early_stopping_patience": epochs, "training.compile": compiled})
        model.fit(train)
        wall = time.perf_counter() - start
        log = [r for r in model.training_history_ if r.get("event") == "end"] \
            if hasattr(model, "training_history_") else []
        accuracy = float((model.predict(test) == test["label"].to_numpy()).mean())
        return {"wall_s": wall, "accuracy": accuracy,
                "neural_fit_s": float(model.leaderboard().set_index("model").loc["neural", "fit_time_s"]),
                "end": log[-1] if log else None}
    model = Generator(condition="label", verbosity=0, seed=0, text_encoder="hashed",
                      recipe={"training.max_steps": steps, "training.compile": compiled})
    model.fit(train)
    return {"wall_s": time.perf_counter() - start,
            "images_per_s": float(model.train_result_["images_per_s"]),
            "steps": int(model.train_result_["steps"])}


def run(part: str, compiled: bool, args) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        done = subprocess.run([sys.executable, __file__, "--child", part, "--compiled",
                               str(int(compiled)), "--predictor-epochs", str(args.predictor_epochs),
                               "--generator-steps", str(args.generator_steps)],
                              capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--predictor-epochs", type=int, default=20)
    parser.add_argument("--generator-steps", type=int, default=600)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--compiled", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, bool(args.compiled), args.predictor_epochs,
                               args.generator_steps)))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPUs {os.cpu_count()}")
    results: dict = {}
    for part in ("predictor", "generator"):
        for repeat in range(args.repeats):
            # Alternate the order so neither mode always runs second.
            for compiled in ((False, True) if repeat % 2 == 0 else (True, False)):
                r = run(part, compiled, args)
                results.setdefault(part, {}).setdefault(compiled, []).append(r)
                print(f"  {part:9s} {'compiled' if compiled else 'eager':8s} {json.dumps(r)}",
                      flush=True)
    print("\npart       figure                 eager   compiled   ratio")
    for part, modes in results.items():
        keys = ("wall_s", "neural_fit_s", "accuracy") if part == "predictor" else \
            ("wall_s", "images_per_s")
        for key in keys:
            eager = statistics.median(r[key] for r in modes[False])
            comp = statistics.median(r[key] for r in modes[True])
            print(f"{part:10s} {key:20s} {eager:8.3f} {comp:10.3f} {comp / eager:7.2f}")


if __name__ == "__main__":
    main()
