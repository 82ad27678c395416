"""ONNX export vs eager PyTorch on this CPU: rows/s of a predictor, images/s of a generator.

Side by side in one run, on built-in data, each timed as a deployment would call it: the
predictor on the network alone (``Predictor.predict_proba`` against the export's
``runtime.py`` on the same raw rows, preprocessing included, and the bare graphs on the
encoded batch), the generator's ``sample`` against the runtime's numpy sampler with the
exported UNet. Models train for a fixed number of epochs; the timings are what matters.

    .venv/bin/python bench/export.py [--rows 1000] [--images 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from polymodal import Generator, Predictor, datasets


def best_of(fn, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def runtime_of(folder: Path):
    spec = importlib.util.spec_from_file_location("export_runtime_bench", folder / "runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(name: str, n: int, unit: str, eager_s: float, onnx_s: float) -> None:
    print(f"{name:<34} {n / eager_s:>12,.1f} {n / onnx_s:>12,.1f} {unit:<9} "
          f"{eager_s / onnx_s:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    train, test = datasets.load("digits", split=True, seed=0)
    test = test.sample(args.rows, replace=True, random_state=0).reset_index(drop=True)

    predictor = Predictor("label", verbosity=0, recipe={
        "training.max_epochs": 2, "candidates.classic": ""}).fit(train)
    exported = predictor.export(work / "predictor")
    runtime = runtime_of(exported)
    model = runtime.load(exported, threads=args.threads)
    rows = test.drop(columns="label").to_dict("records")
    features = test.drop(columns="label")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} "
          "thread(s) each")
    print(f"{'':<34} {'eager torch':>12} {'onnxruntime':>12} {'per s':<9} {'ratio':>7}")
    row("digits predictor, raw rows", args.rows, "rows",
        best_of(lambda: predictor.predict_proba(features), args.repeats),
        best_of(lambda: model.predict_proba(rows), args.repeats))
    arrays = model.encoder.encode(rows)
    network = predictor.models_["neural"].model_
    from polymodal.data.batch import Batch

    batch = Batch(index=torch.arange(args.rows),
                  image={"image": torch.from_numpy(arrays["image_0"])},
                  mask={"image": torch.from_numpy(arrays["mask_0"])})
    session = model.sessions["neural"]

    def eager_graph():
        with torch.no_grad():
            network(batch)

    row("digits network, encoded batch", args.rows, "rows", best_of(eager_graph, args.repeats),
        best_of(lambda: runtime._run(session, arrays), args.repeats))

    gen = Generator(condition=["label"], recipe={"training.max_epochs": 1},
                    verbosity=0).fit(train)
    g_export = gen.export(work / "generator")
    g_model = runtime_of(g_export).load(g_export, threads=args.threads)
    n = args.images
    conditions = {"label": [i % 10 for i in range(n)]}
    row("digits generator, sample", n, "images",
        best_of(lambda: gen.sample(n, conditions=conditions, seed=0), args.repeats),
        best_of(lambda: g_model.sample(n, conditions=conditions, seed=0), args.repeats))


if __name__ == "__main__":
    main()
