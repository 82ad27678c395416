"""Probe: what the cleaning report's table-wide checks cost on a million rows.

Side by side in one run, on a synthetic 1,000,000-row table (6 float columns, 2 string
categories, a binary label; every 50th row duplicated):

1. duplicate rows: pandas' ``DataFrame.duplicated`` (a grouping over every column) vs
   ``data/table_checks.duplicate_rows`` (one 64-bit hash per row, then a check of the
   colliding rows);
2. leakage: ``find_leakage`` as it runs (a seeded sample of ``LEAKAGE_MAX_ROWS``) vs the
   same check over every row.

Prints medians of ``--repeats`` and the ratios. Usage::

    .venv/bin/python bench/cleaning_probe.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from polymodal.data import table_checks
from polymodal.data.schema import infer_schema


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"x{i}": rng.normal(size=rows).round(3) for i in range(6)})
    df["colour"] = rng.choice(["red", "green", "blue", "black"], rows)
    df["city"] = rng.choice([f"city {i}" for i in range(300)], rows)
    df["label"] = rng.choice(["a", "b"], rows)
    df.iloc[1::50] = df.iloc[::50].to_numpy()[: len(df.iloc[1::50])]  # duplicated rows
    return df


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    df = table(args.rows)
    schema = infer_schema(df, label="label")
    columns = list(df.columns)
    features = schema.features()
    grouped = best(lambda: df.duplicated(), args.repeats)
    hashed = best(lambda: table_checks.duplicate_rows(df, columns), args.repeats)
    sampled = best(lambda: table_checks.find_leakage(df, schema, features), args.repeats)
    limit = table_checks.LEAKAGE_MAX_ROWS
    table_checks.LEAKAGE_MAX_ROWS = args.rows
    try:
        full = best(lambda: table_checks.find_leakage(df, schema, features), args.repeats)
    finally:
        table_checks.LEAKAGE_MAX_ROWS = limit
    print(f"{args.rows:,} rows, median of {args.repeats}:")
    print(f"  duplicates: DataFrame.duplicated {grouped:.2f} s, duplicate_rows (hash) "
          f"{hashed:.2f} s, ratio {hashed / grouped:.2f}")
    print(f"  leakage: sampled ({limit:,} rows) {sampled:.2f} s, every row {full:.2f} s, "
          f"ratio {sampled / full:.2f}")


if __name__ == "__main__":
    main()
