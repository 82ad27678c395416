"""Benchmark: a table larger than memory — ``polymodal fit``/``predict`` on a 10M-row shard
folder, next to a pandas + scikit-learn pipeline on what fits in memory.

1. Builds once, under ``bench/out/large_table/`` (git-ignored), a seeded synthetic table
   of ``--rows`` rows (default 10M) as a Parquet shard folder ``train-<rows>/``
   (``part-0000.parquet`` ..., 500,000 rows per shard, row groups of 100,000), and a
   ``--test-rows`` test folder drawn the same way with another seed. Columns: four numbers
   (1% missing in one), two categories (8 and 200 levels), a short text (three words of
   a 64-word vocabulary) and a binary label that depends on all of them. Generated chunk
   by chunk with pyarrow, so building it needs little memory.
2. Runs the installed ``polymodal fit TRAIN --label label --time-limit T`` (default 300)
   in a subprocess; reports its wall time (target <= 1.1 T + 5 s) and peak RSS (target
   <= 4 GiB): ``ru_maxrss`` of the child (``RUSAGE_CHILDREN``; it is this process's first
   child) and the peak of the child's RSS polled every 0.2 s with psutil. The fit's own
   account of what was streamed is printed from its training log.
3. Runs ``polymodal predict MODEL TEST --out preds.csv`` and reports rows/s (end to end,
   and after the command's start-up, which a 1,000-row predict measures) and test
   accuracy, next to the peer in its own subprocess: ``pandas.read_parquet`` of the first
   ``--peer-rows`` training rows (default 1M, what fits in memory comfortably), a
   ``ColumnTransformer`` (ordinal-encoded categories, numbers as they are; the text
   column left out, as HistGradientBoosting takes no text) and
   ``HistGradientBoostingClassifier``; its "predict" reads the test folder with pandas,
   predicts probabilities and writes the same kind of CSV. Ratios printed are polymodal /
   peer.

``POLYMODAL_STREAM_BYTES`` is left as the environment has it, so the fit decides to stream
by its default rule; ``--stream-bytes`` sets it for the children (e.g. to stream a 1M-row
table). Results go to ``bench/out/large_table.json``; figures quoted in bench/RESULTS.md.

Usage::

    .venv/bin/python bench/large_table.py --rows 1000000 --time-limit 120 --stream-bytes 1
    .venv/bin/python bench/large_table.py            # 10M rows, --time-limit 300

This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "large_table"
EXE = Path(sys.executable).with_name("polymodal")
ROWS_PER_FILE, ROW_GROUP = 500_000, 100_000
WORDS = [f"{a}{b}" for a in ("bo", "ca", "di", "fe", "ga", "hu", "ki", "lo")
         for b in ("ra", "ne", "to", "mi", "su", "pe", "lu", "vo")]  # 64 words
SIGNAL_WORDS = {"bora", "cane", "dito"}  # a title holding one makes "buy" likelier


# --------------------------------------------------------------------------- the data


def chunk(rows: int, seed: int, part: int, world: int):
    """One shard's rows as a pyarrow Table; a pure function of (seed, part). ``world``
    seeds what training and test rows share (each store's effect on the label)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([seed, part])
    nums = rng.normal(size=(rows, 4))
    region = rng.integers(0, 8, rows)
    store = rng.integers(0, 200, rows)
    words = rng.integers(0, len(WORDS), (rows, 3))
    vocab = np.array(WORDS, dtype=object)
    signal = np.isin(words, [WORDS.index(w) for w in SIGNAL_WORDS]).any(axis=1)
    store_effect = np.random.default_rng([world, 10_000]).normal(scale=0.8, size=200)[store]
    logit = (1.2 * nums[:, 0] - 0.8 * nums[:, 1] * nums[:, 2] + 0.5 * np.sin(2 * nums[:, 3])
             + 0.3 * (region - 3.5) / 2 + store_effect + 1.0 * signal - 0.4)
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "buy", "skip")
    num_1 = nums[:, 1].copy()
    num_1[rng.random(rows) < 0.01] = np.nan
    title = pc.binary_join_element_wise(*(pa.array(vocab[words[:, k]]) for k in range(3)), " ")
    return pa.table({
        "num_0": nums[:, 0], "num_1": num_1, "num_2": nums[:, 2], "num_3": nums[:, 3],
        "region": pa.array([f"region-{r}" for r in range(8)]).take(pa.array(region)),
        "store": pa.array([f"store-{s:03d}" for s in range(200)]).take(pa.array(store)),
        "title": title, "label": pa.array(label),
    })


