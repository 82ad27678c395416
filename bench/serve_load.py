"""Benchmark: the web service under load on loopback, against the Python API in-process.

1. Trains two small models on digits (``--fit-s`` seconds each): a Predictor and a
   Generator conditioned on the label, saved under ``bench/out/serve_load/``.
2. Starts ``polymodal serve`` on a free 127.0.0.1 port as a subprocess
   (``--workers 1 --max-queue 32``, so 16 clients fit in the queue).
3. For each workload -- ``/predict`` with 1 row, ``/predict`` with 64 rows, ``/generate``
   with n=16 -- and 1, 4 and 16 concurrent clients (threads, one keep-alive connection
   each): requests/s and p50/p99 latency, bounded by ``--requests`` per level and
   ``--level-s`` seconds. The same calls made on the Python API in this process, one at
   a time, give the baseline (the HTTP + JSON + PNG overhead is the difference).
4. Overload: 64 clients at once send heavier /generate requests (more than the
   1 + 32 the server admits). Every answer must be 200 or 503 with Retry-After -- no
   timeouts, no connection errors, no 5xx -- and /health and a /predict must still
   answer afterwards.

Both sides use one torch thread (``OMP_NUM_THREADS=1`` for the server, and
``torch.set_num_threads(1)`` here): on a shared 2-core machine two intra-op threads
often stall each other, and the same setting on both sides keeps the comparison fair.
The load average is printed with the results: other work on the machine shows there.

Only loopback is contacted; every loop is bounded in count and time, and the server is
stopped at the end. Usage::

    .venv/bin/python bench/serve_load.py                 # ~3-4 minutes on 2 cores
    .venv/bin/python bench/serve_load.py --fit-s 5 --requests 20 --level-s 5   # quick look

This is a benchmark, not a test. Results are printed and written to
``bench/out/serve_load.json``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads, even by accident

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

OUT = Path(__file__).parent / "out"
CONCURRENCY = (1, 4, 16)
OVERLOAD_CLIENTS = 64
SERVER_QUEUE = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit-s", type=float, default=20.0, help="training seconds per model")
    parser.add_argument("--requests", type=int, default=64,
                        help="most requests per workload and concurrency level")
    parser.add_argument("--level-s", type=float, default=15.0,
                        help="most seconds per workload and concurrency level")
    parser.add_argument("--startup-s", type=float, default=180.0,
                        help="how long to wait for the server to answer /health")
    return parser.parse_args()


# ----------------------------------------------------------------------------- models


def train_models(folder: Path, fit_s: float) -> tuple[Path, Path, list]:
    """Fit and save the predictor and generator; return their folders and test images."""
    from polymodal import Generator, Predictor, datasets

    train, test = datasets.load("digits", split=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        predictor = Predictor("label", time_limit=fit_s, verbosity=0).fit(train)
        predictor_dir = predictor.save(folder / "digits")
        t1 = time.perf_counter()
        generator = Generator(condition=["label"], time_limit=fit_s, verbosity=0).fit(train)
        generator_dir = generator.save(folder / "digits-gen")
        t2 = time.perf_counter()
    accuracy = predictor.evaluate(test)["accuracy"]
    print(f"trained predictor in {t1 - t0:.1f} s (test accuracy {accuracy:.3f}, chosen "
          f"{predictor.chosen_}) and generator in {t2 - t1:.1f} s "
          f"({generator.num_steps} steps, guidance {generator.guidance})")
    return predictor_dir, generator_dir, list(test["image"])


def png_b64(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ----------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(dirs: list[Path], port: int, startup_s: float) -> subprocess.Popen:
    command = [sys.executable, "-m", "polymodal.cli", "serve", *map(str, dirs), "--port",
               str(port), "--workers", "1", "--max-queue", str(SERVER_QUEUE)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    deadline = time.monotonic() + startup_s
    start = time.perf_counter()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n"
                             f"{process.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                print(f"server up on 127.0.0.1:{port} after {time.perf_counter() - start:.1f} s")
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not answer within {startup_s} s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------------- measure


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_level(url: str, path: str, body: dict, *, clients: int, max_requests: int,
               max_s: float) -> dict:
    """``clients`` threads post ``body`` until ``max_requests`` or ``max_s``: rate, latency."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    issued = 0
    deadline = time.monotonic() + max_s

    def client() -> None:
        nonlocal issued
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    if issued >= max_requests or time.monotonic() > deadline:
                        return
                    issued += 1
                start = time.perf_counter()
                try:
                    status = str(http.post(path, json=body).status_code)
                except httpx.TimeoutException:
                    status = "timeout"
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "200":
                        latencies.append(elapsed)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall_s = time.perf_counter() - start
    return {"clients": clients, "requests": sum(statuses.values()), "statuses": statuses,
            "requests_per_s": len(latencies) / wall_s, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99)}


def in_process(fn, *, max_requests: int, max_s: float) -> dict:
    """The same work on the Python API, one call at a time in this process."""
    latencies = []
    deadline = time.monotonic() + max_s
    start = time.perf_counter()
    while len(latencies) < max_requests and time.monotonic() < deadline:
        t = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t)
    wall_s = time.perf_counter() - start
    return {"clients": "python", "requests": len(latencies), "statuses": {"ok": len(latencies)},
            "requests_per_s": len(latencies) / wall_s, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99)}


