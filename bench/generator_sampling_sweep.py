"""Sampler and guidance settings on one trained generator: accuracy, FD, precision/recall, speed.

``bench/generator_fashion.py`` / ``bench/generator_digits.py`` save polymodal's trained
Generator next to its samples (``bench/out/<preset>/polymodal_worker_model``) and the
judge (``bench/out/<preset>/judge``). This script loads both and scores each setting on
the same trained weights with the same judge, the test split as the real set and
``--n-samples`` images (the comparison's own count), so a setting can be chosen by
measurement without training again.

``--train`` trains the model itself first (the comparison's budget, ``--budget-s``) and
keeps an early snapshot of the EMA weights at each ``--snapshots`` share of the run
besides the Generator's own (``training.guide_at``), so autoguidance by snapshots of
different ages is compared on one training run.

A setting is ``sampler:steps:guidance[:lo-hi][:guide][:cF]``: ``lo-hi`` the guidance
interval in t (default: the model's ``guidance_interval``); ``guide`` ``cfg``
(classifier-free guidance by the null condition, the default), ``early`` (autoguidance by
the Generator's own snapshot) or ``early@F`` (by the ``--train`` snapshot at share F of
the run); ``cF`` withholds the condition above t = F (``sampling.condition_from``;
default 1, conditioned throughout).

Usage::

    .venv/bin/python bench/generator_sampling_sweep.py                 # the default grid, Fashion
    .venv/bin/python bench/generator_sampling_sweep.py --preset digits --train \\
        --snapshots 0.1 0.25 0.5 --settings heun:8:3 heun:8:1 heun:8:2:0-1:early@0.1
    .venv/bin/python bench/generator_sampling_sweep.py --settings heun:8:1.8:0.4-1

Prints one row per setting; JSON in ``bench/out/<preset>_sampling_sweep.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generator_digits import DIGITS, svc_scores  # noqa: E402
from generator_fashion import FASHION, OUT_ROOT, load_split, train_judge  # noqa: E402

PRESETS = {"fashion": FASHION, "digits": DIGITS}
DEFAULT_SETTINGS = ("heun:4:3", "heun:4:2.5", "heun:4:2", "heun:6:2.5", "heun:6:3",
                    "heun:8:2.5", "euler:16:2.5", "euler:16:3")


def train_with_snapshots(preset, args, model_dir: Path) -> None:
    """Fit the Generator for the budget, keeping an EMA snapshot at each ``args.snapshots``
    share; save it to ``model_dir`` and the snapshots as ``guide@F.safetensors`` there."""
    from safetensors.torch import save_file

    import polymodal.api.generator as generator_module
    from polymodal.api.generator import Generator
    from polymodal.train.generator_fit import EarlySnapshot

    snapshots = [EarlySnapshot(f) for f in args.snapshots]
    original = generator_module.train_generator

    def with_snapshots(*a, callbacks=(), **k):  # the Generator's own snapshot, and these
        return original(*a, callbacks=[*callbacks, *snapshots], **k)

    generator_module.train_generator = with_snapshots
    try:
        train, _ = load_split(preset)
        generator = Generator(image="image", condition="label", time_limit=args.budget_s,
                              seed=args.seed, verbosity=0).fit(train)
    finally:
        generator_module.train_generator = original
    generator.save(model_dir)
    for snap in snapshots:
        if snap.weights is not None:
            save_file({k: v.contiguous() for k, v in snap.weights.items()},
                      str(model_dir / f"guide@{snap.fraction:g}.safetensors"))
    print(f"trained {generator.train_result_['steps']} steps; snapshots at steps "
          f"{[s.step for s in snapshots]} (shares {args.snapshots}); saved {model_dir}",
          flush=True)


def snapshot_network(generator, model_dir: Path, guide: str):
    """The ``--train`` snapshot that ``guide`` (``early@F``) names, as a network."""
    from safetensors.torch import load_file

    network = copy.deepcopy(generator.network_)
    fraction = float(guide.split("@", 1)[1])
    network.load_state_dict(load_file(str(model_dir / f"guide@{fraction:g}.safetensors")))
    return network.eval().requires_grad_(False)


class Recorded:
    """Hands ``generator.sample`` through, keeping what each call asked for and made."""

    def __init__(self, generator):
        self.generator, self.asked, self.samples = generator, [], []

    def __getattr__(self, name):
        return getattr(self.generator, name)

    def sample(self, n, *, conditions=None, **kwargs):
        out = self.generator.sample(n, conditions=conditions, **kwargs)
        self.asked += list(conditions["label"])
        self.samples.append(out)
        return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fashion")
    parser.add_argument("--model", help="default: bench/out/<preset>/polymodal_worker_model, "
                        "or .../sweep_model with --train")
    parser.add_argument("--judge", help="default: bench/out/<preset>/judge (trained if absent)")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                        help="sampler:steps:guidance[:lo-hi][:guide], e.g. heun:4:3")
    parser.add_argument("--train", action="store_true", help="train the model first")
    parser.add_argument("--budget-s", type=float, default=None)
    parser.add_argument("--snapshots", type=float, nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    out_dir = OUT_ROOT / preset.name
    args.budget_s = preset.budget_s if args.budget_s is None else args.budget_s
    n_samples = preset.n_samples if args.n_samples is None else args.n_samples
    model_dir = Path(args.model or out_dir / ("sweep_model" if args.train
                                              else "polymodal_worker_model"))

    from polymodal.api.generator import Generator
    from polymodal.workflows.generator_eval import evaluate_generator
    from polymodal.workflows.judge import Judge

    if args.train:
        train_with_snapshots(preset, args, model_dir)
    train, test = load_split(preset)
    judge_dir = Path(args.judge or out_dir / "judge")
    if judge_dir.is_dir():
        judge = Judge.load(judge_dir)
    else:
        args.judge_s = preset.judge_s
        judge = train_judge(preset, train, args)
        judge.save(judge_dir)
    generator = Generator.load(model_dir)
    own_guide = generator.guide_network_
    rows = []
    saved_interval = tuple(generator.guidance_interval)
    recipe = generator.recipe_
    for setting in args.settings:
        sampler, steps, guidance, *rest = setting.split(":")
        starts = [float(r[1:]) for r in rest if r.startswith("c") and r != "cfg"]
        rest = [r for r in rest if not (r.startswith("c") and r != "cfg")]
        generator.recipe_ = dataclasses.replace(recipe, sampling=dataclasses.replace(
            recipe.sampling, condition_from=starts[0] if starts else 1.0))
        interval = [r for r in rest if "-" in r]
        guide = next((r for r in rest if "-" not in r), "cfg")
        lo_hi = (tuple(float(v) for v in interval[0].split("-")) if interval
                 else saved_interval)
        generator.guidance_interval = lo_hi
        generator.sampler = sampler
        generator.guide = "unconditional" if guide == "cfg" else "early"
        generator.guide_network_ = own_guide if guide in ("cfg", "early") else \
            snapshot_network(generator, model_dir, guide)
        recorded = Recorded(generator)
        start = time.perf_counter()
        m = evaluate_generator(recorded, test, judge=judge, n_samples=n_samples,
                               num_steps=int(steps), guidance=float(guidance), seed=args.seed,
                               cas=False)
        row = {"setting": setting, "seed": args.seed, "guidance_interval": list(lo_hi),
               "guide": guide, "conditional_accuracy": m["conditional_accuracy"],
               "fd": m["fd"], "fd_floor": m["fd_floor"], "fd_ratio_to_floor": m["fd_ratio_to_floor"],
               "precision": m["precision"], "recall": m["recall"],
               "recall_se": m["recall_se"], "condition_from": starts[0] if starts else 1.0,
               "sampling_images_per_s": m["sampling_images_per_s"],
               "wall_s": time.perf_counter() - start}
        svc = ""
        if preset is DIGITS:
            row.update(svc_scores({"samples": np.concatenate(recorded.samples),
                                   "asked": recorded.asked}, train, test))
            svc = f" SVC {row['svc_conditional_accuracy']:.3f}"
        rows.append(row)
        print(f"{setting:<26} acc {row['conditional_accuracy']:.3f}{svc}  FD {row['fd']:7.2f}  "
              f"FD/floor {row['fd_ratio_to_floor']:5.2f}  "
              f"P {row['precision']:.3f} R {row['recall']:.3f} ±{row['recall_se']:.3f}  "
              f"{row['sampling_images_per_s']:.1f} images/s", flush=True)
    path = OUT_ROOT / f"{preset.name}_sampling_sweep.json"
    path.write_text(json.dumps({"model": str(model_dir), "judge": str(judge_dir),
                                "n_samples": n_samples, "rows": rows}, indent=2))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
