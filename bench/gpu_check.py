"""GPU check: the Fashion-MNIST predictor and generator benchmarks on a CUDA device, in one command.

On a machine with a CUDA GPU this runs, one after the other, each in its own process:

1. ``bench/predictor_fashion.py --seeds 1 --mode api --time-limit BUDGET``: polymodal's
   default ``fit`` (which trains on the GPU: ``device="auto"``) against the seed CNN, test
   accuracy and wall time side by side;
2. ``bench/generator_fashion.py --budget-s BUDGET``: polymodal's Generator against the
   diffusers UNet2DModel peers, the 15-minute benchmark scaled to ``BUDGET`` seconds per
   contender: conditional accuracy, FD, precision/recall, training and sampling images/s.

``BUDGET`` is 300 s by default (``--budget-s``). Both print their usual tables; this
script adds the device, the versions and each part's exit status and wall time, and
writes them to ``bench/out/gpu_check.json``. Without a CUDA device it says so in one line
and exits 0, so it can stand in any prepared run.

Usage::

    .venv/bin/python bench/gpu_check.py                # ~2 x 5 minutes plus set-up
    .venv/bin/python bench/gpu_check.py --budget-s 60  # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "gpu_check.json"


def parts(budget_s: float) -> dict[str, list[str]]:
    """Each part's command line (the interpreter running this script runs them too)."""
    return {
        "predictor_fashion": [sys.executable, str(HERE / "predictor_fashion.py"), "--seeds", "1",
                              "--mode", "api", "--time-limit", f"{budget_s:g}"],
        "generator_fashion": [sys.executable, str(HERE / "generator_fashion.py"), "--budget-s",
                              f"{budget_s:g}"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="seconds per predictor fit and per generator contender")
    parser.add_argument("--only", choices=("predictor_fashion", "generator_fashion"),
                        help="run one part only")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to run")
        return 0
    device = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
              "bf16": torch.cuda.is_bf16_supported(), "torch": torch.__version__,
              "cuda": torch.version.cuda}
    print(f"gpu_check: {device['name']} x{device['count']} (bf16 {device['bf16']}), torch "
          f"{device['torch']}, CUDA {device['cuda']}; {args.budget_s:g} s per fit", flush=True)
    report = {"device": device, "budget_s": args.budget_s, "parts": {}}
    for name, command in parts(args.budget_s).items():
        if args.only and name != args.only:
            continue
        print(f"\n== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(command, cwd=HERE.parent).returncode
        report["parts"][name] = {"command": command[1:], "exit": code,
                                 "wall_s": round(time.perf_counter() - start, 1)}
        print(f"== {name}: exit {code} after {report['parts'][name]['wall_s']} s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {OUT}")
    return max((p["exit"] for p in report["parts"].values()), default=0)


if __name__ == "__main__":
    sys.exit(main())
