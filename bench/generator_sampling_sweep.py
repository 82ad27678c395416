"""Sampler settings on one trained generator: conditional accuracy, FD and speed per setting.

``bench/generator_fashion.py`` saves polymodal's trained Generator next to its samples
(``bench/out/generator_fashion/polymodal_worker_model``) and its judge
(``bench/out/generator_fashion/judge``). This script loads both and scores each sampler
setting (sampler, steps, guidance) on the same trained weights with the same judge, the
test split as the real set and ``--n-samples`` images (the comparison's own count), so a
setting can be chosen by measurement without training again. Guidance is applied for
t in the model's ``guidance_interval`` unless a setting names another.

Usage::

    .venv/bin/python bench/generator_sampling_sweep.py                 # the default grid
    .venv/bin/python bench/generator_sampling_sweep.py --settings heun:4:3 euler:16:2
    .venv/bin/python bench/generator_sampling_sweep.py --settings heun:8:1.8:0.4-1

A fourth field sets the guidance interval (lo-hi, in t) for that setting instead of the
model's own (``Generator.guidance_interval``).

Prints one row per setting; JSON in ``bench/out/generator_sampling_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generator_fashion import FASHION, OUT_ROOT, load_split  # noqa: E402

DEFAULT_SETTINGS = ("heun:4:3", "heun:4:2.5", "heun:4:2", "heun:6:2.5", "heun:6:3",
                    "heun:8:2.5", "euler:16:2.5", "euler:16:3")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(OUT_ROOT / FASHION.name / "polymodal_worker_model"))
    parser.add_argument("--judge", default=str(OUT_ROOT / FASHION.name / "judge"))
    parser.add_argument("--n-samples", type=int, default=FASHION.n_samples)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                        help="sampler:steps:guidance, e.g. heun:4:3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from polymodal.api.generator import Generator
    from polymodal.workflows.generator_eval import evaluate_generator
    from polymodal.workflows.judge import Judge

    generator = Generator.load(args.model)
    judge = Judge.load(args.judge)
    _, test = load_split(FASHION)
    rows = []
    saved_interval = tuple(generator.guidance_interval)
    for setting in args.settings:
        sampler, steps, guidance, *interval = setting.split(":")
        lo_hi = (tuple(float(v) for v in interval[0].split("-")) if interval
                 else saved_interval)
        generator.guidance_interval = lo_hi
        generator.sampler = sampler
        start = time.perf_counter()
        m = evaluate_generator(generator, test, judge=judge, n_samples=args.n_samples,
                               num_steps=int(steps), guidance=float(guidance), seed=args.seed,
                               cas=False)
        row = {"setting": setting, "seed": args.seed, "guidance_interval": list(lo_hi),
               "conditional_accuracy": m["conditional_accuracy"],
               "fd": m["fd"], "fd_floor": m["fd_floor"], "fd_ratio_to_floor": m["fd_ratio_to_floor"],
               "precision": m["precision"], "recall": m["recall"],
               "sampling_images_per_s": m["sampling_images_per_s"],
               "wall_s": time.perf_counter() - start}
        rows.append(row)
        print(f"{setting:<18} seed {args.seed} acc {row['conditional_accuracy']:.3f}  FD {row['fd']:7.2f}  "
              f"floor {row['fd_floor']:.2f}  FD/floor {row['fd_ratio_to_floor']:5.2f}  "
              f"P {row['precision']:.3f} R {row['recall']:.3f}  "
              f"{row['sampling_images_per_s']:.1f} images/s", flush=True)
    path = OUT_ROOT / "generator_sampling_sweep.json"
    path.write_text(json.dumps({"model": args.model, "judge": args.judge,
                                "n_samples": args.n_samples, "rows": rows}, indent=2))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