def overload(url: str) -> dict:
    """64 simultaneous heavy /generate requests against 1 worker + 32 queue slots."""
    body = {"n": 16, "steps": 32, "conditions": {"label": 3}}
    barrier = threading.Barrier(OVERLOAD_CLIENTS)
    results: list[tuple[str, str | None, float]] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            barrier.wait(timeout=30)  # all at once
            start = time.perf_counter()
            try:
                response = http.post("/models/digits-gen/generate", json=body)
                status, retry = str(response.status_code), response.headers.get("retry-after")
            except httpx.TimeoutException:
                status, retry = "timeout", None
            except httpx.TransportError as exc:
                status, retry = type(exc).__name__, None
            with lock:
                results.append((status, retry, time.perf_counter() - start))

    start = time.perf_counter()
    with ThreadPoolExecutor(OVERLOAD_CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(OVERLOAD_CLIENTS)]:
            future.result()
    wall_s = time.perf_counter() - start
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    refused = [r for r in results if r[0] == "503"]
    health = httpx.get(url + "/health", timeout=10)
    return {"clients": OVERLOAD_CLIENTS, "statuses": statuses, "wall_s": wall_s,
            "all_503_have_retry_after": all(r[1] is not None for r in refused),
            "slowest_503_ms": 1000 * max((r[2] for r in refused), default=0.0),
            "health_after": health.status_code, "health": health.json()}


# ------------------------------------------------------------------------------- main


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} cores")
    folder = OUT / "serve_load"
    predictor_dir, generator_dir, images = train_models(folder, args.fit_s)

    from polymodal import Generator, Predictor

    predictor = Predictor.load(predictor_dir)
    generator = Generator.load(generator_dir)
    one_row = {"rows": [{"image": png_b64(images[0])}]}
    batch = {"rows": [{"image": png_b64(im)} for im in images[:64]]}
    generate = {"n": 16, "conditions": {"label": 7}}
    frames = {  # what a Python caller passes: the decoded image arrays themselves
        "one": pd.DataFrame({"image": [np.asarray(images[0])]}),
        "batch": pd.DataFrame({"image": [np.asarray(im) for im in images[:64]]}),
    }
    workloads = [
        ("/predict 1 row", "/models/digits/predict", one_row,
         lambda: predictor.predict_proba(frames["one"])),
        ("/predict 64 rows", "/models/digits/predict", batch,
         lambda: predictor.predict_proba(frames["batch"])),
        ("/generate n=16", "/models/digits-gen/generate", generate,
         lambda: generator.sample(16, conditions={"label": 7})),
    ]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server([predictor_dir, generator_dir], port, args.startup_s)
    results: dict = {"levels": [], "overload": None}
    try:
        header = f"{'workload':<18} {'clients':>7} {'requests':>8} {'req/s':>8} " \
                 f"{'p50 ms':>8} {'p99 ms':>8}  statuses"
        print(header)
        print("-" * len(header))
        for name, path, body, python_call in workloads:
            python_call()  # warm-up (first-call allocations) outside the timings
            httpx.post(url + path, json=body, timeout=60)
            rows = [in_process(python_call, max_requests=args.requests, max_s=args.level_s)]
            for clients in CONCURRENCY:
                rows.append(load_level(url, path, body, clients=clients,
                                       max_requests=args.requests, max_s=args.level_s))
            for row in rows:
                row["workload"] = name
                print(f"{name:<18} {row['clients']!s:>7} {row['requests']:>8} "
                      f"{row['requests_per_s']:>8.1f} {row['p50_ms']:>8.1f} "
                      f"{row['p99_ms']:>8.1f}  {row['statuses']}")
            results["levels"].extend(rows)

        results["overload"] = over = overload(url)
        print(f"\noverload: {over['clients']} simultaneous /generate (n=16, 32 steps) against "
              f"1 worker + {SERVER_QUEUE} queue slots, {over['wall_s']:.1f} s: {over['statuses']}")
        print(f"  every 503 carried Retry-After: {over['all_503_have_retry_after']}; slowest "
              f"503 answered in {over['slowest_503_ms']:.0f} ms")
        after = httpx.post(url + "/models/digits/predict", json=one_row, timeout=30)
        print(f"  afterwards: /health {over['health_after']} {over['health']}; "
              f"/predict {after.status_code}")
        bad = {k: v for k, v in over["statuses"].items() if k not in ("200", "503")}
        verdict = "PASS" if (not bad and over["statuses"].get("503") and
                             over["all_503_have_retry_after"] and
                             over["health_after"] == 200 and after.status_code == 200) else "FAIL"
        results["overload_verdict"] = verdict
        print(f"  overload verdict: {verdict} (only 200/503, some 503s, server healthy after)")
    finally:
        stop_server(server)
    results["load_average_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "serve_load.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {OUT / 'serve_load.json'}")


if __name__ == "__main__":
    main()
