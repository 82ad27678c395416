"""Benchmark: polymodal's table reader against pandas and pyarrow, on a CSV and on shards.

1. Builds once, under ``bench/out/read_tables/``, a ``--rows``-row table (default 1M,
   about 60 MB as CSV): an integer id, two float columns, two categorical columns and a
   short text column, with a few missing cells. It is written as ``table.csv`` and as a
   Parquet shard folder ``shards/`` (``part-0000.parquet`` ..., ``--shards`` of them).
2. Times, side by side in one run, each reader ``--repeats`` times, the readers taking
   turns (median reported):

   - CSV: ``polymodal.read_table("table.csv")`` vs ``pandas.read_csv(path, engine="pyarrow")``;
   - shards: ``polymodal.read_table("shards/")`` vs
     ``pyarrow.dataset.dataset("shards/").to_table().to_pandas()``.

   Each timing runs in a fresh subprocess, which also reports its peak RSS
   (``ru_maxrss``), so one reader's memory never counts against another's; the baseline
   RSS of a subprocess that only imports the libraries is reported beside them. This
   process imports nothing but the standard library and builds the data in a subprocess
   too: on Linux a child's ``ru_maxrss`` starts from its parent's size at ``fork``.
3. Prints time and peak-memory ratios (polymodal / peer; the targets are time <= 1.0 and
   memory <= 1.2) and writes them to ``bench/out/read_tables.json``.

Usage::

    .venv/bin/python bench/read_tables.py                       # about a minute on 2 cores
    .venv/bin/python bench/read_tables.py --rows 100000 --repeats 1   # quick look

This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

# Each reader as the code a fresh subprocess runs on PATH; it prints "seconds peak_kib".
_PRELUDE = """
import resource, sys, time
import pandas as pd, pyarrow as pa, pyarrow.dataset as ds
import polymodal.data.readers
path = sys.argv[1]
start = time.perf_counter()
"""
_EPILOGUE = """
seconds = time.perf_counter() - start
assert len(frame) > 0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(seconds, usage.ru_maxrss)
"""
READERS = {
    "imports only": "frame = [0]",
    "polymodal": "frame = polymodal.data.readers.read_table(path)",
    "pandas.read_csv(engine='pyarrow')": "frame = pd.read_csv(path, engine='pyarrow')",
    "pyarrow.dataset": "frame = ds.dataset(path, format='parquet').to_table().to_pandas()",
}


def build(folder: Path, num_rows: int, num_shards: int) -> tuple[Path, Path]:
    """The CSV and the shard folder (built once per size)."""
    import numpy as np
    import pandas as pd

    csv_path, shard_dir = folder / "table.csv", folder / "shards"
    if csv_path.exists() and shard_dir.exists():
        return csv_path, shard_dir
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = np.array(["red", "green", "blue", "small", "large", "soft", "new", "old", "box",
                      "lamp", "chair", "cup", "pen", "bag", "shoe", "hat"])
    text = [" ".join(row) for row in words[rng.integers(0, len(words), size=(num_rows, 4))]]
    frame = pd.DataFrame({
        "id": np.arange(num_rows),
        "price": np.round(rng.gamma(2.0, 20.0, num_rows), 2),
        "weight": np.where(rng.random(num_rows) < 0.02, np.nan, rng.normal(5, 2, num_rows)),
        "color": rng.choice(["red", "green", "blue", "black", "white"], num_rows),
        "size": rng.choice(["S", "M", "L", "XL"], num_rows),
        "title": text,
    })
    frame.to_csv(csv_path, index=False)
    shard_dir.mkdir()
    for i, part in enumerate(np.array_split(np.arange(num_rows), num_shards)):
        frame.iloc[part].to_parquet(shard_dir / f"part-{i:04d}.parquet", index=False)
    return csv_path, shard_dir


def measure(code: str, path: Path) -> tuple[float, float]:
    """``(seconds, peak RSS in MiB)`` of one read in a fresh subprocess."""
    script = _PRELUDE + code + _EPILOGUE
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=True,
                          capture_output=True, text=True)
    seconds, peak_kib = done.stdout.split()
    return float(seconds), float(peak_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    folder = OUT / f"read_tables_{args.rows}"
    subprocess.run([sys.executable, __file__, "--build", str(folder), str(args.rows),
                    str(args.shards)], check=True)
    csv_path, shard_dir = folder / "table.csv", folder / "shards"
    size_mb = csv_path.stat().st_size / 1e6
    print(f"{args.rows:,} rows: CSV {size_mb:.1f} MB; {args.shards} Parquet shards")
    cases = [("CSV", csv_path, "pandas.read_csv(engine='pyarrow')"),
             ("shards", shard_dir, "pyarrow.dataset")]
    results = {}
    base_seconds, base_mib = measure(READERS["imports only"], csv_path)
    print(f"baseline (imports only): peak RSS {base_mib:.0f} MiB")
    for case, path, peer in cases:
        runs: dict[str, list] = {"polymodal": [], peer: []}
        for _ in range(args.repeats):  # interleaved, so a change in load hits both alike
            for reader in runs:
                runs[reader].append(measure(READERS[reader], path))
        row = {reader: {"seconds": statistics.median(r[0] for r in found),
                        "peak_mib": statistics.median(r[1] for r in found)}
               for reader, found in runs.items()}
        ours, theirs = row["polymodal"], row[peer]
        row["time_ratio"] = ours["seconds"] / theirs["seconds"]
        row["memory_ratio"] = ours["peak_mib"] / theirs["peak_mib"]
        results[case] = row
        print(f"{case}: polymodal {ours['seconds']:.2f} s, {ours['peak_mib']:.0f} MiB | "
              f"{peer} {theirs['seconds']:.2f} s, {theirs['peak_mib']:.0f} MiB | "
              f"time ratio {row['time_ratio']:.2f} (target <= 1.0), "
              f"memory ratio {row['memory_ratio']:.2f} (target <= 1.2)")
    OUT.mkdir(exist_ok=True)
    (OUT / "read_tables.json").write_text(json.dumps(
        {"rows": args.rows, "csv_mb": size_mb, "shards": args.shards, "repeats": args.repeats,
         "baseline_peak_mib": base_mib, "results": results}, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build"]:
        build(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