def build(folder: Path, rows: int, seed: int, world: int) -> Path:
    """The shard folder (built once; a complete folder is reused)."""
    import pyarrow.parquet as pq

    done = folder / "_complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for part, first in enumerate(range(0, rows, ROWS_PER_FILE)):
        table = chunk(min(ROWS_PER_FILE, rows - first), seed, part, world)
        pq.write_table(table, folder / f"part-{part:04d}.parquet", row_group_size=ROW_GROUP)
    done.write_text("")
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    print(f"built {folder} ({rows:,} rows, {size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - start:.0f} s")
    return folder


# --------------------------------------------------------------------------- the runs


def run_child(argv: list[str], env: dict) -> dict:
    """Run ``argv``; its wall time, the peak RSS of it and its children polled, exit code."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.2)
    output = proc.stdout.read()
    return {"wall_s": time.perf_counter() - start, "polled_peak_rss": peak,
            "returncode": proc.returncode, "output": output}


PEER = r"""
import json, resource, sys, time
import numpy as np, pandas as pd, pyarrow.dataset as ds
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder
train, test, rows, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
df = ds.dataset(train, format="parquet").head(rows).to_pandas()
cats, nums = ["region", "store"], ["num_0", "num_1", "num_2", "num_3"]
pipe = make_pipeline(
    ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value",
                                              unknown_value=-1), cats),
                       ("num", "passthrough", nums)]),
    HistGradientBoostingClassifier(categorical_features=[0, 1], random_state=0))
pipe.fit(df[cats + nums], df["label"])
fit_s = time.perf_counter() - start
start = time.perf_counter()
test_df = ds.dataset(test, format="parquet").to_table().to_pandas()
proba = pipe.predict_proba(test_df[cats + nums])
frame = pd.DataFrame({"prediction": pipe.classes_[proba.argmax(1)]})
for k, c in enumerate(pipe.classes_):
    frame[f"proba_{c}"] = proba[:, k]
