"""Benchmark: how fast and how lean is polymodal's data path on an image table from files?

1. Exports Fashion-MNIST once as an ordinary table (``bench/out/fashion-mnist/``:
   train.csv with 60,000 rows, test.csv, one PNG per row) and a ``train_20000.csv``
   holding the first 20,000 train rows (same image files).
2. Throughput, 20,000 rows, each way run ``--repeats`` times (medians reported):

   - polymodal, the path ``Predictor.fit`` takes (``api/fit_data.make_datasets``):
     ``read_table`` -> ``infer_schema`` -> ``TableTransform(schema).fit`` ->
     ``TableDataset(cache_media=True)`` -> ``preload_media`` (every image decoded once, by
     one worker process per core) -> iterate ``make_loader(batch_size=256)`` to the end;
     the epochs after the first read the cache (their rate is printed too);
   - plain: ``pandas.read_csv`` then, per row, open the PNG with Pillow, convert to L,
     to float32, normalise to [-1, 1], stacked into batches of 256 with the labels.

   Both decode every image once per pass; the ratio is the overhead polymodal adds
   (schema inference, fitting, per-cell checks, tensors, collate).
3. Peak RSS (``ru_maxrss``) of a fresh subprocess that runs the polymodal path over
   20,000 and over 60,000 rows: the decoded cache grows with the rows (``fit`` keeps it
   only while it fits in ``MEDIA_CACHE_BYTES``).

Usage::

    .venv/bin/python bench/data_throughput.py            # ~1-2 minutes on 2 cores
    .venv/bin/python bench/data_throughput.py --rows 5000 --repeats 1   # quick look

This is a benchmark, not a test. Results are printed and written to
``bench/out/data_throughput.json``.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads, even by accident

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

BATCH_SIZE = 256
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def ensure_export(out: Path) -> tuple[Path, float | None]:
    """The exported Fashion-MNIST folder, written on first use; also the export time (s)."""
    from polymodal import datasets

    folder = out / "fashion-mnist"
    train_csv = folder / "train.csv"
    if train_csv.is_file() and sum(1 for _ in train_csv.open()) == 60_001:
        return folder, None
    start = time.perf_counter()
    datasets.export("fashion-mnist", folder, overwrite=True)
    return folder, time.perf_counter() - start


def subset_csv(folder: Path, num_rows: int) -> Path:
    """``train_<num_rows>.csv`` beside train.csv: its first rows, same image files."""
    path = folder / f"train_{num_rows}.csv"
    if not path.is_file():
        pd.read_csv(folder / "train.csv", nrows=num_rows).to_csv(path, index=False)
    return path


def run_polymodal(csv: Path, on_batch=None) -> dict:
    """The full polymodal path; seconds for setup (read, schema, fit, encode) and iteration.

    ``on_batch``, if given, is called once when the loader is ready and after every batch.
    """
    from polymodal.api.fit_data import _decode_workers
    from polymodal.data.dataset import TableDataset, make_loader
    from polymodal.data.readers import read_table
    from polymodal.data.schema import infer_schema
    from polymodal.data.transforms import TableTransform

    start = time.perf_counter()
    df = read_table(csv)
    # label_name restates label; left in, it would be a text column with a leaked label.
    schema = infer_schema(df, label="label", overrides={"label_name": "ignored"})
    transform = TableTransform(schema).fit(df)
    dataset = TableDataset(df, transform, cache_media=True)
    dataset.preload_media(num_workers=_decode_workers(len(dataset)))  # as fit does
    loader = make_loader(dataset, batch_size=BATCH_SIZE, shuffle=False, seed=0)
    ready = time.perf_counter()
    if on_batch is not None:
        on_batch()
    num_rows, checksum = 0, 0.0
    for batch in loader:
        images = batch.image["image"]  # (B, 1, 28, 28) float32 in [-1, 1]
        num_rows += len(batch)
        checksum += float(images[:, :, 14, 14].sum())
        if on_batch is not None:
            on_batch()
    end = time.perf_counter()
    assert images.shape[1:] == (1, 28, 28), images.shape
    again = time.perf_counter()
    for _batch in loader:  # a later epoch: from the cache
        pass
    cached_s = time.perf_counter() - again
    return {
        "cached_epoch_s": cached_s,
        "rows": num_rows,
        "setup_s": ready - start,
        "iterate_s": end - ready,
        "total_s": end - start,
        "checksum": checksum,
    }


def run_plain(csv: Path) -> dict:
    """The same decoding by hand: Pillow open, convert L, float, normalise, batches of 256."""
    start = time.perf_counter()
    df = pd.read_csv(csv)
    base_dir = csv.parent
    paths, labels = df["image"].tolist(), df["label"].to_numpy(dtype=np.int64, copy=True)
    num_rows, checksum = 0, 0.0
    for first in range(0, len(paths), BATCH_SIZE):
        batch_paths = paths[first : first + BATCH_SIZE]
        pixels = np.empty((len(batch_paths), 1, 28, 28), dtype=np.float32)  # (B, 1, H, W)
        for i, path in enumerate(batch_paths):
            with Image.open(base_dir / path) as img:
                pixels[i, 0] = np.asarray(img.convert("L"), dtype=np.float32) / 127.5 - 1.0
        images = torch.from_numpy(pixels)
        _ = torch.from_numpy(labels[first : first + BATCH_SIZE])
        num_rows += len(batch_paths)
        checksum += float(images[:, :, 14, 14].sum())
    end = time.perf_counter()
    return {"rows": num_rows, "total_s": end - start, "checksum": checksum}


def peak_rss_child(csv: Path) -> None:
    """Subprocess entry: run the polymodal path once and print its memory use as JSON.

    ``ru_maxrss`` is a high-water mark that the imports alone (torch, pandas, ...) may
    set, hiding what the data path adds; so the current RSS is also sampled after every
    batch and compared with the RSS right after the imports.
    """
    import psutil

    import polymodal.data.dataset  # noqa: F401 - imports count towards the baseline
    import polymodal.data.readers  # noqa: F401
    import polymodal.data.schema  # noqa: F401
    import polymodal.data.transforms  # noqa: F401

    process = psutil.Process()
    after_imports_mb = process.memory_info().rss / 2**20
    samples_mb = [after_imports_mb]
    result = run_polymodal(
        csv, on_batch=lambda: samples_mb.append(process.memory_info().rss / 2**20)
    )
    report = {
        "rows": result["rows"],
        "after_imports_mb": after_imports_mb,
        "loader_ready_mb": samples_mb[1],
        "peak_sampled_mb": max(samples_mb),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }
    print(json.dumps(report))


def measure_peak_rss(csv: Path) -> dict:
    command = [sys.executable, __file__, "--rss-child", str(csv)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the throughput table")
    parser.add_argument("--repeats", type=int, default=3, help="passes of each method")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the export goes")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        peak_rss_child(args.rss_child)
        return

    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}")
    folder, export_s = ensure_export(args.out)
    if export_s is None:
        print(f"1. export: reusing {folder}")
    else:
        print(
            f"1. export: 70,000 rows (CSV + PNG) to {folder} in {export_s:.1f} s "
            f"= {70_000 / export_s:,.0f} rows/s"
        )
    csv = subset_csv(folder, args.rows)

    runs: dict[str, list[dict]] = {"polymodal": [], "plain": []}
    for repeat in range(args.repeats):
        # Alternate the order so neither method always runs with the warmer page cache.
        order = ("polymodal", "plain") if repeat % 2 == 0 else ("plain", "polymodal")
        for method in order:
            result = run_polymodal(csv) if method == "polymodal" else run_plain(csv)
            runs[method].append(result)
            print(
                f"   repeat {repeat + 1} {method:9s}: {result['rows'] / result['total_s']:8,.0f} rows/s "
                f"({result['total_s']:.2f} s)"
            )
    assert abs(runs["polymodal"][0]["checksum"] - runs["plain"][0]["checksum"]) < 1e-2, (
        "different pixels"
    )
    medians = {m: statistics.median(r["rows"] / r["total_s"] for r in rs) for m, rs in runs.items()}
    setup_s = statistics.median(r["setup_s"] for r in runs["polymodal"])
    iterate_rate = statistics.median(r["rows"] / r["iterate_s"] for r in runs["polymodal"])
    print(f"2. throughput, {args.rows:,} rows, batch {BATCH_SIZE}, median of {args.repeats}:")
    print(
        f"   polymodal  {medians['polymodal']:8,.0f} rows/s end to end "
        f"(setup and decoding {setup_s:.2f} s, then iteration {iterate_rate:,.0f} rows/s; "
        f"a later epoch {statistics.median(r['rows'] / r['cached_epoch_s'] for r in runs['polymodal']):,.0f} rows/s)"
    )
    print(f"   plain      {medians['plain']:8,.0f} rows/s")
    print(f"   ratio polymodal / plain = {medians['polymodal'] / medians['plain']:.2f}")

    rss = {}
    for num_rows in (args.rows, 60_000):
        table = folder / "train.csv" if num_rows >= 60_000 else subset_csv(folder, num_rows)
        rss[num_rows] = r = measure_peak_rss(table)
        print(
            f"3. memory, {num_rows:,} rows in a fresh process: ru_maxrss {r['ru_maxrss_mb']:.0f} MB; "
            f"RSS after imports {r['after_imports_mb']:.0f} MB, loader ready "
            f"{r['loader_ready_mb']:.0f} MB, peak while iterating {r['peak_sampled_mb']:.0f} MB"
        )
    small, large = rss[args.rows], rss[60_000]
    growth_mb = (large["peak_sampled_mb"] - large["after_imports_mb"]) - (
        small["peak_sampled_mb"] - small["after_imports_mb"]
    )
    print(
        f"   growth of the data path's peak from {args.rows:,} to 60,000 rows: {growth_mb:+.1f} MB "
        f"({growth_mb * 2**20 / (60_000 - args.rows):.0f} bytes per extra row; the pixels alone "
        "would be 784 bytes as uint8, 3,136 as float32)"
    )

    summary = {
        "rows": args.rows,
        "batch_size": BATCH_SIZE,
        "export_s": export_s,
        "rows_per_s_median": medians,
        "ratio_polymodal_over_plain": medians["polymodal"] / medians["plain"],
        "polymodal_setup_s_median": setup_s,
        "polymodal_iterate_rows_per_s_median": iterate_rate,
        "runs": runs,
        "peak_rss": {str(k): v for k, v in rss.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
