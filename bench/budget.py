"""Benchmark: do ``fit``, ``generate fit`` and ``augment`` return within their time limit?

Each job runs the INSTALLED ``polymodal`` command (the console script next to this
Python) in a subprocess, as a user would, and is timed from before the process starts to
after it exits: the interpreter's start-up, the imports, reading the table, training,
the final sample grid and saving the folder all count. The tables are written first and
not timed. Per job it prints the limit, the wall seconds and ratio = wall / limit, and
passes when wall <= 1.1 x limit + 5 s (the promise ``--time-limit`` makes).

Jobs: a small tabular table (1,000 synthetic rows, numbers and a category), a
1,000,000-row numeric table (Parquet), images (the built-in ``digits`` export), text
(1,000 synthetic sentences), ``augment`` and ``generate fit`` on ``digits``.

    .venv/bin/python bench/budget.py [--jobs small million images text augment generate]
        [--scale 1.0]   # multiplies every limit
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT_DIR = Path(__file__).resolve().parent / "out" / "budget"
CLI = Path(sys.executable).with_name("polymodal")
SLACK_FACTOR, SLACK_S = 1.1, 5.0
MILLION = 1_000_000


def write_tables(folder: Path) -> dict[str, Path]:
    """The jobs' tables (not timed): synthetic CSV/Parquet and the digits export."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}

    x = rng.normal(size=(1_000, 6))
    small = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    small["colour"] = rng.choice(["red", "green", "blue"], size=len(small))
    small["label"] = np.where(x[:, 0] + (small["colour"] == "red") > 0.5, "yes", "no")
    paths["small"] = folder / "small.csv"
    small.to_csv(paths["small"], index=False)

    x = rng.normal(size=(MILLION, 10)).astype(np.float32)
    million = pd.DataFrame(x, columns=[f"x{i}" for i in range(10)])
    noise = rng.normal(scale=0.5, size=MILLION)
    million["label"] = np.where(x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - x[:, 3] + noise > 0,
                                "yes", "no")
    paths["million"] = folder / "million.parquet"
    million.to_parquet(paths["million"], index=False)

    words = {"good": ["great", "lovely", "excellent", "fine"],
             "bad": ["awful", "poor", "broken", "terrible"]}
    fillers = ["the", "product", "arrived", "today", "and", "it", "works", "looks", "very"]
    labels = rng.choice(["good", "bad"], size=1_000)
    texts = [" ".join([*rng.choice(fillers, size=6), rng.choice(words[lab]),
                       *rng.choice(fillers, size=3)]) for lab in labels]
    paths["text"] = folder / "text.csv"
    pd.DataFrame({"review": texts, "label": labels}).to_csv(paths["text"], index=False)

    digits = folder / "digits"
    if not (digits / "train.csv").is_file():
        subprocess.run([str(CLI), "datasets", "export", "digits", str(digits), "--overwrite"],
                       check=True, capture_output=True)
    paths["digits"] = digits / "train.csv"
    return paths


def jobs(tables: dict[str, Path], out: Path, scale: float) -> dict[str, tuple[float, list]]:
    """{name: (limit, argv after ``polymodal``)}."""
    def limit(seconds: float) -> float:
        return round(seconds * scale, 1)

    return {
        "small": (limit(30), ["fit", tables["small"], "--label", "label"]),
        "million": (limit(60), ["fit", tables["million"], "--label", "label"]),
        "images": (limit(45), ["fit", tables["digits"], "--label", "label"]),
        "text": (limit(30), ["fit", tables["text"], "--label", "label"]),
        "augment": (limit(45), ["augment", tables["digits"], "--label", "label",
                                "--ratio", "0.2"]),
        "generate": (limit(30), ["generate", "fit", tables["digits"], "--image", "image",
                                 "--condition", "label"]),
    }


def run_job(name: str, limit_s: float, argv: list, out: Path) -> dict:
    target = out / name
    shutil.rmtree(target, ignore_errors=True)
    command = [str(CLI), *map(str, argv), "--out", str(target), "--time-limit", str(limit_s)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    bound = SLACK_FACTOR * limit_s + SLACK_S
    # cpu_s: the command's CPU seconds (all its threads); far below wall x threads on a
    # machine whose other work leaves the command little of its cores.
    return {"job": name, "limit_s": limit_s, "wall_s": round(wall, 1),
            "ratio": round(wall / limit_s, 2), "bound_s": round(bound, 1),
            "cpu_s": round(cpu, 1),
            "exit": done.returncode, "pass": done.returncode == 0 and wall <= bound}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", nargs="*",
                        default=["small", "million", "images", "text", "augment", "generate"])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    if not CLI.is_file():
        sys.exit(f"{CLI} is missing: run `make install` first")
    tables = write_tables(OUT_DIR / "tables")
    table = jobs(tables, OUT_DIR, args.scale)
    unknown = [j for j in args.jobs if j not in table]
    if unknown:
        sys.exit(f"--jobs {unknown} unknown; the jobs are {list(table)}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    for name in args.jobs:
        limit_s, argv = table[name]
        rows.append(run_job(name, limit_s, argv, OUT_DIR / "runs"))
        print(f"  {name}: {rows[-1]['wall_s']} s (limit {limit_s} s)", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False))
    print(f"{int(frame['pass'].sum())} of {len(frame)} within 1.1 x limit + 5 s")


if __name__ == "__main__":
    main()