frame.to_csv(out, index=False)
predict_s = time.perf_counter() - start
accuracy = float((frame["prediction"].to_numpy() == test_df["label"].to_numpy()).mean())
print(json.dumps({"fit_s": fit_s, "predict_s": predict_s, "rows": len(test_df),
                  "accuracy": accuracy,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--test-rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=1_000_000)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--stream-bytes", default=None,
                        help="POLYMODAL_STREAM_BYTES for the children (default: as set)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train = build(OUT / f"train-{args.rows}-{args.seed}-v2", args.rows, args.seed, args.seed)
    test = build(OUT / f"test-{args.test_rows}-{args.seed}-v2", args.test_rows, args.seed + 1,
                 args.seed)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    if args.stream_bytes is not None:
        env["POLYMODAL_STREAM_BYTES"] = args.stream_bytes
    import pandas as pd
    import pyarrow.dataset as ds

    model, preds = OUT / f"model-{args.rows}", OUT / f"preds-{args.rows}.csv"
    shutil.rmtree(model, ignore_errors=True)

    # 2. fit, its wall time and peak memory.
    fit = run_child([str(EXE), "fit", str(train), "--label", "label", "--out", str(model),
                     "--time-limit", str(args.time_limit), "--seed", str(args.seed)], env)
    fit["ru_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(fit.pop("output"))
    if fit["returncode"] != 0:
        sys.exit(f"polymodal fit failed ({fit['returncode']})")
    log = [json.loads(line) for line in (model / "train_log.jsonl").read_text().splitlines()]
    streamed = next((r for r in log if r.get("event") == "streamed"), None)
    chosen = next(r for r in log if r.get("event") == "chosen")

    # 3. predict (and on a 1,000-row table, for the cost of starting the command), the peer.
    small = OUT / "test-head.parquet"
    ds.dataset(test, format="parquet").head(1000).to_pandas().to_parquet(small, index=False)
    start_s = run_child([str(EXE), "predict", str(model), str(small), "--out",
                         str(OUT / "preds-head.csv")], env)["wall_s"]
    predict = run_child([str(EXE), "predict", str(model), str(test), "--out", str(preds)], env)
    print(predict.pop("output"))
    if predict["returncode"] != 0:
        sys.exit(f"polymodal predict failed ({predict['returncode']})")
    labels = ds.dataset(test, format="parquet").to_table(columns=["label"])["label"].to_numpy()
    accuracy = float((pd.read_csv(preds, usecols=["prediction"])["prediction"].to_numpy()
                      == labels).mean())
    peer_run = run_child([sys.executable, "-c", PEER, str(train), str(test),
                          str(min(args.peer_rows, args.rows)), str(OUT / "peer-preds.csv")], env)
    peer = json.loads(peer_run["output"].strip().splitlines()[-1])

    gib = 2**30
    limit_wall = 1.1 * args.time_limit + 5
    ours_rps, peer_rps = args.test_rows / predict["wall_s"], peer["rows"] / peer["predict_s"]
    steady_rps = (args.test_rows - 1000) / max(1e-9, predict["wall_s"] - start_s)
    result = {
        "rows": args.rows, "test_rows": args.test_rows, "time_limit_s": args.time_limit,
        "stream_bytes": env.get("POLYMODAL_STREAM_BYTES"),
        "fit_wall_s": fit["wall_s"], "fit_wall_target_s": limit_wall,
        "fit_peak_rss_gib": fit["ru_maxrss"] / gib,
        "fit_polled_peak_rss_gib": fit["polled_peak_rss"] / gib,
        "streamed": streamed, "chosen": chosen,
        "predict_wall_s": predict["wall_s"], "predict_rows_per_s": ours_rps,
        "predict_start_s": start_s, "predict_rows_per_s_after_start": steady_rps,
        "predict_polled_peak_rss_gib": predict["polled_peak_rss"] / gib,
        "test_accuracy": accuracy, "peer": peer, "peer_rows_per_s": peer_rps,
    }
    (OUT.parent / "large_table.json").write_text(json.dumps(result, indent=2))
    print(f"\nfit: {fit['wall_s']:.1f} s wall (target <= {limit_wall:.0f} s: "
          f"{'met' if fit['wall_s'] <= limit_wall else 'MISSED'}), peak RSS "
          f"{fit['ru_maxrss'] / gib:.2f} GiB (polled {fit['polled_peak_rss'] / gib:.2f}; "
          f"target <= 4 GiB: {'met' if fit['ru_maxrss'] <= 4 * gib else 'MISSED'})")
    print(f"streamed: {json.dumps(streamed) if streamed else 'no (read whole)'}")
    print(f"chosen: {chosen['model']} (val {json.dumps({k: v for k, v in chosen.items() if k.startswith('val_')})})")
    print(f"predict: {ours_rps:,.0f} rows/s end to end ({predict['wall_s']:.1f} s for "
          f"{args.test_rows:,} rows, peak RSS {predict['polled_peak_rss'] / gib:.2f} GiB); "
          f"{steady_rps:,.0f} rows/s after the {start_s:.1f} s a 1,000-row predict takes; "
          f"test accuracy {accuracy:.4f}")
    print(f"peer (pandas + HistGradientBoosting on {min(args.peer_rows, args.rows):,} rows): "
          f"fit {peer['fit_s']:.1f} s, predict {peer_rps:,.0f} rows/s, test accuracy "
          f"{peer['accuracy']:.4f}, peak RSS {peer['peak_rss'] / gib:.2f} GiB")
    print(f"ratios (polymodal / peer, the peer's rows/s in-process after its imports): predict "
          f"rows/s {ours_rps / peer_rps:.2f} end to end, {steady_rps / peer_rps:.2f} after start; "
          f"test accuracy {accuracy / peer['accuracy']:.3f}")


if __name__ == "__main__":
    main()
